//! Secret-bearing files, written only at deploy time (`render --with-secrets`) into the
//! model's `deploy.secrets_dir` (mode 0700, files 0600). Never part of `generated/`.

use std::collections::BTreeMap;
use std::path::Path;

use base64::Engine as _;
use serde_json::json;
use sha2::{Digest, Sha256};

use crate::finding::{Finding, Severity};
use crate::model::secret_files::{SecretFileKind, native_env_secrets, secret_files};
use crate::model::{Model, Service, Stack};

/// A systemd `EnvironmentFile` value: double-quoted, with `\`, `"`, `$` and `` ` `` escaped.
fn systemd_env_quoted(value: &str) -> String {
    let mut out = String::from('"');
    for c in value.chars() {
        if matches!(c, '\\' | '"' | '$' | '`') {
            out.push('\\');
        }
        out.push(c);
    }
    out.push('"');
    out
}

/// Reads every secret of the model through `lookup` (the process environment in the CLI).
/// Reports every missing or unusable variable at once, by name only.
pub fn resolve(
    stack: &Stack,
    lookup: &dyn Fn(&str) -> Option<String>,
) -> Result<BTreeMap<String, String>, Vec<Finding>> {
    let mut values = BTreeMap::new();
    let mut findings = Vec::new();
    for (id, secret) in &stack.secrets {
        match lookup(&secret.env) {
            None => findings.push(
                Finding::new(
                    "TG011",
                    Severity::Error,
                    format!("environment variable {} (secret `{id}`) is not set", secret.env),
                )
                .with_path(format!("secrets.{id}.env"))
                .with_help(format!("export {} before `tgstack render --with-secrets`", secret.env)),
            ),
            Some(value) if value.is_empty() || value.chars().any(|c| c.is_control()) => findings.push(
                Finding::new(
                    "TG011",
                    Severity::Error,
                    format!(
                        "environment variable {} (secret `{id}`) is empty or holds a control character",
                        secret.env
                    ),
                )
                .with_path(format!("secrets.{id}.env"))
                .with_help("secrets are single-line values"),
            ),
            Some(value) => {
                values.insert(id.clone(), value);
            }
        }
    }
    if findings.is_empty() {
        Ok(values)
    } else {
        Err(findings)
    }
}

fn quoted(value: &str, quote: char) -> String {
    let escaped = value
        .replace('\\', "\\\\")
        .replace(quote, &format!("\\{quote}"));
    format!("{quote}{escaped}{quote}")
}

/// PgBouncer userlist entries double the quote character instead of escaping it.
fn userlist_quoted(value: &str) -> String {
    format!("\"{}\"", value.replace('"', "\"\""))
}

/// RabbitMQ's `rabbit_password_hashing_sha256`: base64(salt ++ sha256(salt ++ password)).
/// The salt is derived from user and password so the same inputs give the same file.
pub fn rabbitmq_hash(user: &str, password: &str) -> String {
    let seed = Sha256::digest(format!("tgstack-salt:{user}:{password}").as_bytes());
    let salt = &seed[..4];
    let mut hasher = Sha256::new();
    hasher.update(salt);
    hasher.update(password.as_bytes());
    let mut bytes = salt.to_vec();
    bytes.extend_from_slice(&hasher.finalize());
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

/// The secret-bearing files of the model: file name -> contents.
pub fn files(model: &Model, values: &BTreeMap<String, String>) -> BTreeMap<String, String> {
    let stack = &model.stack;
    let value = |id: &str| values.get(id).cloned().unwrap_or_default();
    secret_files(stack)
        .into_iter()
        .filter_map(|file| {
            let service = stack.service(&file.service);
            let text = match file.kind {
                SecretFileKind::PgbouncerUserlist => userlist(stack, service?, &value)?,
                SecretFileKind::RedisAuth => {
                    let password = quoted(&value(&service?.redis.as_ref()?.password.secret), '"');
                    format!("requirepass {password}\nmasterauth {password}\n")
                }
                SecretFileKind::SentinelAuth => {
                    let s = service?.sentinel.as_ref()?;
                    let r = stack.service(&s.monitors)?.redis.as_ref()?;
                    let password = quoted(&value(&r.password.secret), '"');
                    format!("sentinel auth-pass {} {password}\n", s.master_name)
                }
                SecretFileKind::RabbitmqUsers => rabbitmq_users(service?, &value)?,
                // The cookie file holds the value alone: Erlang reads it whole.
                SecretFileKind::ErlangCookie => {
                    value(&service?.rabbitmq.as_ref()?.cookie.as_ref()?.secret)
                }
                SecretFileKind::NativeEnv => native_env_secrets(stack, service?)
                    .iter()
                    .map(|(var, id)| format!("{var}={}\n", systemd_env_quoted(&value(id))))
                    .collect(),
                // Compose reads secret variables from this file: `docker compose --env-file ...`.
                SecretFileKind::ComposeEnv => stack
                    .secrets
                    .iter()
                    .map(|(id, s)| format!("{}={}\n", s.env, quoted(&value(id), '\'')))
                    .collect(),
            };
            Some((file.name, text))
        })
        .collect()
}

/// PgBouncer's `auth_file`: every role it may log in as, plus its console users.
fn userlist(stack: &Stack, service: &Service, value: &dyn Fn(&str) -> String) -> Option<String> {
    let b = service.pgbouncer.as_ref()?;
    let pg = stack.service(&b.upstream)?.postgres.as_ref()?;
    let mut lines = BTreeMap::new();
    let allowed: Vec<String> = b
        .users
        .clone()
        .unwrap_or_else(|| pg.roles.keys().cloned().collect());
    for role in allowed {
        if let Some(spec) = pg.roles.get(&role) {
            lines.insert(role.clone(), value(&spec.password.secret));
        }
    }
    for console in std::iter::once(&b.admin).chain(b.stats.iter()) {
        lines.insert(console.user.clone(), value(&console.password.secret));
    }
    Some(
        lines
            .iter()
            .map(|(user, password)| {
                format!("{} {}\n", userlist_quoted(user), userlist_quoted(password))
            })
            .collect(),
    )
}

/// RabbitMQ users (hashed passwords) and their permissions, imported at boot.
fn rabbitmq_users(service: &Service, value: &dyn Fn(&str) -> String) -> Option<String> {
    let r = service.rabbitmq.as_ref()?;
    let users: Vec<_> = r
        .users
        .iter()
        .map(|(user, spec)| {
            json!({
                "name": user,
                "password_hash": rabbitmq_hash(user, &value(&spec.password.secret)),
                "hashing_algorithm": "rabbit_password_hashing_sha256",
                "tags": spec.tags,
            })
        })
        .collect();
    let permissions: Vec<_> = r
        .users
        .iter()
        .map(|(user, spec)| {
            json!({
                "user": user, "vhost": r.vhost,
                "configure": spec.configure, "write": spec.write, "read": spec.read,
            })
        })
        .collect();
    let doc = json!({ "users": users, "permissions": permissions });
    Some(serde_json::to_string_pretty(&doc).unwrap_or_default() + "\n")
}

/// Writes the secret files into `dir` (created 0700), each 0600, replacing old ones.
pub fn write(dir: &Path, files: &BTreeMap<String, String>) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)?;
    super::write::set_mode(dir, 0o700)?;
    for (name, text) in files {
        let path = dir.join(name);
        let staging = dir.join(format!(".{name}.tmp"));
        {
            use std::io::Write as _;
            let mut options = std::fs::OpenOptions::new();
            options.write(true).create(true).truncate(true);
            #[cfg(unix)]
            {
                use std::os::unix::fs::OpenOptionsExt;
                options.mode(0o600);
            }
            let mut file = options.open(&staging)?;
            file.write_all(text.as_bytes())?;
            file.sync_all()?;
        }
        super::write::set_mode(&staging, 0o600)?;
        std::fs::rename(&staging, &path)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rabbitmq_hash_has_salt_and_digest_and_is_stable() {
        let hash = rabbitmq_hash("tg_gateway", "s3cret");
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(&hash)
            .unwrap();
        assert_eq!(bytes.len(), 4 + 32);
        let mut hasher = Sha256::new();
        hasher.update(&bytes[..4]);
        hasher.update(b"s3cret");
        assert_eq!(&bytes[4..], hasher.finalize().as_slice());
        assert_eq!(hash, rabbitmq_hash("tg_gateway", "s3cret"));
    }

    #[test]
    fn userlist_doubles_quotes() {
        assert_eq!(userlist_quoted("a\"b"), "\"a\"\"b\"");
    }
}
