//! The model an import builds, in the order it is written: tables of keys, each value with
//! the note that says where it came from when it was guessed, printed as TOML with those
//! notes as comments.

use toml::Value;

/// What a draft value can be made from (ports are `u16`, which TOML values do not take).
pub trait IntoValue {
    fn into_value(self) -> Value;
}

impl IntoValue for u16 {
    fn into_value(self) -> Value {
        Value::Integer(i64::from(self))
    }
}

macro_rules! into_value {
    ($($t:ty),*) => {$(
        impl IntoValue for $t {
            fn into_value(self) -> Value {
                Value::from(self)
            }
        }
    )*};
}
into_value!(i64, f64, bool, &str, String, Value);

/// One table of the draft: keys in insertion order.
#[derive(Debug, Default, Clone)]
pub struct Table {
    entries: Vec<(String, Entry)>,
}

#[derive(Debug, Clone)]
enum Entry {
    Value { value: Value, note: Option<String> },
    Table(Table),
    Tables(Vec<Table>),
}

impl Table {
    /// Sets `key` (replacing an earlier value) with no note: read as it is.
    pub fn set(&mut self, key: &str, value: impl IntoValue) -> &mut Self {
        self.put(key, value.into_value(), None)
    }

    /// Sets `key` with a comment saying why the value had to be guessed.
    pub fn guess(&mut self, key: &str, value: impl IntoValue, why: impl Into<String>) -> &mut Self {
        self.put(key, value.into_value(), Some(why.into()))
    }

    fn put(&mut self, key: &str, value: Value, note: Option<String>) -> &mut Self {
        let entry = Entry::Value { value, note };
        match self.entries.iter_mut().find(|(k, _)| k == key) {
            Some((_, old)) => *old = entry,
            None => self.entries.push((key.to_owned(), entry)),
        }
        self
    }

    /// The sub-table `key`, created empty at the end when missing.
    pub fn table(&mut self, key: &str) -> &mut Table {
        let at = match self.entries.iter().position(|(k, _)| k == key) {
            Some(at) => at,
            None => {
                self.entries
                    .push((key.to_owned(), Entry::Table(Table::default())));
                self.entries.len() - 1
            }
        };
        match &mut self.entries[at].1 {
            Entry::Table(table) => table,
            other => {
                *other = Entry::Table(Table::default());
                match other {
                    Entry::Table(table) => table,
                    _ => unreachable!("just set"),
                }
            }
        }
    }

    /// Appends a table to the array of tables `key` (`[[key]]`).
    pub fn push(&mut self, key: &str, table: Table) {
        if let Some((_, Entry::Tables(list))) = self.entries.iter_mut().find(|(k, _)| k == key) {
            list.push(table);
            return;
        }
        self.entries
            .push((key.to_owned(), Entry::Tables(vec![table])));
    }

    /// A parsed TOML table as draft tables: sub-tables and arrays of tables keep their
    /// headers, everything else is a value.
    pub fn from_toml(source: &toml::Table) -> Table {
        let mut table = Table::default();
        for (key, value) in source {
            match value {
                Value::Table(inner) => *table.table(key) = Table::from_toml(inner),
                Value::Array(items) if !items.is_empty() && items.iter().all(Value::is_table) => {
                    for item in items.iter().filter_map(Value::as_table) {
                        table.push(key, Table::from_toml(item));
                    }
                }
                other => {
                    table.set(key, other.clone());
                }
            }
        }
        table
    }

    /// The value of `key`, when it is a plain value.
    pub fn get(&self, key: &str) -> Option<&Value> {
        self.entries.iter().find_map(|(k, e)| match e {
            Entry::Value { value, .. } if k == key => Some(value),
            _ => None,
        })
    }

    /// The plain value at a path of sub-tables (`["host", "bind"]`).
    pub fn get_path(&self, path: &[&str]) -> Option<&Value> {
        let (last, tables) = path.split_last()?;
        let mut table = self;
        for key in tables {
            table = table.entries.iter().find_map(|(k, e)| match e {
                Entry::Table(t) if k == key => Some(t),
                _ => None,
            })?;
        }
        table.get(last)
    }

    /// Whether `key` is a sub-table.
    pub fn has_table(&self, key: &str) -> bool {
        self.entries
            .iter()
            .any(|(k, e)| k == key && matches!(e, Entry::Table(_)))
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The TOML text of this table as the document root.
    pub fn to_toml(&self) -> String {
        let mut out = String::new();
        self.write(&mut out, &[]);
        out
    }

    /// Plain values first (they belong to this table's header), then sub-tables and
    /// arrays of tables, each under its dotted header.
    fn write(&self, out: &mut String, path: &[String]) {
        for (key, entry) in &self.entries {
            if let Entry::Value { value, note } = entry {
                out.push_str(&format!("{} = {}", bare_or_quoted(key), inline(value)));
                if let Some(note) = note {
                    out.push_str(&format!("  # guessed: {note}"));
                }
                out.push('\n');
            }
        }
        for (key, entry) in &self.entries {
            let mut inner = path.to_vec();
            inner.push(bare_or_quoted(key));
            match entry {
                Entry::Value { .. } => {}
                Entry::Table(table) => {
                    let has_values = table
                        .entries
                        .iter()
                        .any(|(_, e)| matches!(e, Entry::Value { .. }));
                    if has_values || table.entries.is_empty() {
                        out.push_str(&format!("\n[{}]\n", inner.join(".")));
                    }
                    table.write(out, &inner);
                }
                Entry::Tables(list) => {
                    for table in list {
                        out.push_str(&format!("\n[[{}]]\n", inner.join(".")));
                        table.write(out, &inner);
                    }
                }
            }
        }
    }
}

/// A key as TOML writes it: bare when it can be.
fn bare_or_quoted(key: &str) -> String {
    let bare = !key.is_empty()
        && key
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
    if bare {
        key.to_owned()
    } else {
        Value::String(key.to_owned()).to_string()
    }
}

/// A value on one line (arrays and inline tables included).
fn inline(value: &Value) -> String {
    match value {
        Value::Array(items) => {
            let items: Vec<String> = items.iter().map(inline).collect();
            format!("[{}]", items.join(", "))
        }
        Value::Table(table) => {
            let items: Vec<String> = table
                .iter()
                .map(|(k, v)| format!("{} = {}", bare_or_quoted(k), inline(v)))
                .collect();
            format!("{{ {} }}", items.join(", "))
        }
        other => other.to_string(),
    }
}

/// `{ secret = "id" }`, the model's reference to a secret.
pub fn secret_ref(id: &str) -> Value {
    let mut table = toml::map::Map::new();
    table.insert("secret".into(), Value::String(id.to_owned()));
    Value::Table(table)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tables_follow_their_values_and_guesses_are_comments() {
        let mut root = Table::default();
        root.set("name", "demo");
        let service = root.table("services").table("db");
        service
            .set("kind", "postgres")
            .guess("port", 5432u16, "the image's port");
        service.table("postgres").set("password", secret_ref("pw"));
        let mut alert = Table::default();
        alert.set("name", "Down");
        root.push("alerts", alert);
        let text = root.to_toml();
        assert_eq!(
            text,
            "name = \"demo\"\n\n[services.db]\nkind = \"postgres\"\nport = 5432  # guessed: the \
             image's port\n\n[services.db.postgres]\npassword = { secret = \"pw\" }\n\n\
             [[alerts]]\nname = \"Down\"\n"
        );
        let parsed: toml::Table = text.parse().unwrap();
        assert_eq!(parsed["services"]["db"]["port"].as_integer(), Some(5432));
    }
}
