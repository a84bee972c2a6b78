//! Static check of SQL scripts, statement by statement, with `sqlparser` (PostgreSQL
//! dialect). Scripts are split with sqlparser's tokenizer, so strings, comments and
//! dollar-quoted bodies never split a statement. Statement kinds sqlparser cannot parse are
//! recognised and checked explicitly, never skipped:
//! - `DO` blocks and PL/pgSQL function bodies: every embedded statement and expression is
//!   parsed (`PERFORM x` as `SELECT x`, `IF c THEN` as `SELECT c`, ...) and blocks must nest;
//! - `CREATE MATERIALIZED VIEW ... WITH (timescaledb.continuous ...) ... WITH [NO] DATA`: the
//!   options are checked against TimescaleDB's, the rest is parsed;
//! - `ALTER TABLE ... SET (timescaledb.compress ...)`: option names and the column lists of
//!   `compress_segmentby` / `compress_orderby` are checked;
//! - `REFRESH MATERIALIZED VIEW [CONCURRENTLY] name [WITH [NO] DATA]`.
//!
//! Beyond syntax, every `ON CONFLICT` must name a conflict target that is a unique key of
//! the table, and no column of that key may be filled by a volatile default such as
//! `now()` or a sequence: such a key never sees a repeat, so it deduplicates nothing
//! (incident 17).

pub(crate) mod rows;

use std::collections::BTreeMap;

use serde::Serialize;
use sqlparser::dialect::PostgreSqlDialect;
use sqlparser::parser::Parser;
use sqlparser::tokenizer::{Location, Span, Token, TokenWithSpan, Tokenizer, Whitespace, Word};

/// A problem in one SQL file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SqlIssue {
    pub file: String,
    /// 1-based line in the file.
    pub line: u64,
    pub message: String,
}

/// Checks one script on its own: an `ON CONFLICT` on a table this script does not create
/// is reported. Use [`check_sql_files`] for a migration split over several files.
pub fn check_sql(file: &str, text: &str) -> Vec<SqlIssue> {
    let mut checker = Checker::default();
    checker.script(file, text);
    checker.issues
}

/// Checks scripts applied in this order: tables created by an earlier file are known to
/// the conflict-target checks of later ones.
pub fn check_sql_files(files: &[(String, String)]) -> Vec<SqlIssue> {
    let mut checker = Checker::default();
    for (file, text) in files {
        checker.script(file, text);
    }
    checker.issues
}

/// Default expressions whose value differs on every insert: a unique key holding such a
/// column never conflicts with a retried row.
const VOLATILE: &[&str] = &[
    "now",
    "current_timestamp",
    "clock_timestamp",
    "statement_timestamp",
    "transaction_timestamp",
    "localtimestamp",
    "localtime",
    "current_time",
    "current_date",
    "timeofday",
    "random",
    "gen_random_uuid",
    "uuid_generate_v1",
    "uuid_generate_v4",
    "nextval",
    "txid_current",
];
const SERIAL_TYPES: &[&str] = &[
    "serial",
    "bigserial",
    "smallserial",
    "serial2",
    "serial4",
    "serial8",
];

/// Options TimescaleDB accepts in `CREATE MATERIALIZED VIEW ... WITH (...)`.
const CAGG_OPTIONS: &[&str] = &[
    "timescaledb.continuous",
    "timescaledb.materialized_only",
    "timescaledb.create_group_indexes",
    "timescaledb.finalized",
    "timescaledb.chunk_interval",
    "timescaledb.compress",
    "timescaledb.invalidate_using",
];
/// Options TimescaleDB accepts in `ALTER TABLE ... SET (...)` on a hypertable.
const COMPRESS_OPTIONS: &[&str] = &[
    "timescaledb.compress",
    "timescaledb.compress_segmentby",
    "timescaledb.compress_orderby",
    "timescaledb.compress_chunk_time_interval",
    "timescaledb.enable_columnstore",
    "timescaledb.segmentby",
    "timescaledb.orderby",
    "timescaledb.compress_index",
];

#[derive(Debug, Default, Clone)]
struct Column {
    /// Filled by now(), a sequence, an identity, ... on insert.
    volatile: bool,
}

#[derive(Debug, Clone)]
struct UniqueKey {
    name: String,
    columns: Vec<String>,
}

#[derive(Debug, Default, Clone)]
struct Table {
    columns: BTreeMap<String, Column>,
    /// Unique constraints and primary key (usable by `ON CONSTRAINT`).
    constraints: Vec<UniqueKey>,
    /// Unique indexes without a predicate (usable as a column-list target only).
    indexes: Vec<UniqueKey>,
}

#[derive(Default)]
struct Checker {
    /// Tables by unqualified name.
    tables: BTreeMap<String, Table>,
    issues: Vec<SqlIssue>,
    file: String,
}

type Toks = [TokenWithSpan];

fn is_space(t: &TokenWithSpan) -> bool {
    matches!(t.token, Token::Whitespace(_))
}

fn word(t: &TokenWithSpan) -> Option<&Word> {
    match &t.token {
        Token::Word(w) => Some(w),
        _ => None,
    }
}

/// The keyword-insensitive spelling of an unquoted word (None for quoted words).
fn kw(t: &TokenWithSpan) -> Option<String> {
    word(t)
        .filter(|w| w.quote_style.is_none())
        .map(|w| w.value.to_ascii_uppercase())
}

fn is_kw(t: Option<&TokenWithSpan>, keyword: &str) -> bool {
    t.and_then(kw).is_some_and(|k| k == keyword)
}

/// An identifier as PostgreSQL folds it: unquoted lowercased, quoted kept.
fn ident(w: &Word) -> String {
    match w.quote_style {
        Some(_) => w.value.clone(),
        None => w.value.to_lowercase(),
    }
}

/// Tokens without whitespace and comments.
fn solid(tokens: &Toks) -> Vec<TokenWithSpan> {
    tokens.iter().filter(|t| !is_space(t)).cloned().collect()
}

fn line_of(tokens: &Toks) -> u64 {
    tokens
        .iter()
        .find(|t| !is_space(t))
        .map(|t| t.span.start.line)
        .unwrap_or(0)
}

/// Splits at semicolons; the tokenizer keeps strings, comments and bodies whole, so an
/// unbalanced parenthesis stays inside its own statement.
fn split_statements(tokens: Vec<TokenWithSpan>) -> Vec<Vec<TokenWithSpan>> {
    let mut out = Vec::new();
    let mut current = Vec::new();
    for t in tokens {
        if t.token == Token::SemiColon {
            out.push(std::mem::take(&mut current));
        } else {
            current.push(t);
        }
    }
    out.push(current);
    out.into_iter()
        .filter(|s| s.iter().any(|t| !is_space(t)))
        .collect()
}

/// Moves tokens of a body (tokenized on its own) to where the body sits in the file.
fn shift(tokens: &mut [TokenWithSpan], line: u64) {
    for t in tokens {
        for loc in [&mut t.span.start, &mut t.span.end] {
            if loc.line > 0 {
                loc.line += line - 1;
            }
        }
    }
}

/// Reads a possibly qualified name at `i`: returns the last part and the index after it.
fn object_name(tokens: &[TokenWithSpan], mut i: usize) -> Option<(String, usize)> {
    let mut last = ident(word(tokens.get(i)?)?);
    i += 1;
    while tokens.get(i).map(|t| &t.token) == Some(&Token::Period) {
        last = ident(word(tokens.get(i + 1)?)?);
        i += 2;
    }
    Some((last, i))
}

/// Index of the parenthesis closing the one opened at `open`.
fn closing(tokens: &[TokenWithSpan], open: usize) -> Option<usize> {
    let mut depth = 0;
    for (i, t) in tokens.iter().enumerate().skip(open) {
        match t.token {
            Token::LParen => depth += 1,
            Token::RParen => {
                depth -= 1;
                if depth == 0 {
                    return Some(i);
                }
            }
            _ => {}
        }
    }
    None
}

/// Splits `tokens` at commas outside parentheses.
fn split_commas(tokens: &[TokenWithSpan]) -> Vec<Vec<TokenWithSpan>> {
    let mut out = vec![Vec::new()];
    let mut depth = 0;
    for t in tokens {
        match t.token {
            Token::LParen => depth += 1,
            Token::RParen => depth -= 1,
            Token::Comma if depth == 0 => {
                out.push(Vec::new());
                continue;
            }
            _ => {}
        }
        if let Some(last) = out.last_mut() {
            last.push(t.clone());
        }
    }
    out.retain(|part| !part.is_empty());
    out
}

/// Column names of a parenthesized list starting at `open` (expressions yield None).
fn column_list(tokens: &[TokenWithSpan], open: usize) -> Option<(Vec<String>, usize)> {
    if tokens.get(open).map(|t| &t.token) != Some(&Token::LParen) {
        return None;
    }
    let close = closing(tokens, open)?;
    let mut names = Vec::new();
    for part in split_commas(&tokens[open + 1..close]) {
        // `col`, `col ASC`, `col DESC NULLS LAST`, `col COLLATE x`, `col opclass`.
        let first = word(part.first()?)?;
        names.push(ident(first));
    }
    Some((names, close + 1))
}

/// PostgreSQL's name for an unnamed constraint (truncated to 63 bytes like the server).
fn default_constraint_name(table: &str, columns: &[String], primary: bool) -> String {
    let mut name = if primary {
        format!("{table}_pkey")
    } else {
        format!("{table}_{}_key", columns.join("_"))
    };
    while name.len() > 63 {
        name.pop();
    }
    name
}

fn parse_error_line(message: &str) -> Option<u64> {
    let rest = &message[message.find("Line: ")? + 6..];
    let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
    digits.parse().ok().filter(|l| *l > 0)
}

/// Where a PL/pgSQL body stands while its statements are read in order.
#[derive(Default)]
struct PlpgsqlBlocks {
    /// Open blocks, innermost last: `BEGIN` or `IF`.
    open: Vec<&'static str>,
    /// In a DECLARE section: statements are variable declarations.
    declaring: bool,
    saw_begin: bool,
}

impl Checker {
    fn issue(&mut self, line: u64, message: impl Into<String>) {
        self.issues.push(SqlIssue {
            file: self.file.clone(),
            line: line.max(1),
            message: message.into(),
        });
    }

    fn script(&mut self, file: &str, text: &str) {
        self.file = file.to_string();
        let dialect = PostgreSqlDialect {};
        let text = rows::shorten_values(text);
        let tokens = match Tokenizer::new(&dialect, &text).tokenize_with_location() {
            Ok(tokens) => tokens,
            Err(error) => {
                self.issue(
                    error.location.line,
                    format!("cannot tokenize: {}", error.message),
                );
                return;
            }
        };
        for statement in split_statements(tokens) {
            self.statement(&statement);
        }
    }

    /// Parses tokens as exactly one SQL statement; reports a parse error at its line.
    fn parse(&mut self, tokens: &Toks, what: &str) -> bool {
        let line = line_of(tokens);
        let dialect = PostgreSqlDialect {};
        let result = Parser::new(&dialect)
            .with_tokens_with_locations(tokens.to_vec())
            .parse_statements();
        match result {
            Ok(statements) if statements.len() == 1 => true,
            Ok(statements) => {
                self.issue(
                    line,
                    format!("{what}: expected one statement, found {}", statements.len()),
                );
                false
            }
            Err(error) => {
                let message = error.to_string();
                let at = parse_error_line(&message).unwrap_or(line);
                self.issue(at, format!("{what}: {message}"));
                false
            }
        }
    }

    fn statement(&mut self, tokens: &Toks) {
        let s = solid(tokens);
        let line = line_of(tokens);
        let first = s.first().and_then(kw).unwrap_or_default();
        let second = s.get(1).and_then(kw).unwrap_or_default();
        let third = s.get(2).and_then(kw).unwrap_or_default();
        match (first.as_str(), second.as_str(), third.as_str()) {
            ("DO", _, _) => self.do_block(&s, line),
            ("REFRESH", _, _) => self.refresh(&s, line),
            ("CREATE", "MATERIALIZED", _) => self.materialized_view(&s, line),
            ("ALTER", "TABLE", _) if self.timescale_set(&s) => self.compression(&s, line),
            _ => {
                let start = tokens
                    .iter()
                    .position(|t| !is_space(t))
                    .unwrap_or(tokens.len());
                if self.parse(&tokens[start..], "cannot parse statement") {
                    self.learn(&s);
                    if first == "CREATE" {
                        self.function_body(&s);
                    }
                }
            }
        }
        self.conflicts(&s);
    }

    // ------------------------------------------------------------------ schema knowledge

    /// Records tables, unique constraints and unique indexes a parsed statement creates.
    fn learn(&mut self, s: &[TokenWithSpan]) {
        let words: Vec<String> = s
            .iter()
            .take(8)
            .map(|t| kw(t).unwrap_or_default())
            .collect();
        let at = |k: &str| words.iter().position(|w| w == k);
        if words.first().map(String::as_str) == Some("CREATE") {
            if let Some(table_at) = at("TABLE").filter(|&i| i <= 3) {
                self.create_table(s, table_at + 1);
            } else if at("UNIQUE") == Some(1) && at("INDEX") == Some(2) {
                self.unique_index(s);
            }
        } else if words.first().map(String::as_str) == Some("ALTER")
            && words.get(1).map(String::as_str) == Some("TABLE")
        {
            self.alter_add_constraint(s);
        }
    }

    fn create_table(&mut self, s: &[TokenWithSpan], mut i: usize) {
        if is_kw(s.get(i), "IF") {
            i += 3;
        }
        let Some((name, after)) = object_name(s, i) else {
            return;
        };
        if s.get(after).map(|t| &t.token) != Some(&Token::LParen) {
            return; // CREATE TABLE ... AS / PARTITION OF: no column list to read.
        }
        let Some(close) = closing(s, after) else {
            return;
        };
        let mut table = Table::default();
        for element in split_commas(&s[after + 1..close]) {
            self.table_element(&name, &element, &mut table);
        }
        self.tables.insert(name, table);
    }

    /// A key written as `UNIQUE (...)` / `PRIMARY KEY (...)` at `i`, optionally named.
    fn key_at(
        table: &str,
        e: &[TokenWithSpan],
        name: Option<String>,
        i: usize,
    ) -> Option<UniqueKey> {
        let (primary, open) = if is_kw(e.get(i), "PRIMARY") && is_kw(e.get(i + 1), "KEY") {
            (true, i + 2)
        } else if is_kw(e.get(i), "UNIQUE") {
            let mut open = i + 1;
            if is_kw(e.get(open), "NULLS") {
                open += if is_kw(e.get(open + 1), "NOT") { 3 } else { 2 };
            }
            (false, open)
        } else {
            return None;
        };
        let (columns, _) = column_list(e, open)?;
        let name = name.unwrap_or_else(|| default_constraint_name(table, &columns, primary));
        Some(UniqueKey { name, columns })
    }

    fn table_element(&mut self, table_name: &str, e: &[TokenWithSpan], table: &mut Table) {
        let head = e.first().and_then(kw).unwrap_or_default();
        let (name, start) = if head == "CONSTRAINT" {
            (e.get(1).and_then(word).map(ident), 2)
        } else {
            (None, 0)
        };
        if let Some(key) = Self::key_at(table_name, e, name.clone(), start) {
            table.constraints.push(key);
            return;
        }
        if matches!(
            head.as_str(),
            "CONSTRAINT" | "CHECK" | "FOREIGN" | "EXCLUDE" | "LIKE"
        ) {
            return;
        }
        let Some(column) = e.first().and_then(word).map(ident) else {
            return;
        };
        let type_name = e.get(1).and_then(word).map(|w| w.value.to_lowercase());
        let mut volatile = type_name.is_some_and(|t| SERIAL_TYPES.contains(&t.as_str()));
        let mut in_default = false;
        let mut i = 1;
        while i < e.len() {
            let k = kw(&e[i]).unwrap_or_default();
            match k.as_str() {
                "DEFAULT" => in_default = true,
                "GENERATED" => volatile |= e[i..].iter().any(|t| is_kw(Some(t), "IDENTITY")),
                "NOT" | "NULL" | "CHECK" | "REFERENCES" | "COLLATE" => in_default = false,
                "CONSTRAINT" | "PRIMARY" | "UNIQUE" => {
                    in_default = false;
                    let (named, at) = if k == "CONSTRAINT" {
                        (e.get(i + 1).and_then(word).map(ident), i + 2)
                    } else {
                        (None, i)
                    };
                    let primary = is_kw(e.get(at), "PRIMARY");
                    if primary || is_kw(e.get(at), "UNIQUE") {
                        let columns = vec![column.clone()];
                        let name = named.unwrap_or_else(|| {
                            default_constraint_name(table_name, &columns, primary)
                        });
                        table.constraints.push(UniqueKey { name, columns });
                    }
                }
                _ => {
                    if in_default
                        && word(&e[i])
                            .is_some_and(|w| VOLATILE.contains(&w.value.to_lowercase().as_str()))
                    {
                        volatile = true;
                    }
                }
            }
            i += 1;
        }
        table.columns.insert(column, Column { volatile });
    }

    fn unique_index(&mut self, s: &[TokenWithSpan]) {
        let Some(on) = s.iter().position(|t| is_kw(Some(t), "ON")) else {
            return;
        };
        // `CREATE UNIQUE INDEX [CONCURRENTLY] [IF NOT EXISTS] [name] ON`.
        let index_name = s[..on]
            .last()
            .filter(|t| !matches!(kw(t).as_deref(), Some("INDEX" | "EXISTS" | "CONCURRENTLY")))
            .and_then(word)
            .map(ident)
            .unwrap_or_default();
        let mut i = on + 1;
        if is_kw(s.get(i), "ONLY") {
            i += 1;
        }
        let Some((table, mut after)) = object_name(s, i) else {
            return;
        };
        if is_kw(s.get(after), "USING") {
            after += 2;
        }
        let Some((columns, end)) = column_list(s, after) else {
            return;
        };
        // A partial index is an arbiter only for a target with the same predicate.
        if s[end..].iter().any(|t| is_kw(Some(t), "WHERE")) {
            return;
        }
        if let Some(t) = self.tables.get_mut(&table) {
            t.indexes.push(UniqueKey {
                name: index_name,
                columns,
            });
        }
    }

    fn alter_add_constraint(&mut self, s: &[TokenWithSpan]) {
        let mut i = 2;
        if is_kw(s.get(i), "IF") {
            i += 2;
        }
        if is_kw(s.get(i), "ONLY") {
            i += 1;
        }
        let Some((table, after)) = object_name(s, i) else {
            return;
        };
        if !is_kw(s.get(after), "ADD") {
            return;
        }
        let mut j = after + 1;
        let mut name = None;
        if is_kw(s.get(j), "CONSTRAINT") {
            name = s.get(j + 1).and_then(word).map(ident);
            j += 2;
        }
        if let Some(key) = Self::key_at(&table, s, name, j)
            && let Some(t) = self.tables.get_mut(&table)
        {
            t.constraints.push(key);
        }
    }

    // ------------------------------------------------------------------ ON CONFLICT

    /// Every `INSERT INTO t ... ON CONFLICT target` of a statement.
    fn conflicts(&mut self, s: &[TokenWithSpan]) {
        let mut table: Option<String> = None;
        let mut i = 0;
        while i < s.len() {
            if is_kw(s.get(i), "INSERT") && is_kw(s.get(i + 1), "INTO") {
                table = object_name(s, i + 2).map(|(name, _)| name);
            }
            if is_kw(s.get(i), "ON") && is_kw(s.get(i + 1), "CONFLICT") {
                let line = s[i].span.start.line;
                self.conflict(table.as_deref(), s, i + 2, line);
            }
            i += 1;
        }
    }

    fn conflict(&mut self, table_name: Option<&str>, s: &[TokenWithSpan], i: usize, line: u64) {
        let Some(table_name) = table_name else {
            self.issue(line, "ON CONFLICT outside an INSERT INTO statement");
            return;
        };
        enum Target {
            Constraint(String),
            Columns(Vec<String>),
        }
        let target = if is_kw(s.get(i), "ON") && is_kw(s.get(i + 1), "CONSTRAINT") {
            match s.get(i + 2).and_then(word) {
                Some(w) => Target::Constraint(ident(w)),
                None => {
                    self.issue(line, "ON CONFLICT ON CONSTRAINT without a constraint name");
                    return;
                }
            }
        } else if s.get(i).map(|t| &t.token) == Some(&Token::LParen) {
            match column_list(s, i) {
                Some((columns, _)) => Target::Columns(columns),
                None => {
                    self.issue(line, "ON CONFLICT target is not a column list");
                    return;
                }
            }
        } else {
            self.issue(
                line,
                format!(
                    "ON CONFLICT on `{table_name}` has no conflict target: name the unique constraint on deterministic columns (ON CONFLICT ON CONSTRAINT ...), so only a true repeat is skipped"
                ),
            );
            return;
        };
        let Some(table) = self.tables.get(table_name).cloned() else {
            self.issue(
                line,
                format!("ON CONFLICT on table `{table_name}`, which no checked statement creates before this one"),
            );
            return;
        };
        let key = match &target {
            Target::Constraint(name) => match table.constraints.iter().find(|k| &k.name == name) {
                Some(key) => key.clone(),
                None => {
                    let known: Vec<_> = table.constraints.iter().map(|k| k.name.as_str()).collect();
                    self.issue(
                        line,
                        format!(
                            "ON CONFLICT ON CONSTRAINT `{name}`: table `{table_name}` has no such unique constraint (it has: {})",
                            if known.is_empty() { "none".to_string() } else { known.join(", ") }
                        ),
                    );
                    return;
                }
            },
            Target::Columns(columns) => {
                let mut wanted = columns.clone();
                wanted.sort();
                let found = table.constraints.iter().chain(&table.indexes).find(|k| {
                    let mut have = k.columns.clone();
                    have.sort();
                    have == wanted
                });
                match found {
                    Some(key) => key.clone(),
                    None => {
                        self.issue(
                            line,
                            format!(
                                "ON CONFLICT ({}): table `{table_name}` has no unique key on exactly these columns",
                                columns.join(", ")
                            ),
                        );
                        return;
                    }
                }
            }
        };
        for column in &key.columns {
            match table.columns.get(column) {
                Some(c) if c.volatile => self.issue(
                    line,
                    format!(
                        "ON CONFLICT on `{table_name}` uses key `{}` whose column `{column}` gets a new value on every insert (DEFAULT now(), a sequence or an identity): a repeated message never conflicts, so nothing is deduplicated; key on deterministic columns such as channel id and message id",
                        key.name
                    ),
                ),
                Some(_) => {}
                None => self.issue(
                    line,
                    format!("unique key `{}` of `{table_name}` names unknown column `{column}`", key.name),
                ),
            }
        }
    }

    // ------------------------------------------------------------------ explicit kinds

    fn refresh(&mut self, s: &[TokenWithSpan], line: u64) {
        let mut i = 1;
        if !(is_kw(s.get(i), "MATERIALIZED") && is_kw(s.get(i + 1), "VIEW")) {
            self.issue(line, "REFRESH must be followed by MATERIALIZED VIEW");
            return;
        }
        i += 2;
        if is_kw(s.get(i), "CONCURRENTLY") {
            i += 1;
        }
        let Some((_, mut after)) = object_name(s, i) else {
            self.issue(line, "REFRESH MATERIALIZED VIEW without a view name");
            return;
        };
        if is_kw(s.get(after), "WITH") {
            after += 1;
            if is_kw(s.get(after), "NO") {
                after += 1;
            }
            if !is_kw(s.get(after), "DATA") {
                self.issue(
                    line,
                    "REFRESH MATERIALIZED VIEW ... WITH must be followed by [NO] DATA",
                );
                return;
            }
            after += 1;
        }
        if after != s.len() {
            self.issue(
                s[after].span.start.line,
                format!(
                    "unexpected `{}` after REFRESH MATERIALIZED VIEW",
                    s[after].token
                ),
            );
        }
    }

    /// `CREATE MATERIALIZED VIEW [IF NOT EXISTS] name [(cols)] [WITH (opts)] AS query
    /// [WITH [NO] DATA]`: options checked here, the rest parsed by sqlparser.
    fn materialized_view(&mut self, s: &[TokenWithSpan], line: u64) {
        let mut rest: Vec<TokenWithSpan> = s.to_vec();
        // Trailing WITH [NO] DATA.
        let n = rest.len();
        if n >= 2 && is_kw(rest.get(n - 1), "DATA") {
            let cut = if is_kw(rest.get(n - 2), "NO") {
                n - 3
            } else {
                n - 2
            };
            if !is_kw(rest.get(cut), "WITH") {
                self.issue(line, "materialized view ends in DATA without WITH [NO]");
                return;
            }
            rest.truncate(cut);
        }
        let Some(as_at) = rest.iter().position(|t| is_kw(Some(t), "AS")) else {
            self.issue(line, "CREATE MATERIALIZED VIEW without AS query");
            return;
        };
        if let Some(with_at) = rest[..as_at].iter().position(|t| is_kw(Some(t), "WITH")) {
            let Some(close) = closing(&rest, with_at + 1).filter(|c| c + 1 == as_at) else {
                self.issue(
                    line,
                    "WITH options of a materialized view must be one parenthesized list before AS",
                );
                return;
            };
            let options = rest[with_at + 2..close].to_vec();
            let continuous =
                self.storage_options(&options, line, CAGG_OPTIONS, "continuous aggregate");
            if continuous && !rest[as_at..].iter().any(|t| is_kw(Some(t), "GROUP")) {
                self.issue(line, "a continuous aggregate needs GROUP BY a time_bucket");
            }
            rest.drain(with_at..=close);
        }
        // sqlparser wants spaces between the remaining tokens.
        let mut spaced = Vec::new();
        for t in rest {
            spaced.push(t);
            spaced.push(TokenWithSpan::wrap(Token::Whitespace(Whitespace::Space)));
        }
        self.parse(&spaced, "cannot parse materialized view");
    }

    /// `name [= value]` options; `timescaledb.*` names must be known. Returns whether
    /// `timescaledb.continuous` is among them.
    fn storage_options(
        &mut self,
        options: &[TokenWithSpan],
        line: u64,
        known: &[&str],
        what: &str,
    ) -> bool {
        let mut continuous = false;
        for option in split_commas(options) {
            let Some(eq) = option
                .iter()
                .position(|t| t.token == Token::Eq)
                .or(Some(option.len()))
            else {
                continue;
            };
            let name: String = option[..eq]
                .iter()
                .map(|t| t.token.to_string())
                .collect::<String>()
                .to_lowercase();
            let valid_name = option[..eq].iter().enumerate().all(|(k, t)| {
                if k % 2 == 0 {
                    word(t).is_some()
                } else {
                    t.token == Token::Period
                }
            }) && eq % 2 == 1;
            if !valid_name {
                self.issue(line, format!("{what} option `{name}` is not a name"));
                continue;
            }
            if name.starts_with("timescaledb.") && !known.contains(&name.as_str()) {
                self.issue(
                    line,
                    format!(
                        "unknown {what} option `{name}` (known: {})",
                        known.join(", ")
                    ),
                );
            }
            if eq < option.len() && option.len() != eq + 2 {
                self.issue(
                    line,
                    format!("{what} option `{name}` needs one value after `=`"),
                );
            }
            continuous |= name == "timescaledb.continuous";
        }
        continuous
    }

    fn timescale_set(&self, s: &[TokenWithSpan]) -> bool {
        s.windows(3).any(|w| {
            is_kw(w.first(), "SET")
                && w[1].token == Token::LParen
                && w.get(2)
                    .and_then(word)
                    .is_some_and(|x| x.value.eq_ignore_ascii_case("timescaledb"))
        })
    }

    /// `ALTER TABLE name SET (timescaledb.compress, timescaledb.compress_segmentby = '...', ...)`.
    fn compression(&mut self, s: &[TokenWithSpan], line: u64) {
        let mut i = 2;
        if is_kw(s.get(i), "IF") {
            i += 2;
        }
        if is_kw(s.get(i), "ONLY") {
            i += 1;
        }
        let Some((table, after)) = object_name(s, i) else {
            self.issue(line, "ALTER TABLE without a table name");
            return;
        };
        if !(is_kw(s.get(after), "SET")
            && s.get(after + 1).map(|t| &t.token) == Some(&Token::LParen))
        {
            self.issue(line, "expected SET ( ... ) after the table name");
            return;
        }
        let Some(close) = closing(s, after + 1) else {
            self.issue(line, "unclosed SET ( ... )");
            return;
        };
        if close + 1 != s.len() {
            self.issue(line, "unexpected tokens after SET ( ... )");
        }
        let options = s[after + 2..close].to_vec();
        self.storage_options(&options, line, COMPRESS_OPTIONS, "compression");
        let known_columns = self.tables.get(&table).map(|t| t.columns.clone());
        for option in split_commas(&options) {
            let name: String = option
                .iter()
                .take(3)
                .map(|t| t.token.to_string())
                .collect::<String>()
                .to_lowercase();
            let value = option.last().and_then(|t| match &t.token {
                Token::SingleQuotedString(v) => Some(v.clone()),
                _ => None,
            });
            let ordered = matches!(
                name.as_str(),
                "timescaledb.compress_orderby" | "timescaledb.orderby"
            );
            let segmented = matches!(
                name.as_str(),
                "timescaledb.compress_segmentby" | "timescaledb.segmentby"
            );
            if !(ordered || segmented) {
                continue;
            }
            let Some(value) = value else {
                self.issue(line, format!("`{name}` takes a quoted column list"));
                continue;
            };
            // The value is a column list (orderby: with ASC/DESC/NULLS), checked as an ORDER BY.
            let probe = format!("SELECT 1 ORDER BY {value}");
            if Parser::parse_sql(&PostgreSqlDialect {}, &probe).is_err() {
                self.issue(line, format!("`{name}` = '{value}' is not a column list"));
                continue;
            }
            for part in value.split(',') {
                let column = part
                    .split_whitespace()
                    .next()
                    .unwrap_or_default()
                    .trim_matches('"')
                    .to_lowercase();
                let words = part.split_whitespace().count();
                if segmented && words != 1 {
                    self.issue(
                        line,
                        format!("`{name}` lists plain columns; found `{}`", part.trim()),
                    );
                }
                match &known_columns {
                    Some(columns) if !columns.contains_key(&column) => self.issue(
                        line,
                        format!("`{name}` names column `{column}`, which table `{table}` does not have"),
                    ),
                    Some(_) => {}
                    None => self.issue(
                        line,
                        format!("compression of table `{table}`, which no checked statement creates before this one"),
                    ),
                }
            }
        }
    }

    // ------------------------------------------------------------------ bodies

    /// `DO [LANGUAGE plpgsql] $$ body $$ [LANGUAGE plpgsql]`.
    fn do_block(&mut self, s: &[TokenWithSpan], line: u64) {
        let mut language = None;
        let mut body = None;
        let mut i = 1;
        while i < s.len() {
            match &s[i].token {
                Token::DollarQuotedString(d) => {
                    body = Some((d.value.clone(), s[i].span.start.line))
                }
                Token::SingleQuotedString(v) => body = Some((v.clone(), s[i].span.start.line)),
                _ if is_kw(s.get(i), "LANGUAGE") => {
                    language = s.get(i + 1).and_then(word).map(|w| w.value.to_lowercase());
                    i += 1;
                }
                other => self.issue(
                    s[i].span.start.line,
                    format!("unexpected `{other}` in DO block"),
                ),
            }
            i += 1;
        }
        let Some((body, body_line)) = body else {
            self.issue(line, "DO block without a body");
            return;
        };
        match language.as_deref().unwrap_or("plpgsql") {
            "plpgsql" => self.plpgsql(&body, body_line),
            other => self.issue(
                line,
                format!("DO block in language `{other}` cannot be checked; use plpgsql"),
            ),
        }
    }

    /// The body of `CREATE FUNCTION/PROCEDURE ... AS $$ ... $$ LANGUAGE x`.
    fn function_body(&mut self, s: &[TokenWithSpan]) {
        let kind = s
            .iter()
            .take(5)
            .filter_map(kw)
            .find(|k| k == "FUNCTION" || k == "PROCEDURE");
        if kind.is_none() {
            return;
        }
        let language = s
            .windows(2)
            .find(|w| is_kw(w.first(), "LANGUAGE"))
            .and_then(|w| word(&w[1]))
            .map(|w| w.value.to_lowercase());
        let body = s.windows(2).find_map(|w| {
            if !is_kw(w.first(), "AS") {
                return None;
            }
            match &w[1].token {
                Token::DollarQuotedString(d) => Some((d.value.clone(), w[1].span.start.line)),
                Token::SingleQuotedString(v) => Some((v.clone(), w[1].span.start.line)),
                _ => None,
            }
        });
        let line = line_of(s);
        match (language.as_deref(), body) {
            (Some("sql"), Some((body, at))) => {
                let dialect = PostgreSqlDialect {};
                match Tokenizer::new(&dialect, &body).tokenize_with_location() {
                    Ok(mut tokens) => {
                        shift(&mut tokens, at);
                        for statement in split_statements(tokens) {
                            self.statement(&statement);
                        }
                    }
                    Err(e) => {
                        self.issue(at, format!("cannot tokenize function body: {}", e.message))
                    }
                }
            }
            (Some("plpgsql"), Some((body, at))) => self.plpgsql(&body, at),
            (Some(_), None) | (None, None) => {}
            (Some(other), Some(_)) => self.issue(
                line,
                format!("function body in language `{other}` is not checked"),
            ),
            (None, Some(_)) => self.issue(line, "function without LANGUAGE"),
        }
    }

    /// A PL/pgSQL block: blocks must nest, and every embedded SQL statement and
    /// expression must parse.
    fn plpgsql(&mut self, body: &str, at: u64) {
        let dialect = PostgreSqlDialect {};
        let mut tokens = match Tokenizer::new(&dialect, body).tokenize_with_location() {
            Ok(tokens) => tokens,
            Err(e) => {
                self.issue(at, format!("cannot tokenize PL/pgSQL body: {}", e.message));
                return;
            }
        };
        shift(&mut tokens, at);
        let mut blocks = PlpgsqlBlocks::default();
        for piece in split_statements(tokens) {
            let mut s = solid(&piece);
            let line = line_of(&s);
            self.block_keywords(&mut s, line, &mut blocks);
            if s.is_empty() {
                continue;
            }
            if blocks.declaring {
                self.declaration(&s, line);
            } else {
                self.plpgsql_statement(&s, line, &mut blocks.open);
            }
        }
        if !blocks.saw_begin {
            self.issue(at, "PL/pgSQL body without BEGIN");
        }
        if let Some(open) = blocks.open.last() {
            self.issue(at, format!("PL/pgSQL body leaves {open} unclosed"));
        }
    }

    /// Strips the block keywords in front of a statement (DECLARE, BEGIN,
    /// IF/ELSIF ... THEN, ELSE), checking the conditions and that IF branches nest.
    fn block_keywords(
        &mut self,
        s: &mut Vec<TokenWithSpan>,
        line: u64,
        blocks: &mut PlpgsqlBlocks,
    ) {
        loop {
            let head = s.first().and_then(kw).unwrap_or_default();
            match head.as_str() {
                "DECLARE" => {
                    blocks.declaring = true;
                    s.remove(0);
                }
                "BEGIN" => {
                    blocks.declaring = false;
                    blocks.saw_begin = true;
                    blocks.open.push("BEGIN");
                    s.remove(0);
                }
                "IF" | "ELSIF" => {
                    let Some(then) = s.iter().position(|t| is_kw(Some(t), "THEN")) else {
                        self.issue(line, format!("{head} without THEN"));
                        s.clear();
                        return;
                    };
                    self.expression(&s[1..then], line, &head);
                    if head == "IF" {
                        blocks.open.push("IF");
                    } else if blocks.open.last() != Some(&"IF") {
                        self.issue(line, "ELSIF outside IF");
                    }
                    s.drain(..=then);
                }
                "ELSE" => {
                    if blocks.open.last() != Some(&"IF") {
                        self.issue(line, "ELSE outside IF");
                    }
                    s.remove(0);
                }
                _ => return,
            }
        }
    }

    /// `name type [:= expr]` of a DECLARE section: the default value must parse.
    fn declaration(&mut self, s: &[TokenWithSpan], line: u64) {
        if let Some(assign) = s
            .windows(2)
            .position(|w| w[0].token == Token::Colon && w[1].token == Token::Eq)
        {
            self.expression(&s[assign + 2..], line, "default value");
        } else if let Some(assign) = s.iter().position(|t| t.token == Token::Assignment) {
            self.expression(&s[assign + 1..], line, "default value");
        }
    }

    /// One statement of a PL/pgSQL block, its block keywords stripped. `open` holds the
    /// blocks open around it, innermost last.
    fn plpgsql_statement(&mut self, s: &[TokenWithSpan], line: u64, open: &mut Vec<&'static str>) {
        let head = s.first().and_then(kw).unwrap_or_default();
        match head.as_str() {
            "END" => {
                let what = s.get(1).and_then(kw).unwrap_or_default();
                let expected = match what.as_str() {
                    "IF" => "IF",
                    "LOOP" => "LOOP",
                    _ => "BEGIN",
                };
                if open.pop() != Some(expected) {
                    self.issue(
                        line,
                        format!("END {what} does not close an open {expected}"),
                    );
                }
            }
            "PERFORM" => self.expression(&s[1..], line, "PERFORM"),
            "RETURN" => {
                if s.len() > 1 {
                    self.expression(&s[1..], line, "RETURN");
                }
            }
            "RAISE" => self.raise(s, line),
            "GET" => {
                let ok = s.iter().any(|t| is_kw(Some(t), "DIAGNOSTICS"))
                    && s.iter()
                        .any(|t| matches!(kw(t).as_deref(), Some("ROW_COUNT")));
                if !ok {
                    self.issue(line, "only GET DIAGNOSTICS var = ROW_COUNT is recognised");
                }
            }
            _ => self.assignment_or_sql(s, line),
        }
    }

    /// `RAISE [level] 'message' ...`.
    fn raise(&mut self, s: &[TokenWithSpan], line: u64) {
        let level = s.get(1).and_then(kw).unwrap_or_default();
        let levels = ["DEBUG", "LOG", "INFO", "NOTICE", "WARNING", "EXCEPTION"];
        let format_at = if levels.contains(&level.as_str()) {
            2
        } else {
            1
        };
        if !matches!(
            s.get(format_at).map(|t| &t.token),
            Some(Token::SingleQuotedString(_))
        ) {
            self.issue(line, "RAISE needs a level and a quoted message");
        }
    }

    /// `var := expr`, or else an embedded SQL statement.
    fn assignment_or_sql(&mut self, s: &[TokenWithSpan], line: u64) {
        if let Some(assign) = s
            .iter()
            .position(|t| t.token == Token::Assignment)
            .filter(|&p| p == 1)
        {
            self.expression(&s[assign + 1..], line, "assignment");
        } else {
            // Plain SQL: spaced again so sqlparser sees separate tokens.
            let mut spaced = Vec::new();
            for t in s {
                spaced.push(t.clone());
                spaced.push(TokenWithSpan::wrap(Token::Whitespace(Whitespace::Space)));
            }
            self.statement(&spaced);
        }
    }

    /// Parses `tokens` as an expression by parsing `SELECT <tokens>`.
    fn expression(&mut self, tokens: &[TokenWithSpan], line: u64, what: &str) {
        if tokens.is_empty() {
            self.issue(line, format!("{what}: missing expression"));
            return;
        }
        let start = Location { line, column: 1 };
        let mut probe = vec![
            TokenWithSpan::new(Token::make_keyword("SELECT"), Span::new(start, start)),
            TokenWithSpan::wrap(Token::Whitespace(Whitespace::Space)),
        ];
        for t in tokens {
            probe.push(t.clone());
            probe.push(TokenWithSpan::wrap(Token::Whitespace(Whitespace::Space)));
        }
        if self.parse(&probe, &format!("cannot parse {what} expression")) {
            self.conflicts(tokens);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn messages(text: &str) -> Vec<String> {
        check_sql("t.sql", text)
            .into_iter()
            .map(|i| format!("{}: {}", i.line, i.message))
            .collect()
    }

    #[test]
    fn volatile_key_is_reported() {
        let text = "CREATE TABLE m (c bigint, id bigint, created_at timestamptz DEFAULT now(),\n  CONSTRAINT m_key UNIQUE (c, id, created_at));\nINSERT INTO m (c, id) VALUES (1, 2)\nON CONFLICT ON CONSTRAINT m_key DO NOTHING;\n";
        let found = messages(text);
        assert_eq!(found.len(), 1, "{found:?}");
        assert!(
            found[0].starts_with("4: ") && found[0].contains("created_at"),
            "{found:?}"
        );
    }

    /// Long literal lists are shortened before parsing; a broken row far down is still
    /// reported at its own line, and a good list stays clean.
    #[test]
    fn a_broken_row_in_a_long_values_list_is_found_at_its_line() {
        let rows: Vec<String> = (0..5000).map(|i| format!("  ({i}, 'c{i}')")).collect();
        let good = format!("INSERT INTO t (id, name) VALUES\n{};\n", rows.join(",\n"));
        assert_eq!(messages(&good), Vec::<String>::new());
        let mut broken = rows.clone();
        broken[4000] = "  (4000 'c4000')".into();
        let text = format!("INSERT INTO t (id, name) VALUES\n{};\n", broken.join(",\n"));
        let found = messages(&text);
        assert_eq!(found.len(), 1, "{found:?}");
        assert!(found[0].starts_with("4002: "), "{found:?}");
    }

    #[test]
    fn deterministic_key_passes() {
        let text = "CREATE TABLE m (c bigint, id bigint, created_at timestamptz DEFAULT now(), UNIQUE (c, id));\nINSERT INTO m (c, id) VALUES (1, 2) ON CONFLICT ON CONSTRAINT m_c_id_key DO NOTHING;\nINSERT INTO m (c, id) VALUES (1, 2) ON CONFLICT (id, c) DO NOTHING;\n";
        assert_eq!(messages(text), Vec::<String>::new());
    }

    #[test]
    fn missing_target_and_unknown_constraint_are_reported() {
        let text = "CREATE TABLE m (id bigint PRIMARY KEY);\nINSERT INTO m VALUES (1) ON CONFLICT DO NOTHING;\nINSERT INTO m VALUES (1) ON CONFLICT ON CONSTRAINT nope DO NOTHING;\nINSERT INTO m VALUES (1) ON CONFLICT ON CONSTRAINT m_pkey DO NOTHING;\n";
        let found = messages(text);
        assert_eq!(found.len(), 2, "{found:?}");
        assert!(found[0].starts_with("2: ") && found[0].contains("no conflict target"));
        assert!(found[1].starts_with("3: ") && found[1].contains("m_pkey"));
    }

    #[test]
    fn explicit_kinds_are_checked() {
        let good = "CREATE TABLE m (c bigint, t timestamptz);\nALTER TABLE m SET (timescaledb.compress, timescaledb.compress_segmentby = 'c', timescaledb.compress_orderby = 't DESC');\nCREATE MATERIALIZED VIEW IF NOT EXISTS v WITH (timescaledb.continuous) AS SELECT c, time_bucket(INTERVAL '1 hour', t) AS b, count(*) FROM m GROUP BY 1, 2 WITH NO DATA;\nREFRESH MATERIALIZED VIEW CONCURRENTLY v;\nDO $$ BEGIN IF true THEN PERFORM 1; END IF; END $$;\n";
        assert_eq!(messages(good), Vec::<String>::new());
        let bad = "CREATE TABLE m (c bigint, t timestamptz);\nALTER TABLE m SET (timescaledb.compres, timescaledb.compress_segmentby = 'nope');\nREFRESH MATERIALIZED VIEW;\nDO $$ BEGIN IF true THEN PERFORM (; END $$;\nSELEC 1;\n";
        let found = messages(bad);
        assert!(
            found
                .iter()
                .any(|m| m.starts_with("2: ") && m.contains("timescaledb.compres")),
            "{found:?}"
        );
        assert!(
            found
                .iter()
                .any(|m| m.starts_with("2: ") && m.contains("nope")),
            "{found:?}"
        );
        assert!(found.iter().any(|m| m.starts_with("3: ")), "{found:?}");
        assert!(
            found
                .iter()
                .any(|m| m.starts_with("4: ") && m.contains("PERFORM")),
            "{found:?}"
        );
        assert!(
            found
                .iter()
                .any(|m| m.starts_with("4: ") && m.contains("unclosed")),
            "{found:?}"
        );
        assert!(found.iter().any(|m| m.starts_with("5: ")), "{found:?}");
    }
}
