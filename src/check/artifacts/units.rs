//! systemd units re-read from the tree: known sections and keys, environment the program
//! reads and nothing else, no `${}` in Environment=, secrets only through EnvironmentFile
//! (29), the session's state directory private (30).

use std::collections::BTreeSet;

use super::Files;
use super::parse::{self, IniEntry};
use crate::check::Ctx;
use crate::check::dialect::{Dialect, Release};
use crate::check::index::Index;
use crate::finding::Severity;
use crate::model::app::AppSettings;
use crate::model::{Deploy, Kind, Service, paths};

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
        if service.deploy != Deploy::Native
            || !matches!(service.kind, Kind::Gateway | Kind::Api | Kind::App)
        {
            continue;
        }
        let file = paths::unit(name);
        let Some(text) = files.text(&file) else {
            continue;
        };
        let (entries, _) = parse::ini(text);
        let unit = Unit {
            path: format!("services.{name}"),
            file,
            entries,
            service,
        };
        // Sections and directives against those the installed systemd knows.
        let unit_name = unit.file.rsplit('/').next().unwrap_or(&unit.file);
        for issue in Dialect::Systemd.check(unit_name, text, Release::of(service)) {
            cx.report_file(
                "TG022",
                Severity::Error,
                &unit.path,
                &unit.file,
                Some(issue.line),
                format!("{}: {}", unit.file, issue.message),
                issue.hint,
            );
        }
        for entry in &unit.entries {
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

/// An Environment= line: no `${}`, no secret, only variables the program reads.
fn environment(cx: &mut Ctx<'_>, unit: &Unit<'_>, entry: &IniEntry, index: &Index<'_>) {
    let (path, file) = (unit.path.as_str(), unit.file.as_str());
    let (var, value) = entry.value.split_once('=').unwrap_or((&entry.value, ""));
    let var = var.trim_matches('"');
    if value.contains("${") {
        cx.report_file(
            "TG605",
            Severity::Error,
            path,
            file,
            Some(entry.line),
            format!(
                "{file}: Environment={var} uses ${{}} expansion, which systemd does not \
                perform there",
            ),
            "write the value itself; secrets come from EnvironmentFile".into(),
        );
    }
    if let Some(app) = &unit.service.app {
        app_environment(cx, unit, entry, app, var);
        return;
    }
    if index.secret_envs.contains(var) {
        inline_secret(cx, unit, entry, var);
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

/// TG104: a secret written into the unit instead of its EnvironmentFile (incident 29).
fn inline_secret(cx: &mut Ctx<'_>, unit: &Unit<'_>, entry: &IniEntry, var: &str) {
    let (path, file) = (unit.path.as_str(), unit.file.as_str());
    let message = format!("{file}: secret {var} set inline with Environment=");
    let hint = "secrets come only from the EnvironmentFile in deploy.secrets_dir".into();
    cx.report_file(
        "TG104",
        Severity::Error,
        path,
        file,
        Some(entry.line),
        message,
        hint,
    );
}

/// An app's Environment= line: a variable its model declares, never a secret link.
fn app_environment(
    cx: &mut Ctx<'_>,
    unit: &Unit<'_>,
    entry: &IniEntry,
    app: &AppSettings,
    var: &str,
) {
    let (path, file) = (unit.path.as_str(), unit.file.as_str());
    let secret = app.links.get(var).is_some_and(|l| l.secret.is_some());
    if secret {
        inline_secret(cx, unit, entry, var);
    } else if !app.env.contains_key(var) && !app.links.contains_key(var) {
        let message = format!("{file}: Environment={var} is not in the model's env or links");
        let hint = format!(
            "declare it in [services.{}.app.env] and re-render",
            unit.path.trim_start_matches("services.")
        );
        cx.report_file(
            "TG605",
            Severity::Error,
            path,
            file,
            Some(entry.line),
            message,
            hint,
        );
    }
}

/// Secrets come from an EnvironmentFile in deploy.secrets_dir (incident 29).
fn environment_file(cx: &mut Ctx<'_>, unit: &Unit<'_>) {
    let stack = cx.stack();
    let (path, file) = (unit.path.as_str(), unit.file.as_str());
    let secret_envs: BTreeSet<String> =
        crate::model::secret_files::native_env_secrets(stack, unit.service)
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
