//! The secrets of an imported stack. A credential the files take from the environment
//! (`${TG_REDIS_PASSWORD}`) keeps its variable; `.env.example` gives ids and descriptions.
//! A credential written in a file becomes a secret of its own, read from a new variable
//! at deploy time: its value is never copied into the model.

use super::Source;
use super::draft::Table;

#[derive(Default)]
pub struct Secrets {
    /// (id, env, description, guessed) in the order found.
    entries: Vec<Entry>,
}

struct Entry {
    id: String,
    env: String,
    description: String,
    /// Why the id or description was guessed, when it was.
    guess: Option<String>,
}

impl Secrets {
    /// The secrets `.env.example` declares: `# description (secret `id`)` above `VAR=`.
    pub fn read(source: &Source<'_>) -> Secrets {
        let mut secrets = Secrets::default();
        let Some(text) = source.other(".env.example") else {
            return secrets;
        };
        let lines: Vec<&str> = text.lines().map(str::trim).collect();
        let is_var = |line: &str| !line.starts_with('#') && line.contains('=');
        for (at, line) in lines.iter().enumerate() {
            if !is_var(line) {
                continue;
            }
            let var = line.split_once('=').map(|(v, _)| v.trim()).unwrap_or("");
            // Settings (`LOG_LEVEL`, `COMPOSE_PROJECT_NAME`) are no secrets: only a
            // credential's variable becomes one.
            if !crate::finding::is_credential_name(var) {
                continue;
            }
            // The comment right above a variable describes it, unless it heads a run of
            // variables (then it describes the file).
            let next_is_var = lines.get(at + 1).is_some_and(|l| is_var(l));
            let previous_is_var = at > 0 && is_var(lines[at - 1]);
            let alone = !next_is_var && !previous_is_var;
            let note = (at > 0 && alone)
                .then(|| lines[at - 1].strip_prefix('#'))
                .flatten()
                .map(str::trim)
                .unwrap_or("");
            let (description, id) = match note.rsplit_once(" (secret `") {
                Some((description, id)) => (description, Some(id.trim_end_matches("`)"))),
                None => (note, None),
            };
            let guess = id.is_none().then(|| format!("id made from {var}"));
            secrets.entries.push(Entry {
                id: id.map(String::from).unwrap_or_else(|| id_of(var)),
                env: var.to_owned(),
                description: description.to_owned(),
                guess,
            });
        }
        secrets
    }

    /// The id of the secret held in `env`, declared now if it is new.
    pub fn by_env(&mut self, env: &str) -> String {
        if let Some(entry) = self.entries.iter().find(|e| e.env == env) {
            return entry.id.clone();
        }
        let id = id_of(env);
        self.entries.push(Entry {
            id: id.clone(),
            env: env.to_owned(),
            description: String::new(),
            guess: Some(format!("id made from {env}; no .env.example describes it")),
        });
        id
    }

    /// The variable of a declared secret whose name holds `part` (`PGBOUNCER_ADMIN`).
    pub fn env_containing(&self, part: &str) -> Option<String> {
        if part.is_empty() {
            return None;
        }
        self.entries
            .iter()
            .find(|e| e.env.contains(part))
            .map(|e| e.env.clone())
    }

    /// A credential written in a file: a new secret (its value is not copied). Its id is
    /// `id`, or `id_2`, ... when another secret has it: two credentials of the files are
    /// never merged into one.
    pub fn literal(&mut self, id: &str, where_: &str) -> String {
        let id = self.free_id(id);
        let id = id.as_str();
        let env = format!("TG_{}", id.to_ascii_uppercase());
        self.entries.push(Entry {
            id: id.to_owned(),
            env: env.clone(),
            description: format!("written in {where_}"),
            guess: Some(format!(
                "the value in {where_} is not copied: set {env} at deploy time"
            )),
        });
        id.to_owned()
    }

    /// A secret the files never had, which the model requires: read from a new variable.
    pub fn new_secret(&mut self, id: &str, why: &str) -> String {
        if !self.entries.iter().any(|e| e.id == id) {
            let env = format!("TG_{}", id.to_ascii_uppercase());
            self.entries.push(Entry {
                id: id.to_owned(),
                env: env.clone(),
                description: String::new(),
                guess: Some(format!("{why}: set {env} at deploy time")),
            });
        }
        id.to_owned()
    }

    fn free_id(&self, id: &str) -> String {
        let taken = |candidate: &str| self.entries.iter().any(|e| e.id == candidate);
        if !taken(id) {
            return id.to_owned();
        }
        (2..)
            .map(|n| format!("{id}_{n}"))
            .find(|candidate| !taken(candidate))
            .unwrap_or_else(|| id.to_owned())
    }

    /// `[secrets.ID]` tables.
    pub fn write(&self, table: &mut Table) {
        for entry in &self.entries {
            let secret = table.table(&entry.id);
            match &entry.guess {
                Some(why) => secret.guess("env", entry.env.as_str(), why.as_str()),
                None => secret.set("env", entry.env.as_str()),
            };
            if !entry.description.is_empty() {
                secret.set("description", entry.description.as_str());
            }
        }
    }
}

/// `TG_REDIS_PASSWORD` -> `redis_password`.
fn id_of(env: &str) -> String {
    let lower = env.trim().to_ascii_lowercase();
    lower.strip_prefix("tg_").unwrap_or(&lower).to_owned()
}

/// The variable of an interpolation: `${TG_X:?msg}`, `${TG_X}`, `$TG_X`, or one inside a
/// longer value (a URL's password).
pub fn interpolated(value: &str) -> Option<&str> {
    let at = value.find('$')?;
    let rest = value[at + 1..].trim_start_matches('{');
    let end = rest
        .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
        .unwrap_or(rest.len());
    (end > 0).then(|| &rest[..end])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn variables_of_interpolations() {
        assert_eq!(interpolated("${TG_A:?set it}"), Some("TG_A"));
        assert_eq!(interpolated("postgres://u:${PW}@h/db"), Some("PW"));
        assert_eq!(interpolated("$PLAIN"), Some("PLAIN"));
        assert_eq!(interpolated("literal"), None);
        assert_eq!(id_of("TG_REDIS_PASSWORD"), "redis_password");
    }
}
