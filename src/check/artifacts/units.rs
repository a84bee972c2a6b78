//! systemd units re-read from the tree: known sections and keys, environment the program
//! reads and nothing else, no `${}` in Environment=, secrets only through EnvironmentFile
//! (29), the session's state directory private (30).

use std::collections::BTreeSet;

use super::Files;
use super::parse::{self, IniEntry};
use crate::check::Ctx;
use crate::check::index::Index;
use crate::finding::Severity;
use crate::model::{Deploy, Kind, Service, paths};

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

/// One rendered unit file and the model service it runs.
struct Unit<'a> {
    file: String,
    /// Model path of the service.
    path: String,
    entries: Vec<IniEntry>,
    service: &'a Service,
}

impl Unit<'_> {
    /// The value and line of `key` in [Service].
    fn get(&self, key: &str) -> Option<(String, usize)> {
        self.entries
            .iter()
            .find(|e| e.section == "Service" && e.key == key)
            .map(|e| (e.value.clone(), e.line))
    }
}

pub fn run(cx: &mut Ctx<'_>, files: &Files<'_>, index: &Index<'_>) {
    let stack = cx.stack();
    for (name, service) in &stack.services {
        if service.deploy != Deploy::Native || !matches!(service.kind, Kind::Gateway | Kind::Api) {
            continue;
        }
        let file = paths::unit(name);
        let Some(text) = files.text(&file) else {
            continue;
        };
        let (entries, issues) = parse::ini(text);
        let unit = Unit {
            path: format!("services.{name}"),
            file,
            entries,
            service,
        };
        for issue in issues {
            cx.report_file(
                "TG022",
                Severity::Error,
                &unit.path,
                &unit.file,
                Some(issue.line),
                format!("{}: {}", unit.file, issue.message),
                "re-render".into(),
            );
        }
        for entry in &unit.entries {
            known_key(cx, &unit, entry);
            if entry.section == "Service" && entry.key == "Environment" {
                environment(cx, &unit, entry, index);
            }
        }
        environment_file(cx, &unit);
        own_user(cx, &unit);
        if service.kind == Kind::Gateway {
            state_directory(cx, &unit);
        }
    }
}

/// The unit as found runs as a user of its own, never root (a hand edit or a missing
/// `User=` gives the gateway the whole host).
fn own_user(cx: &mut Ctx<'_>, unit: &Unit<'_>) {
    let user = unit
        .entries
        .iter()
        .find(|e| e.section == "Service" && e.key == "User");
    let dynamic = unit
        .entries
        .iter()
        .any(|e| e.section == "Service" && e.key == "DynamicUser" && e.value == "yes");
    let problem = match user {
        Some(entry) if matches!(entry.value.trim(), "root" | "0") => {
            Some((Some(entry.line), "runs as root".to_string()))
        }
        None if !dynamic => Some((None, "names no User=, so it runs as root".to_string())),
        _ => None,
    };
    if let Some((line, problem)) = problem {
        cx.report_file(
            "TG701",
            Severity::Error,
            &format!("{}.native.user", unit.path),
            &unit.file,
            line,
            format!("{}: the unit {problem}", unit.file),
            "run it as the model's dedicated user; re-render".into(),
        );
    }
}

/// Sections and keys systemd knows.
fn known_key(cx: &mut Ctx<'_>, unit: &Unit<'_>, entry: &IniEntry) {
    let (path, file) = (unit.path.as_str(), unit.file.as_str());
    match UNIT_KEYS
        .iter()
        .find(|(section, _)| *section == entry.section)
    {
        None => cx.report_file(
            "TG022",
            Severity::Error,
            path,
            file,
            Some(entry.line),
            format!("{file}: unknown unit section [{}]", entry.section),
            "units have [Unit], [Service] and [Install]".into(),
        ),
        Some((_, keys)) if !keys.contains(&entry.key.as_str()) => {
            let hint = crate::suggest::did_you_mean(&entry.key, keys.iter().copied());
            cx.report_file(
                "TG022",
                Severity::Error,
                path,
                file,
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
}

/// An Environment= line: no `${}`, no secret, only variables the program reads.
fn environment(cx: &mut Ctx<'_>, unit: &Unit<'_>, entry: &IniEntry, index: &Index<'_>) {
    let (path, file) = (unit.path.as_str(), unit.file.as_str());
    let (var, value) = entry.value.split_once('=').unwrap_or((&entry.value, ""));
    let var = var.trim_matches('"');
    if value.contains("${") {
        cx.report_file("TG605", Severity::Error, path, file, Some(entry.line), format!("{file}: Environment={var} uses ${{}} expansion, which systemd does not perform there"), "write the value itself; secrets come from EnvironmentFile".into());
    }
    if index.secret_envs.contains(var) {
        cx.report_file(
            "TG104",
            Severity::Error,
            path,
            file,
            Some(entry.line),
            format!("{file}: secret {var} set inline with Environment="),
            "secrets come only from the EnvironmentFile in deploy.secrets_dir".into(),
        );
    } else if !crate::catalog::gateway::PROCESS_ENV.contains(&var) {
        cx.report_file(
            "TG605",
            Severity::Error,
            path,
            file,
            Some(entry.line),
            format!("{file}: Environment={var} is not read by tg-gateway"),
            format!(
                "tg-gateway reads {} and its secrets",
                crate::catalog::gateway::PROCESS_ENV.join(", ")
            ),
        );
    }
}

/// Secrets come from an EnvironmentFile in deploy.secrets_dir (incident 29).
fn environment_file(cx: &mut Ctx<'_>, unit: &Unit<'_>) {
    let stack = cx.stack();
    let (path, file) = (unit.path.as_str(), unit.file.as_str());
    let secret_envs: BTreeSet<String> =
        crate::model::secret_files::gateway_secrets(stack, unit.service)
            .into_keys()
            .collect();
    match unit.get("EnvironmentFile") {
        Some((env_file, line))
            if !env_file
                .trim_start_matches('-')
                .starts_with(&stack.deploy.secrets_dir) =>
        {
            cx.report_file(
                "TG605",
                Severity::Error,
                path,
                file,
                Some(line),
                format!("{file}: EnvironmentFile {env_file} is outside deploy.secrets_dir"),
                "read secrets from the deploy-time secrets directory".into(),
            )
        }
        None if !secret_envs.is_empty() => cx.report_file(
            "TG605",
            Severity::Error,
            path,
            file,
            None,
            format!(
                "{file} has no EnvironmentFile: the process gets none of its secrets ({})",
                secret_envs.iter().cloned().collect::<Vec<_>>().join(", ")
            ),
            "re-render".into(),
        ),
        _ => {}
    }
}

/// Incident 30: the session lives in a private state directory.
fn state_directory(cx: &mut Ctx<'_>, unit: &Unit<'_>) {
    let file = unit.file.as_str();
    let session_path = format!("{}.gateway.session_file", unit.path);
    let state = unit.get("StateDirectory");
    let mode = unit.get("StateDirectoryMode").map(|m| m.0);
    let umask = unit.get("UMask").map(|m| m.0);
    if state.is_none() {
        cx.report_file(
            "TG606",
            Severity::Error,
            &session_path,
            file,
            None,
            format!("{file} has no StateDirectory for the Telegram session"),
            "re-render: the unit owns the session directory".into(),
        );
    }
    if mode.as_deref() != Some("0700") {
        cx.report_file(
            "TG606",
            Severity::Error,
            &session_path,
            file,
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
            &session_path,
            file,
            None,
            format!(
                "{file}: UMask is {} (the session file must be created 0600)",
                umask.unwrap_or_else(|| "unset".into())
            ),
            "UMask=0077".into(),
        );
    }
}
