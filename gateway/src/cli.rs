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
    /// Move the message history of the database this stack replaces into the new one:
    /// duplicates collapsed, resumable (a checkpoint per channel), the old database only
    /// read. See docs/legacy-import.md.
    ImportLegacy {
        /// Where the legacy database's URL is: `env:NAME` or `secret:ID` (a secret of the
        /// model). Never the URL itself.
        // A String parsed after clap: clap's errors would repeat a URL typed here.
        #[arg(long, default_value = "env:TGSTACK_LEGACY_URL")]
        from: String,
        /// The schema of the legacy tables.
        #[arg(long, default_value = "public")]
        legacy_schema: String,
        /// Messages per stored batch (one transaction and checkpoint each).
        #[arg(long, default_value_t = 5000, value_parser = clap::value_parser!(u32).range(1..=100_000))]
        batch: u32,
        /// Also queue the imported (not deleted) messages in the outbox, so the running
        /// gateway publishes the backlog to RabbitMQ.
        #[arg(long)]
        publish: bool,
        /// Read the whole legacy table again, not only past the checkpoints, and update
        /// the messages an earlier run stored to what it holds now (a later copy, an edit or
        /// a deletion since). The final import of a cutover.
        #[arg(long, conflicts_with = "publish")]
        refresh: bool,
        /// Compare both sides instead of importing; exit 1 on any mismatch.
        #[arg(long, conflicts_with_all = ["publish", "channels"])]
        verify: bool,
        /// Only list the active legacy channels the model lacks, as TOML to add.
        #[arg(long, conflicts_with = "publish")]
        channels: bool,
        /// Run even when the legacy role could write there (the import still reads in a
        /// read-only transaction).
        #[arg(long)]
        allow_writable_source: bool,
        #[arg(long, value_parser = ["human", "json"], default_value = "human")]
        format: String,
    },
    /// The way back after a cutover: writes every message stored since the import (above
    /// its per-channel checkpoints) into the legacy database, in its shape. Idempotent.
    ExportLegacy {
        /// Where the URL of a role that can write the legacy tables is: `env:NAME` or
        /// `secret:ID`. Never the URL itself.
        #[arg(long, default_value = "env:TGSTACK_LEGACY_WRITE_URL")]
        to: String,
        /// The schema of the legacy tables.
        #[arg(long, default_value = "public")]
        legacy_schema: String,
        #[arg(long, value_parser = ["human", "json"], default_value = "human")]
        format: String,
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
