//! Small line-aware readers for the rendered dialects, so findings can name the line.

/// One `key = value` of an INI section (PgBouncer: `;`/`#` start a comment only at line start).
#[derive(Debug, Clone, PartialEq)]
pub struct IniEntry {
    pub section: String,
    pub key: String,
    pub value: String,
    pub line: usize,
}

/// A malformed line of a config file.
#[derive(Debug, Clone, PartialEq)]
pub struct SyntaxIssue {
    pub line: usize,
    pub message: String,
}

pub fn ini(text: &str) -> (Vec<IniEntry>, Vec<SyntaxIssue>) {
    let mut entries = Vec::new();
    let mut issues = Vec::new();
    let mut section = String::new();
    for (index, raw) in text.lines().enumerate() {
        let line = index + 1;
        let trimmed = raw.trim();
        if trimmed.is_empty() || trimmed.starts_with(';') || trimmed.starts_with('#') {
            continue;
        }
        if let Some(rest) = trimmed.strip_prefix('[') {
            match rest.strip_suffix(']') {
                Some(name) => section = name.trim().to_string(),
                None => issues.push(SyntaxIssue {
                    line,
                    message: format!("unterminated section header `{trimmed}`"),
                }),
            }
            continue;
        }
        match trimmed.split_once('=') {
            Some((key, value)) => entries.push(IniEntry {
                section: section.clone(),
                key: key.trim().to_string(),
                value: value.trim().to_string(),
                line,
            }),
            None => issues.push(SyntaxIssue {
                line,
                message: format!("`{trimmed}` is not `key = value`"),
            }),
        }
    }
    (entries, issues)
}

/// A directive of a Redis/Sentinel config: words split like Redis does (quotes, escapes).
#[derive(Debug, Clone, PartialEq)]
pub struct Directive {
    pub words: Vec<String>,
    pub line: usize,
}

impl Directive {
    pub fn name(&self) -> String {
        self.words
            .first()
            .map(|w| w.to_ascii_lowercase())
            .unwrap_or_default()
    }
    pub fn arg(&self, index: usize) -> Option<&str> {
        self.words.get(index + 1).map(String::as_str)
    }
}

pub fn redis_conf(text: &str) -> (Vec<Directive>, Vec<SyntaxIssue>) {
    let mut directives = Vec::new();
    let mut issues = Vec::new();
    for (index, raw) in text.lines().enumerate() {
        let trimmed = raw.trim();
        if trimmed.is_empty() || trimmed.starts_with('#') {
            continue;
        }
        match split_args(trimmed) {
            Some(words) if !words.is_empty() => directives.push(Directive {
                words,
                line: index + 1,
            }),
            Some(_) => {}
            None => issues.push(SyntaxIssue {
                line: index + 1,
                message: "unbalanced quotes".into(),
            }),
        }
    }
    (directives, issues)
}

/// Redis' `sdssplitargs`: spaces separate words; "double" quotes with backslash escapes,
/// 'single' quotes literal.
fn split_args(line: &str) -> Option<Vec<String>> {
    let mut words = Vec::new();
    let mut chars = line.chars().peekable();
    loop {
        while chars.peek().is_some_and(|c| c.is_whitespace()) {
            chars.next();
        }
        let Some(&first) = chars.peek() else {
            return Some(words);
        };
        let mut word = String::new();
        if first == '"' || first == '\'' {
            chars.next();
            let mut closed = false;
            while let Some(c) = chars.next() {
                if c == first {
                    closed = true;
                    break;
                }
                if c == '\\' && first == '"' {
                    match chars.next()? {
                        'n' => word.push('\n'),
                        't' => word.push('\t'),
                        other => word.push(other),
                    }
                } else {
                    word.push(c);
                }
            }
            if !closed || chars.peek().is_some_and(|c| !c.is_whitespace()) {
                return None;
            }
        } else {
            while let Some(&c) = chars.peek() {
                if c.is_whitespace() {
                    break;
                }
                word.push(c);
                chars.next();
            }
        }
        words.push(word);
    }
}

/// `name = value` lines of postgresql.conf (or rabbitmq.conf's sysctl format), with the
/// value unquoted.
#[derive(Debug, Clone, PartialEq)]
pub struct Setting {
    pub key: String,
    pub value: String,
    pub line: usize,
}

pub fn settings(text: &str) -> (Vec<Setting>, Vec<SyntaxIssue>) {
    let mut out = Vec::new();
    let mut issues = Vec::new();
    for (index, raw) in text.lines().enumerate() {
        let without_comment = strip_hash_comment(raw);
        let trimmed = without_comment.trim();
        if trimmed.is_empty() {
            continue;
        }
        // `name = value`, `name value` or `name=value`: the name is the leading word, so
        // an `=` inside a quoted value (`primary_conninfo 'host=db'`) is the value's.
        let name_len = trimmed
            .find(|c: char| !(c.is_ascii_alphanumeric() || "_.-$".contains(c)))
            .unwrap_or(trimmed.len());
        let (key, rest) = trimmed.split_at(name_len);
        let rest = rest.trim_start();
        let (value, has_equals) = match rest.strip_prefix('=') {
            Some(value) => (value.trim(), true),
            None => (rest, false),
        };
        if key.is_empty() || (value.is_empty() && !has_equals) {
            issues.push(SyntaxIssue {
                line: index + 1,
                message: format!("`{trimmed}` has no value"),
            });
            continue;
        }
        let value = value
            .strip_prefix('\'')
            .and_then(|v| v.strip_suffix('\''))
            .map(|v| v.replace("''", "'"))
            .unwrap_or_else(|| value.to_string());
        out.push(Setting {
            key: key.to_string(),
            value,
            line: index + 1,
        });
    }
    (out, issues)
}

/// Drops a `#` comment that is not inside single quotes.
fn strip_hash_comment(line: &str) -> &str {
    let mut quoted = false;
    for (i, c) in line.char_indices() {
        match c {
            '\'' => quoted = !quoted,
            '#' if !quoted => return &line[..i],
            _ => {}
        }
    }
    line
}

/// One record of pg_hba.conf.
#[derive(Debug, Clone, PartialEq)]
pub struct HbaRecord {
    pub kind: String,
    pub database: String,
    pub user: String,
    pub address: Option<String>,
    pub method: String,
    pub line: usize,
}

pub fn hba(text: &str) -> (Vec<HbaRecord>, Vec<SyntaxIssue>) {
    let mut records = Vec::new();
    let mut issues = Vec::new();
    for (index, raw) in text.lines().enumerate() {
        let line = index + 1;
        let fields: Vec<&str> = strip_hash_comment(raw).split_whitespace().collect();
        match fields.as_slice() {
            [] => {}
            ["local", db, user, method, ..] => records.push(HbaRecord {
                kind: "local".into(),
                database: db.to_string(),
                user: user.to_string(),
                address: None,
                method: method.to_string(),
                line,
            }),
            [
                kind @ ("host" | "hostssl" | "hostnossl" | "hostgssenc" | "hostnogssenc"),
                db,
                user,
                address,
                method,
                rest @ ..,
            ] => {
                // `10.0.0.0 255.0.0.0 md5`: an address and a netmask in two fields.
                let netmask = method.parse::<std::net::IpAddr>().is_ok();
                let (address, method) = match (netmask, rest.first()) {
                    (true, Some(after)) => (format!("{address}/{method}"), after.to_string()),
                    _ => (address.to_string(), method.to_string()),
                };
                records.push(HbaRecord {
                    kind: kind.to_string(),
                    database: db.to_string(),
                    user: user.to_string(),
                    address: Some(address),
                    method,
                    line,
                })
            }
            _ => issues.push(SyntaxIssue {
                line,
                message: format!("`{}` is not a pg_hba record", raw.trim()),
            }),
        }
    }
    (records, issues)
}

/// The line a YAML parser's message names (`... line 57 column 5 ...`).
pub fn error_line(message: &str) -> Option<usize> {
    message
        .split("line ")
        .nth(1)
        .and_then(|rest| rest.split(|c: char| !c.is_ascii_digit()).next())
        .and_then(|n| n.parse().ok())
}

/// The 1-based line of the first line of `text` containing `needle`.
pub fn line_of(text: &str, needle: &str) -> Option<usize> {
    text.lines().position(|l| l.contains(needle)).map(|i| i + 1)
}

/// `line_of(text, "\"{s}\"")` for many `s` in one pass over `text`: the first line of every
/// double-quoted string. A `"s"` starts at a quote and ends at the next one, so each quote
/// and the text up to the next quote is a candidate.
pub struct QuotedLines<'a> {
    text: &'a str,
    first: std::collections::HashMap<&'a str, usize>,
}

impl<'a> QuotedLines<'a> {
    pub fn new(text: &'a str) -> Self {
        let mut first = std::collections::HashMap::new();
        let quotes: Vec<usize> = text.match_indices('"').map(|(i, _)| i).collect();
        let mut line = 1;
        let mut counted = 0;
        for pair in quotes.windows(2) {
            let (open, close) = (pair[0], pair[1]);
            line += text[counted..open].matches('\n').count();
            counted = open;
            let inner = &text[open + 1..close];
            if !inner.contains('\n') {
                first.entry(inner).or_insert(line);
            }
        }
        QuotedLines { text, first }
    }

    /// The first line containing `"inner"`.
    pub fn line_of(&self, inner: &str) -> Option<usize> {
        if inner.contains(['"', '\n', '\r']) {
            return line_of(self.text, &format!("\"{inner}\""));
        }
        self.first.get(inner).copied()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redis_words_follow_redis_quoting() {
        let (d, issues) =
            redis_conf("include \"/a b/c.conf\"\nsentinel monitor m 'x y' 6379 2\nbad \"open\n");
        assert_eq!(d[0].words, vec!["include", "/a b/c.conf"]);
        assert_eq!(
            d[1].words,
            vec!["sentinel", "monitor", "m", "x y", "6379", "2"]
        );
        assert_eq!(issues.len(), 1);
        assert_eq!(issues[0].line, 3);
    }

    #[test]
    fn pg_settings_unquote_and_strip_comments() {
        let (s, _) =
            settings("listen_addresses = '*' # all\nport=5432\nx = 'it''s # not a comment'\n");
        assert_eq!(s[0].value, "*");
        assert_eq!(s[1].value, "5432");
        assert_eq!(s[2].value, "it's # not a comment");
    }

    #[test]
    fn quoted_lines_agree_with_line_of() {
        let text = "a: \"x\"\nb: \"y\" \"x\"\n\"\"\nc: \"p\nq\"\nd: \"y z\"\n";
        let quoted = QuotedLines::new(text);
        for inner in ["x", "y", "", "p\nq", "y z", " ", "missing", "\n", "x\" \"y"] {
            assert_eq!(
                quoted.line_of(inner),
                line_of(text, &format!("\"{inner}\"")),
                "{inner:?}"
            );
        }
    }

    #[test]
    fn hba_records_and_ini_entries_keep_lines() {
        let (r, _) = hba("# c\nhost all all 10.0.0.0/8 trust\nlocal all postgres peer\n");
        assert_eq!((r[0].method.as_str(), r[0].line), ("trust", 2));
        assert_eq!(r[1].address, None);
        let (e, issues) = ini("[pgbouncer]\n;x\nauth_type = md5\nnonsense\n");
        assert_eq!(
            (e[0].key.as_str(), e[0].value.as_str(), e[0].line),
            ("auth_type", "md5", 3)
        );
        assert_eq!(issues[0].line, 4);
    }
}
