//! Literal secrets anywhere in an audited stack (TG104), and the masking that keeps them
//! out of every finding's excerpt.

use std::sync::LazyLock;

use regex::Regex;
use serde_json::Value;

use super::{Audit, Audited, FileKind};
use crate::finding::{is_credential_name, url_password};

/// A credential-named variable whose value is a credential: not a flag (`yes`, `true`:
/// `ALLOW_EMPTY_PASSWORD=yes`) and not a path (`*_FILE`).
fn credential(name: &str, value: &str) -> bool {
    let flag = matches!(
        value
            .trim_matches(['"', '\''])
            .to_ascii_lowercase()
            .as_str(),
        "yes" | "no" | "true" | "false" | "on" | "off" | "0" | "1"
    );
    is_credential_name(name) && !name.to_ascii_uppercase().ends_with("_FILE") && !flag
}

/// A value that is not a credential written into the file: empty, interpolated
/// (`${VAR}`, Grafana's `$__file{}`), or a reference to a file.
fn indirect(value: &str) -> bool {
    let value = value.trim().trim_matches(['"', '\'']);
    value.is_empty() || value.contains("${") || value.starts_with("$__") || value.starts_with('/')
}

pub fn run(audit: &mut Audit<'_>) {
    let mut found: Vec<(String, usize, String)> = Vec::new();
    for file in audit.files {
        for (line, what) in literal_secrets(file) {
            found.push((file.rel.clone(), line, what));
        }
    }
    for service in audit.deployment.services.values() {
        let Some(file) = audit.files.iter().find(|f| f.rel == service.file) else {
            continue;
        };
        for (key, value) in &service.environment {
            let named = credential(key, value) && !indirect(value);
            let in_url = url_password(value).is_some_and(|r| !indirect(&value[r]));
            if named || in_url {
                let line = line_of(&file.text, |l| l.contains(key.as_str())).unwrap_or(1);
                found.push((
                    file.rel.clone(),
                    line,
                    format!("`{}` sets {key} to a literal credential", service.name),
                ));
            }
        }
    }
    for (rel, line, what) in found {
        audit.error(
            "TG104",
            &rel,
            line,
            format!("{what}: secrets in files end up in repositories, images and logs"),
            "pass it through a secret file or an environment variable set at deploy time",
        );
    }
}

fn line_of(text: &str, test: impl Fn(&str) -> bool) -> Option<usize> {
    text.lines().position(test).map(|i| i + 1)
}

/// (line, what) of each literal credential in one file.
fn literal_secrets(file: &Audited) -> Vec<(usize, String)> {
    let mut found = Vec::new();
    for (index, raw) in file.text.lines().enumerate() {
        let line = raw.trim();
        if line.starts_with('#') || line.starts_with(';') || line.starts_with("--") {
            continue;
        }
        let words: Vec<&str> = line.split_whitespace().collect();
        let what = match file.kind {
            FileKind::Redis | FileKind::Sentinel => match words.as_slice() {
                [directive, value, ..]
                    if matches!(
                        directive.to_ascii_lowercase().as_str(),
                        "requirepass" | "masterauth"
                    ) && !indirect(value) =>
                {
                    Some(format!("{directive} is a literal password"))
                }
                ["sentinel", sub, _, value, ..]
                    if sub.eq_ignore_ascii_case("auth-pass") && !indirect(value) =>
                {
                    Some("sentinel auth-pass is a literal password".into())
                }
                ["sentinel", sub, value, ..]
                    if sub.eq_ignore_ascii_case("sentinel-pass") && !indirect(value) =>
                {
                    Some("sentinel sentinel-pass is a literal password".into())
                }
                _ => None,
            },
            FileKind::Rabbitmq => line
                .split_once('=')
                .filter(|(k, v)| k.trim() == "default_pass" && !indirect(v))
                .map(|_| "default_pass is a literal password".into()),
            FileKind::Pgbouncer => line
                .split_whitespace()
                .find_map(|pair| pair.strip_prefix("password="))
                .filter(|v| !indirect(v))
                .map(|_| "a [databases] entry carries password=".into()),
            FileKind::Userlist => {
                let fields: Vec<&str> = line.split('"').collect();
                fields
                    .get(3)
                    .filter(|secret| !secret.is_empty() && !hashed(secret))
                    .map(|_| {
                        format!(
                            "the userlist holds a plain-text password for \"{}\"",
                            fields[1]
                        )
                    })
            }
            FileKind::Sql => sql_password(line),
            FileKind::Unit | FileKind::Shell => shell_secret(line),
            _ => None,
        };
        let url = url_password(line).filter(|r| !indirect(&line[r.clone()]));
        match what {
            Some(what) => found.push((index + 1, what)),
            None if url.is_some() && !matches!(file.kind, FileKind::Compose) => {
                found.push((index + 1, "a URL carries a literal password".into()))
            }
            None => {}
        }
    }
    if let Some(Ok(document)) = &file.yaml
        && file.kind != FileKind::Compose
    {
        yaml_secrets(document, &file.text, &mut found);
    }
    found
}

/// A PgBouncer userlist secret that is a hash, not a password.
fn hashed(secret: &str) -> bool {
    secret.starts_with("SCRAM-SHA-256$")
        || (secret.len() == 35
            && secret.starts_with("md5")
            && secret[3..].bytes().all(|b| b.is_ascii_hexdigit()))
}

static SQL_PASSWORD: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"(?i)\bPASSWORD\s+'([^']*)'").unwrap());

fn sql_password(line: &str) -> Option<String> {
    let found = SQL_PASSWORD.captures(line)?;
    (!found[1].is_empty()).then(|| "the SQL sets a literal PASSWORD".into())
}

/// `Environment=NAME=value` in a unit, `NAME=value` / `export NAME=value` in a script.
fn shell_secret(line: &str) -> Option<String> {
    let line = line.strip_prefix("Environment=").unwrap_or(line);
    let line = line.strip_prefix("export ").unwrap_or(line);
    line.split_whitespace().find_map(|assignment| {
        let (name, value) = assignment.trim_matches('"').split_once('=')?;
        let name = name.trim_start_matches('"');
        let value = value.trim_matches(['"', '\'']);
        (credential(name, value) && !indirect(value) && !value.starts_with('$'))
            .then(|| format!("{name} is set to a literal credential"))
    })
}

/// `password:`-like keys of a YAML document (Prometheus basic_auth, Grafana datasources).
fn yaml_secrets(value: &Value, text: &str, found: &mut Vec<(usize, String)>) {
    match value {
        Value::Object(map) => {
            for (key, child) in map {
                if let Value::String(secret) = child
                    && credential(key, secret)
                    && !indirect(secret)
                {
                    let line = line_of(text, |l| l.trim_start().starts_with(&format!("{key}:")))
                        .unwrap_or(1);
                    found.push((line, format!("`{key}` is a literal credential")));
                }
                yaml_secrets(child, text, found);
            }
        }
        Value::Array(items) => items.iter().for_each(|i| yaml_secrets(i, text, found)),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn flagged(rel: &str, text: &str) -> Vec<usize> {
        let file = super::super::discover::classify(rel.into(), text.into()).expect("audited");
        literal_secrets(&file)
            .into_iter()
            .map(|(line, _)| line)
            .collect()
    }

    #[test]
    fn flags_and_references_are_not_credentials() {
        let script = "#!/bin/sh\nexport PGPASSWORD=\"$PGPASS\"\nALLOW_EMPTY_PASSWORD=yes\n\
            HAPROXY_BYPASS=1\nPGPASSWORD=s3cret psql\n";
        assert_eq!(flagged("scripts/backup.sh", script), vec![5]);
        let unit = "[Service]\nEnvironment=DB_PASSWORD_FILE=/run/secrets/db\n\
            Environment=API_TOKEN=abc123\n";
        assert_eq!(flagged("x.service", unit), vec![3]);
    }
}
