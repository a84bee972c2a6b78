//! SQL migrations and systemd units re-read from the tree.
//! SQL: every statement parsed (TimescaleDB-only statements recognised explicitly by
//! `check::sql`), ON CONFLICT targets deterministic unique keys (17), every DDL statement
//! idempotent (19), no session-level state in functions called through the pooler (18).
//! Units: known sections and keys, environment the program reads and nothing else, no
//! `${}` in Environment=, secrets only through EnvironmentFile (29), the session's state
//! directory private (30).

use std::collections::BTreeSet;

use super::Files;
use super::parse;
use crate::check::Ctx;
use crate::finding::Severity;
use crate::model::{Deploy, Kind, PoolMode};

pub fn run(cx: &mut Ctx<'_>, files: &Files<'_>) {
    sql(cx, files);
    units(cx, files);
}

fn sql(cx: &mut Ctx<'_>, files: &Files<'_>) {
    let stack = cx.stack();
    for (name, service) in &stack.services {
        if service.kind != Kind::Postgres {
            continue;
        }
        let path = format!("services.{name}.postgres");
        let behind_pooler = stack.services.values().any(|s| {
            s.pgbouncer
                .as_ref()
                .is_some_and(|b| &b.upstream == name && b.pool_mode == PoolMode::Transaction)
        });
        for variant in ["timescaledb", "plain"] {
            let prefix = format!("{name}/sql/{variant}/");
            let scripts: Vec<(String, String)> = files
                .paths()
                .filter(|p| p.starts_with(&prefix) && p.ends_with(".sql"))
                .filter_map(|p| files.text(p).map(|t| (p.clone(), t.to_string())))
                .collect();
            for issue in crate::check::sql::check_sql_files(&scripts) {
                cx.report_file(
                    "TG401",
                    Severity::Error,
                    &path,
                    &issue.file,
                    Some(issue.line as usize),
                    format!("{}: {}", issue.file, issue.message),
                    "fix the statement in the model's SQL settings, or re-render".into(),
                );
            }
            for (file, text) in &scripts {
                idempotent(cx, &path, file, text);
                if behind_pooler {
                    session_state(cx, &path, file, text);
                }
            }
        }
    }
}

/// Incident 19: applying a migration twice must change nothing and not fail.
fn idempotent(cx: &mut Ctx<'_>, path: &str, file: &str, text: &str) {
    let mut in_body = false;
    for (index, line) in text.lines().enumerate() {
        let upper = line.trim().to_ascii_uppercase();
        if line.matches("$$").count() % 2 == 1 {
            in_body = !in_body;
            continue;
        }
        if in_body || upper.starts_with("--") {
            continue;
        }
        let needs = [
            ("CREATE TABLE ", "IF NOT EXISTS"),
            ("CREATE UNLOGGED TABLE ", "IF NOT EXISTS"),
            ("CREATE INDEX ", "IF NOT EXISTS"),
            ("CREATE UNIQUE INDEX ", "IF NOT EXISTS"),
            ("CREATE SCHEMA ", "IF NOT EXISTS"),
            ("CREATE MATERIALIZED VIEW ", "IF NOT EXISTS"),
            ("CREATE EXTENSION ", "IF NOT EXISTS"),
            ("CREATE SEQUENCE ", "IF NOT EXISTS"),
            ("CREATE FUNCTION ", "OR REPLACE"),
            ("CREATE VIEW ", "OR REPLACE"),
        ];
        for (statement, guard) in needs {
            if upper.starts_with(statement) && !upper.contains(guard) {
                cx.report_file(
                    "TG403",
                    Severity::Error,
                    path,
                    file,
                    Some(index + 1),
                    format!(
                        "{file}: `{}` fails when the migration runs twice",
                        statement.trim()
                    ),
                    format!("write `{} {guard}`", statement.trim()),
                );
            }
        }
        if upper.starts_with("INSERT INTO")
            && !text[text.lines().take(index).map(|l| l.len() + 1).sum::<usize>()..]
                .split(';')
                .next()
                .unwrap_or("")
                .to_ascii_uppercase()
                .contains("ON CONFLICT")
        {
            cx.report_file("TG403", Severity::Error, path, file, Some(index + 1), format!("{file}: INSERT without ON CONFLICT fails or duplicates when the migration runs twice"), "add ON CONFLICT ... DO NOTHING / DO UPDATE".into());
        }
    }
}

/// Incident 18: session-level state inside functions the app calls through the pooler.
fn session_state(cx: &mut Ctx<'_>, path: &str, file: &str, text: &str) {
    for (index, line) in text.lines().enumerate() {
        let lower = line.to_ascii_lowercase();
        let code = lower.split("--").next().unwrap_or("");
        if code.contains("pg_advisory_lock(") || code.contains("pg_advisory_lock_shared(") {
            cx.report_file("TG402", Severity::Error, path, file, Some(index + 1), format!("{file}: session-level advisory lock behind transaction pooling: it stays on a server connection other clients get"), "use pg_advisory_xact_lock (released at commit)".into());
        }
        let trimmed = code.trim_start();
        if trimmed.starts_with("set search_path") || trimmed.starts_with("set session ") {
            cx.report_file("TG402", Severity::Error, path, file, Some(index + 1), format!("{file}: `SET` changes session state the next transaction of another client inherits"), "use SET LOCAL, a function's SET clause, or schema-qualified names".into());
        }
    }
}

const UNIT_KEYS: &[(&str, &[&str])] = &[
    (
        "Unit",
        &[
            "Description",
            "Documentation",
            "Wants",
            "Requires",
            "After",
            "Before",
            "BindsTo",
            "PartOf",
            "Conflicts",
            "StartLimitIntervalSec",
            "StartLimitBurst",
            "ConditionPathExists",
            "AssertPathExists",
        ],
    ),
    (
        "Service",
        &[
            "Type",
            "User",
            "Group",
            "ExecStart",
            "ExecStartPre",
            "ExecStartPost",
            "ExecReload",
            "ExecStop",
            "Environment",
            "EnvironmentFile",
            "Restart",
            "RestartSec",
            "KillSignal",
            "KillMode",
            "TimeoutStartSec",
            "TimeoutStopSec",
            "StateDirectory",
            "StateDirectoryMode",
            "RuntimeDirectory",
            "RuntimeDirectoryMode",
            "LogsDirectory",
            "ConfigurationDirectory",
            "UMask",
            "WorkingDirectory",
            "MemoryMax",
            "MemoryHigh",
            "CPUQuota",
            "TasksMax",
            "LimitNOFILE",
            "NoNewPrivileges",
            "ProtectSystem",
            "ProtectHome",
            "PrivateTmp",
            "PrivateDevices",
            "PrivateUsers",
            "ProtectKernelTunables",
            "ProtectKernelModules",
            "ProtectKernelLogs",
            "ProtectControlGroups",
            "ProtectClock",
            "ProtectHostname",
            "ProtectProc",
            "ProcSubset",
            "RestrictSUIDSGID",
            "RestrictRealtime",
            "RestrictNamespaces",
            "LockPersonality",
            "MemoryDenyWriteExecute",
            "RemoveIPC",
            "CapabilityBoundingSet",
            "AmbientCapabilities",
            "RestrictAddressFamilies",
            "SystemCallArchitectures",
            "SystemCallFilter",
            "SystemCallErrorNumber",
            "ReadWritePaths",
            "ReadOnlyPaths",
            "InaccessiblePaths",
            "DynamicUser",
            "WatchdogSec",
            "NotifyAccess",
            "IPAddressDeny",
            "IPAddressAllow",
        ],
    ),
    ("Install", &["WantedBy", "RequiredBy", "Alias", "Also"]),
];

fn units(cx: &mut Ctx<'_>, files: &Files<'_>) {
    let stack = cx.stack();
    for (name, service) in &stack.services {
        if service.deploy != Deploy::Native || !matches!(service.kind, Kind::Gateway | Kind::Api) {
            continue;
        }
        let file = format!("systemd/{name}.service");
        let path = format!("services.{name}");
        let Some(text) = files.text(&file) else {
            continue;
        };
        let (entries, issues) = parse::ini(text);
        for issue in issues {
            cx.report_file(
                "TG022",
                Severity::Error,
                &path,
                &file,
                Some(issue.line),
                format!("{file}: {}", issue.message),
                "re-render".into(),
            );
        }
        let secret_envs: BTreeSet<String> = crate::render::compose::gateway_secrets(stack, service)
            .into_keys()
            .collect();
        let all_secret_envs: BTreeSet<&str> =
            stack.secrets.values().map(|s| s.env.as_str()).collect();
        let has = |key: &str| {
            entries
                .iter()
                .find(|e| e.section == "Service" && e.key == key)
                .map(|e| (e.value.clone(), e.line))
        };
        for entry in &entries {
            match UNIT_KEYS
                .iter()
                .find(|(section, _)| *section == entry.section)
            {
                None => cx.report_file(
                    "TG022",
                    Severity::Error,
                    &path,
                    &file,
                    Some(entry.line),
                    format!("{file}: unknown unit section [{}]", entry.section),
                    "units have [Unit], [Service] and [Install]".into(),
                ),
                Some((_, keys)) if !keys.contains(&entry.key.as_str()) => {
                    let hint = crate::suggest::did_you_mean(&entry.key, keys.iter().copied());
                    cx.report_file(
                        "TG022",
                        Severity::Error,
                        &path,
                        &file,
                        Some(entry.line),
                        format!("{file}: unknown [{}] key `{}`", entry.section, entry.key),
                        if hint.is_empty() {
                            "systemd ignores unknown keys with a warning: remove it".into()
                        } else {
                            hint
                        },
                    );
                }
                _ => {}
            }
            if entry.section == "Service" && entry.key == "Environment" {
                let (var, value) = entry.value.split_once('=').unwrap_or((&entry.value, ""));
                let var = var.trim_matches('"');
                if value.contains("${") {
                    cx.report_file("TG605", Severity::Error, &path, &file, Some(entry.line), format!("{file}: Environment={var} uses ${{}} expansion, which systemd does not perform there"), "write the value itself; secrets come from EnvironmentFile".into());
                }
                if all_secret_envs.contains(var) {
                    cx.report_file(
                        "TG104",
                        Severity::Error,
                        &path,
                        &file,
                        Some(entry.line),
                        format!("{file}: secret {var} set inline with Environment="),
                        "secrets come only from the EnvironmentFile in deploy.secrets_dir".into(),
                    );
                } else if !crate::catalog::gateway::PROCESS_ENV.contains(&var) {
                    cx.report_file(
                        "TG605",
                        Severity::Error,
                        &path,
                        &file,
                        Some(entry.line),
                        format!("{file}: Environment={var} is not read by tg-gateway"),
                        format!(
                            "tg-gateway reads {} and its secrets",
                            crate::catalog::gateway::PROCESS_ENV.join(", ")
                        ),
                    );
                }
            }
        }
        match has("EnvironmentFile") {
            Some((env_file, line))
                if !env_file
                    .trim_start_matches('-')
                    .starts_with(&stack.deploy.secrets_dir) =>
            {
                cx.report_file(
                    "TG605",
                    Severity::Error,
                    &path,
                    &file,
                    Some(line),
                    format!("{file}: EnvironmentFile {env_file} is outside deploy.secrets_dir"),
                    "read secrets from the deploy-time secrets directory".into(),
                )
            }
            None if !secret_envs.is_empty() => cx.report_file(
                "TG605",
                Severity::Error,
                &path,
                &file,
                None,
                format!(
                    "{file} has no EnvironmentFile: the process gets none of its secrets ({})",
                    secret_envs.iter().cloned().collect::<Vec<_>>().join(", ")
                ),
                "re-render".into(),
            ),
            _ => {}
        }
        if service.kind == Kind::Gateway {
            // Incident 30: the session lives in a private state directory.
            let state = has("StateDirectory");
            let mode = has("StateDirectoryMode").map(|m| m.0);
            let umask = has("UMask").map(|m| m.0);
            if state.is_none() {
                cx.report_file(
                    "TG606",
                    Severity::Error,
                    &format!("{path}.gateway.session_file"),
                    &file,
                    None,
                    format!("{file} has no StateDirectory for the Telegram session"),
                    "re-render: the unit owns the session directory".into(),
                );
            }
            if mode.as_deref() != Some("0700") {
                cx.report_file(
                    "TG606",
                    Severity::Error,
                    &format!("{path}.gateway.session_file"),
                    &file,
                    state.as_ref().map(|s| s.1),
                    format!(
                        "{file}: StateDirectoryMode is {} (the session directory must be 0700)",
                        mode.unwrap_or_else(|| "unset".into())
                    ),
                    "StateDirectoryMode=0700".into(),
                );
            }
            if umask.as_deref() != Some("0077") {
                cx.report_file(
                    "TG606",
                    Severity::Error,
                    &format!("{path}.gateway.session_file"),
                    &file,
                    None,
                    format!(
                        "{file}: UMask is {} (the session file must be created 0600)",
                        umask.unwrap_or_else(|| "unset".into())
                    ),
                    "UMask=0077".into(),
                );
            }
        }
    }
}
