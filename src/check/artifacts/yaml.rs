//! Every YAML file of the tree re-parsed: duplicate keys are errors, YAML 1.1 scalars that
//! silently become booleans or octal numbers are warnings (incident class of `yes`/`on`).

use super::Files;
use crate::check::Ctx;
use crate::finding::Severity;

const AMBIGUOUS: &[&str] = &[
    "yes", "no", "on", "off", "y", "n", "Yes", "No", "On", "Off", "YES", "NO", "ON", "OFF", "Y",
    "N",
];

pub fn run(cx: &mut Ctx<'_>, files: &Files<'_>) {
    for path in files.paths() {
        if !(path.ends_with(".yml") || path.ends_with(".yaml")) {
            continue;
        }
        let Some(text) = files.text(path) else {
            continue;
        };
        if let Some(Err(message)) = files.yaml(path) {
            let line = super::parse::error_line(message);
            cx.report_file(
                "TG020",
                Severity::Error,
                "",
                path,
                line,
                format!(
                    "{path} is not valid YAML: {}",
                    message.lines().next().unwrap_or("")
                ),
                "fix the YAML (duplicate keys are errors), or re-render".into(),
            );
            continue;
        }
        for (index, line) in text.lines().enumerate() {
            let content = line.split(" #").next().unwrap_or(line).trim();
            let value = content
                .strip_prefix("- ")
                .or_else(|| content.split_once(": ").map(|(_, v)| v))
                .map(str::trim);
            let Some(value) = value else { continue };
            let ambiguous = AMBIGUOUS.contains(&value)
                || (value.len() > 1
                    && value.starts_with('0')
                    && value.chars().all(|c| c.is_ascii_digit()));
            if ambiguous {
                cx.report_file("TG021", Severity::Warning, "", path, Some(index + 1), format!("{path}: unquoted `{value}` is read as a boolean or number by YAML 1.1 readers"), format!("quote it: \"{value}\""));
            }
        }
    }
}
