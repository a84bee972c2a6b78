//! Command line of `tg-gateway`.

use std::path::PathBuf;
use std::time::Duration;

use clap::{Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(
    name = "tg-gateway",
    version,
    about = "Telegram ingestion gateway and REST API"
)]
pub struct Cli {
    /// The model, then overlays in order (later files override earlier ones).
    #[arg(
        long = "model",
        env = "TGSTACK_MODEL",
        value_delimiter = ',',
        default_value = "stack.toml",
        global = true
    )]
    pub models: Vec<PathBuf>,
    /// The service of the model this process is. Default: the single `gateway` service
    /// (the single `api` service for `api`).
    #[arg(long, env = "TGSTACK_SERVICE", global = true)]
    pub service: Option<String>,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Interactive Telegram sign-in; stores the session at the model's path (0600).
    Login,
    /// Ingest the model's channels; serves /health and /metrics on the service's port.
    Run,
    /// Serve the REST API.
    Api,
    /// Apply the rendered SQL directly to PostgreSQL (not through PgBouncer), idempotently.
    Migrate {
        /// SQL variant; default: the database service's `variant`.
        #[arg(long, value_parser = ["timescaledb", "plain"])]
        variant: Option<String>,
    },
    /// Feed a JSON-lines file of events through the ingestion pipeline, then exit.
    Replay {
        /// One `{"kind": "new"|"edit"|"delete", ...}` object per line.
        file: PathBuf,
        /// How long to wait for the outbox to drain to RabbitMQ after everything is
        /// stored; what is left is published by the next `run`.
        #[arg(long, default_value = "30s", value_parser = parse_duration)]
        drain_timeout: Duration,
        /// Serve /health and /metrics on the service's port while replaying.
        #[arg(long)]
        serve: bool,
    },
    /// Exit 0 when URL answers with a 2xx status (container healthchecks).
    Healthcheck {
        url: String,
        #[arg(long, default_value = "5s", value_parser = parse_duration)]
        timeout: Duration,
    },
}

fn parse_duration(text: &str) -> Result<Duration, String> {
    tgstack::model::units::Duration::parse(text).map(|d| Duration::from_millis(d.millis()))
}
