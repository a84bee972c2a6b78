//! Finds the files of a hand-written stack and tells their dialect by name and content:
//! a `.conf` is scored against each program's catalog, a YAML file by its top-level keys.

use std::path::Path;

use serde_json::Value;

use crate::check::dialect::catalog::{POSTGRESQL_16, RABBITMQ_3_13, REDIS_7_4};

/// What a file is, as far as the audit is concerned.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum FileKind {
    Compose,
    Postgresql,
    PgHba,
    Pgbouncer,
    Userlist,
    Redis,
    Sentinel,
    Rabbitmq,
    Prometheus,
    PromRules,
    GrafanaDatasources,
    GrafanaDashboards,
    Unit,
    Sql,
    Shell,
}

/// One file of the audited directory.
pub struct Audited {
    /// Path relative to the audited directory, `/`-separated.
    pub rel: String,
    pub kind: FileKind,
    pub text: String,
    /// The parsed document of a YAML file, or the parser's message.
    pub yaml: Option<Result<Value, String>>,
}

/// Files larger than this are data, not configuration.
const MAX_BYTES: u64 = 4 << 20;

/// Every file below `dir` of a kind the audit knows, sorted by path. Hidden directories
/// (`.git`) are skipped; unreadable or binary files are not configuration.
pub fn read(dir: &Path) -> std::io::Result<Vec<Audited>> {
    let mut found = Vec::new();
    walk(dir, dir, &mut found)?;
    found.sort_by(|a, b| a.rel.cmp(&b.rel));
    Ok(found)
}

/// Reads `dir` (its own failure is the caller's error); below it, unreadable directories,
/// symlinked directories (no loops), devices and FIFOs are skipped, not fatal.
fn walk(root: &Path, dir: &Path, found: &mut Vec<Audited>) -> std::io::Result<()> {
    let mut entries: Vec<_> = std::fs::read_dir(dir)?.flatten().collect();
    entries.sort_by_key(|e| e.file_name());
    for entry in entries {
        let name = entry.file_name().to_string_lossy().into_owned();
        let path = entry.path();
        let Ok(kind) = entry.file_type() else {
            continue;
        };
        if kind.is_dir() {
            if !name.starts_with('.') {
                let _ = walk(root, &path, found);
            }
            continue;
        }
        // A symlink counts if it leads to a regular file; nothing else is configuration.
        let Ok(meta) = std::fs::metadata(&path) else {
            continue;
        };
        if !meta.is_file() || meta.len() > MAX_BYTES {
            continue;
        }
        let Ok(text) = std::fs::read_to_string(&path) else {
            continue;
        };
        let rel = path
            .strip_prefix(root)
            .unwrap_or(&path)
            .to_string_lossy()
            .replace('\\', "/");
        if let Some(file) = classify(rel, text) {
            found.push(file);
        }
    }
    Ok(())
}

/// The kind of one file, or None for files the audit does not read.
pub fn classify(rel: String, text: String) -> Option<Audited> {
    let name = rel.rsplit('/').next().unwrap_or(&rel).to_ascii_lowercase();
    let suffix = name.rsplit_once('.').map(|(_, s)| s).unwrap_or("");
    let plain = |kind| Some((kind, None));
    let (kind, yaml) = match suffix {
        "yml" | "yaml" => {
            let parsed = serde_saphyr::from_str::<Value>(&text).map_err(|e| e.to_string());
            let kind = match &parsed {
                Ok(document) => yaml_kind(&name, document)?,
                // Unparseable YAML: audited only when its name says what it is.
                Err(_) if name.contains("compose") => FileKind::Compose,
                Err(_) if name.starts_with("prometheus") => FileKind::Prometheus,
                Err(_) => return None,
            };
            (kind, Some(parsed))
        }
        "service" | "timer" | "socket" | "mount" | "automount" | "path" | "target" | "slice" => {
            (FileKind::Unit, None)
        }
        "sql" => plain(FileKind::Sql)?,
        "sh" | "bash" => plain(FileKind::Shell)?,
        _ if text.starts_with("#!") && text.lines().next().is_some_and(|l| l.ends_with("sh")) => {
            plain(FileKind::Shell)?
        }
        "ini" | "conf" | "" if has_line(&text, |l| l == "[pgbouncer]") => {
            plain(FileKind::Pgbouncer)?
        }
        _ if name.starts_with("pg_hba") => plain(FileKind::PgHba)?,
        "txt" | "" if name.contains("userlist") => plain(FileKind::Userlist)?,
        "conf" => plain(conf_kind(&name, &text)?)?,
        _ => return None,
    };
    Some(Audited {
        rel,
        kind,
        text,
        yaml,
    })
}

fn has_line(text: &str, test: impl Fn(&str) -> bool) -> bool {
    text.lines().map(str::trim).any(test)
}

/// A YAML file by its top-level keys.
fn yaml_kind(name: &str, document: &Value) -> Option<FileKind> {
    let has = |key: &str| document.get(key).is_some();
    Some(
        if has("services") && (name.contains("compose") || document["services"].is_object()) {
            FileKind::Compose
        } else if has("scrape_configs") || (has("global") && has("rule_files")) {
            FileKind::Prometheus
        } else if document["groups"]
            .as_array()
            .is_some_and(|g| g.iter().any(|group| group.get("rules").is_some()))
        {
            FileKind::PromRules
        } else if has("datasources") {
            FileKind::GrafanaDatasources
        } else if has("providers") {
            FileKind::GrafanaDashboards
        } else {
            return None;
        },
    )
}

/// A `.conf`: Sentinel if it monitors a master, else the program whose catalog knows
/// most of its keys (postgresql.conf and rabbitmq.conf write `key = value`, Redis
/// `directive value`); names break ties and settle files too short to score.
fn conf_kind(name: &str, text: &str) -> Option<FileKind> {
    if has_line(text, |l| l.starts_with("sentinel monitor ")) {
        return Some(FileKind::Sentinel);
    }
    // Shell env files (`rabbitmq-env.conf`) and brace or semicolon dialects (nginx) are
    // none of these, whatever words they share with them.
    if name.ends_with("-env.conf") {
        return None;
    }
    let (mut postgres, mut rabbitmq, mut redis, mut foreign, mut lines) = (0, 0, 0, 0, 0);
    for line in text.lines().map(str::trim) {
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        lines += 1;
        if line.ends_with(';') || line.contains('{') || line.contains('}') {
            foreign += 1;
            continue;
        }
        match line.split_once('=') {
            Some((key, _)) if !key.trim().contains(' ') => {
                let key = key.trim();
                if POSTGRESQL_16.get(key).is_some() {
                    postgres += 1;
                }
                if RABBITMQ_3_13.get(key).is_some() || key.starts_with("listeners.") {
                    rabbitmq += 1;
                }
            }
            _ => {
                let word = line
                    .split_whitespace()
                    .next()
                    .unwrap_or("")
                    .to_ascii_lowercase();
                if REDIS_7_4.get(&word).is_some() {
                    redis += 1;
                }
            }
        }
    }
    if foreign * 2 > lines {
        return None;
    }
    let by_name = [
        ("postgres", FileKind::Postgresql),
        ("rabbitmq", FileKind::Rabbitmq),
        ("sentinel", FileKind::Sentinel),
        ("redis", FileKind::Redis),
    ]
    .into_iter()
    .find(|(part, _)| name.contains(part))
    .map(|(_, kind)| kind);
    let best = [
        (postgres, FileKind::Postgresql),
        (rabbitmq, FileKind::Rabbitmq),
        (redis, FileKind::Redis),
    ]
    .into_iter()
    .max_by_key(|(score, _)| *score)
    .filter(|(score, _)| *score >= 2)
    .map(|(_, kind)| kind);
    by_name.or(best)
}
