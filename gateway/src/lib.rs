//! tg-gateway: Telegram ingestion (source -> dedup -> store -> outbox -> publish), the
//! REST API, and the tools around them, configured by the same stack.toml as the rest
//! of the stack (through the tgstack library).

pub mod api;
pub mod cache;
pub mod cli;
pub mod commands;
pub mod config;
pub mod dedup;
pub mod health;
pub mod healthcheck;
pub mod http;
pub mod legacy;
pub mod metrics;
pub mod pipeline;
pub mod publish;
pub mod redis_link;
pub mod session;
pub mod source;
pub mod sql;
pub mod store;
pub mod telegram;

use std::process::ExitCode;

use cli::{Cli, Command};

/// Runs one command line; errors are printed without secrets (none are in messages).
pub fn main_with(cli: Cli) -> ExitCode {
    init_tracing();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("tg-gateway: cannot start the runtime: {error}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(dispatch(cli)) {
        Ok(code) => code,
        Err(error) => {
            eprintln!("tg-gateway: {error:#}");
            ExitCode::FAILURE
        }
    }
}

fn init_tracing() {
    let filter = tracing_subscriber::EnvFilter::try_from_env("TG_GATEWAY_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .try_init();
}

async fn dispatch(cli: Cli) -> anyhow::Result<ExitCode> {
    match cli.command {
        Command::Healthcheck { url, timeout } => {
            let code = healthcheck::status(&url, timeout).await?;
            if (200..300).contains(&code) {
                Ok(ExitCode::SUCCESS)
            } else {
                eprintln!("tg-gateway: {url} answered {code}");
                Ok(ExitCode::FAILURE)
            }
        }
        Command::Login => {
            let config = config::Config::load(
                &cli.models,
                cli.service.as_deref(),
                tgstack::model::Kind::Gateway,
            )?;
            telegram::login::login(&telegram::TelegramSettings::from_config(&config)?).await?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Api => {
            let config = config::Config::load(
                &cli.models,
                cli.service.as_deref(),
                tgstack::model::Kind::Api,
            )?;
            let api = api::ApiConfig::from_config(&config)?;
            let handle = metrics::install(metrics::Process::Api)?;
            api::serve(api, Some(handle)).await?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Run => {
            let config = config::Config::load(
                &cli.models,
                cli.service.as_deref(),
                tgstack::model::Kind::Gateway,
            )?;
            // The session lock comes first: a second process on the session stops here,
            // before it touches the pipeline or Telegram.
            let settings = telegram::TelegramSettings::from_config(&config)?;
            let lock = session::SessionLock::acquire(&settings.session_file)?;
            commands::run(&config, move |context| telegram::run(lock, context)).await?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Migrate { variant } => {
            let config = config::Config::load(
                &cli.models,
                cli.service.as_deref(),
                tgstack::model::Kind::Gateway,
            )?;
            let variant = variant.map(|v| match v.as_str() {
                "plain" => tgstack::model::PostgresVariant::Plain,
                _ => tgstack::model::PostgresVariant::Timescaledb,
            });
            for applied in commands::migrate(&config, variant).await? {
                println!(
                    "{} {}",
                    applied.version,
                    if applied.new {
                        "applied"
                    } else {
                        "re-applied (already recorded)"
                    }
                );
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::ImportLegacy {
            from,
            legacy_schema,
            batch,
            publish,
            refresh,
            verify,
            channels,
            allow_writable_source,
            format,
        } => {
            let config = config::Config::load(
                &cli.models,
                cli.service.as_deref(),
                tgstack::model::Kind::Gateway,
            )?;
            let from =
                legacy::UrlSource::parse(&from).map_err(|e| anyhow::anyhow!("--from: {e}"))?;
            let options = legacy::Options {
                from,
                schema: legacy_schema,
                batch: batch as usize,
                publish,
                refresh,
                allow_writable_source,
            };
            let json = format == "json";
            let print = |human: String, value: serde_json::Value| {
                if json {
                    println!("{value:#}");
                } else {
                    print!("{human}");
                }
            };
            if verify {
                let report = legacy::verify(&config, &options).await?;
                print(report.human(), serde_json::to_value(&report)?);
                return Ok(if report.ok {
                    ExitCode::SUCCESS
                } else {
                    ExitCode::FAILURE
                });
            }
            if channels {
                let report = legacy::channels(&config, &options).await?;
                print(report.human(), serde_json::to_value(&report)?);
                return Ok(ExitCode::SUCCESS);
            }
            let summary = legacy::import(&config, &options).await?;
            print(summary.human(), serde_json::to_value(&summary)?);
            Ok(ExitCode::SUCCESS)
        }
        Command::ExportLegacy {
            to,
            legacy_schema,
            format,
        } => {
            let config = config::Config::load(
                &cli.models,
                cli.service.as_deref(),
                tgstack::model::Kind::Gateway,
            )?;
            let to = legacy::UrlSource::parse(&to).map_err(|e| anyhow::anyhow!("--to: {e}"))?;
            let options = legacy::Options {
                from: to,
                schema: legacy_schema,
                batch: 1,
                publish: false,
                refresh: false,
                allow_writable_source: true,
            };
            let summary = legacy::export::export(&config, &options).await?;
            if format == "json" {
                println!("{:#}", serde_json::to_value(&summary)?);
            } else {
                print!("{}", summary.human());
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Replay {
            file,
            drain_timeout,
            serve,
        } => {
            let config = config::Config::load(
                &cli.models,
                cli.service.as_deref(),
                tgstack::model::Kind::Gateway,
            )?;
            let summary = commands::replay(&config, &file, drain_timeout, serve).await?;
            println!(
                "replayed {} events from {}; {} invalid lines; {} events left in the outbox",
                summary.events,
                file.display(),
                summary.invalid_lines.len(),
                summary.outbox_left
            );
            if !summary.invalid_lines.is_empty() {
                let lines: Vec<String> = summary
                    .invalid_lines
                    .iter()
                    .map(|n| n.to_string())
                    .collect();
                eprintln!("tg-gateway: invalid lines: {}", lines.join(", "));
                return Ok(ExitCode::FAILURE);
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}
