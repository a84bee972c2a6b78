//! Long `VALUES` lists of plain literals, shortened before a script is tokenized. The
//! channels migration carries one row per channel (8,000 in the benchmark's x8 model),
//! and tokenizing and parsing every row was most of `validate`'s time. A row that holds
//! only literals (numbers, simple strings, `true`, `false`, `null`), with as many items as
//! the first row, parses exactly when the first row does; such rows between the first and
//! the last are checked here and dropped, and the parser reads the rest. Newlines are kept,
//! so every line the parser reports is the line in the file.

use std::borrow::Cow;
use std::ops::Range;

/// The script with the checked middle rows of each literal `VALUES` list removed.
pub fn shorten_values(text: &str) -> Cow<'_, str> {
    let bytes = text.as_bytes();
    let mut removed: Vec<Range<usize>> = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        i = match bytes[i] {
            b'\'' => skip_quoted(bytes, i, b'\'', escapes_backslash(bytes, i)),
            b'"' => skip_quoted(bytes, i, b'"', false),
            b'-' if bytes.get(i + 1) == Some(&b'-') => skip_line(bytes, i),
            b'/' if bytes.get(i + 1) == Some(&b'*') => skip_block_comment(bytes, i),
            b'$' => skip_dollar_quoted(bytes, i),
            b'v' | b'V' if keyword_at(bytes, i, b"values") => {
                let after = i + "values".len();
                removed.extend(middle_rows(bytes, after));
                after
            }
            _ => i + 1,
        };
    }
    if removed.is_empty() {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len());
    let mut at = 0;
    for range in removed {
        out.push_str(&text[at..range.start]);
        // Only newlines survive, so later lines keep their numbers.
        out.extend(text[range.clone()].chars().filter(|&c| c == '\n'));
        at = range.end;
    }
    out.push_str(&text[at..]);
    Cow::Owned(out)
}

/// For each byte of `text`, whether it is SQL code: not inside a string, a quoted
/// identifier, a comment or a dollar-quoted body. Lets line-based rules ignore a `;`, `$$`
/// or `--` that a value (a channel title, say) carries inside its quotes.
pub fn code_mask(text: &str) -> Vec<bool> {
    let bytes = text.as_bytes();
    let mut mask = vec![true; bytes.len()];
    let mut i = 0;
    while i < bytes.len() {
        let end = match bytes[i] {
            b'\'' => skip_quoted(bytes, i, b'\'', escapes_backslash(bytes, i)),
            b'"' => skip_quoted(bytes, i, b'"', false),
            b'-' if bytes.get(i + 1) == Some(&b'-') => skip_line(bytes, i),
            b'/' if bytes.get(i + 1) == Some(&b'*') => skip_block_comment(bytes, i),
            b'$' => skip_dollar_quoted(bytes, i),
            _ => i + 1,
        };
        // A construct that opened here covers its bytes; its first byte is its start.
        if end > i + 1 {
            for flag in &mut mask[i + 1..end.min(bytes.len())] {
                *flag = false;
            }
        }
        i = end.max(i + 1);
    }
    mask
}

fn is_word_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_' || b == b'$'
}

/// Whether the word at `i` is `keyword` (ASCII, case-insensitive), standing alone.
fn keyword_at(bytes: &[u8], i: usize, keyword: &[u8]) -> bool {
    let end = i + keyword.len();
    end <= bytes.len()
        && bytes[i..end].eq_ignore_ascii_case(keyword)
        && (i == 0 || !is_word_byte(bytes[i - 1]))
        && bytes.get(end).is_none_or(|&b| !is_word_byte(b))
}

/// `E'...'` strings take backslash escapes.
fn escapes_backslash(bytes: &[u8], quote: usize) -> bool {
    quote > 0
        && matches!(bytes[quote - 1], b'e' | b'E')
        && (quote < 2 || !is_word_byte(bytes[quote - 2]))
}

/// The index after the quoted text opened at `open` (a doubled quote stays inside).
fn skip_quoted(bytes: &[u8], open: usize, quote: u8, backslash: bool) -> usize {
    let mut i = open + 1;
    while i < bytes.len() {
        match bytes[i] {
            b'\\' if backslash => i += 2,
            b if b == quote && bytes.get(i + 1) == Some(&quote) => i += 2,
            b if b == quote => return i + 1,
            _ => i += 1,
        }
    }
    bytes.len()
}

fn skip_line(bytes: &[u8], start: usize) -> usize {
    bytes[start..]
        .iter()
        .position(|&b| b == b'\n')
        .map_or(bytes.len(), |n| start + n + 1)
}

/// PostgreSQL block comments nest.
fn skip_block_comment(bytes: &[u8], start: usize) -> usize {
    let mut depth = 0;
    let mut i = start;
    while i + 1 < bytes.len() {
        match (bytes[i], bytes[i + 1]) {
            (b'/', b'*') => {
                depth += 1;
                i += 2;
            }
            (b'*', b'/') => {
                depth -= 1;
                i += 2;
                if depth == 0 {
                    return i;
                }
            }
            _ => i += 1,
        }
    }
    bytes.len()
}

/// `$tag$ ... $tag$` bodies; a `$` that opens no such quote (`$1`, `a$b`) is one byte.
fn skip_dollar_quoted(bytes: &[u8], start: usize) -> usize {
    if start > 0 && is_word_byte(bytes[start - 1]) {
        return start + 1;
    }
    let tag_len = bytes[start + 1..]
        .iter()
        .take_while(|&&b| b.is_ascii_alphanumeric() || b == b'_')
        .count();
    let close = start + 1 + tag_len;
    let opens =
        bytes.get(close) == Some(&b'$') && bytes.get(start + 1).is_none_or(|b| !b.is_ascii_digit());
    if !opens {
        return start + 1;
    }
    let tag = &bytes[start..=close];
    bytes[close + 1..]
        .windows(tag.len())
        .position(|w| w == tag)
        .map_or(bytes.len(), |n| close + 1 + n + tag.len())
}

fn skip_space(bytes: &[u8], mut i: usize) -> usize {
    while bytes.get(i).is_some_and(u8::is_ascii_whitespace) {
        i += 1;
    }
    i
}

/// The range to drop after `VALUES` at `after`: from the second row up to the last row of
/// the run of literal rows of equal width, each with its comma and the space after it.
fn middle_rows(bytes: &[u8], after: usize) -> Option<Range<usize>> {
    let mut starts = Vec::new();
    let mut width = None;
    let mut i = skip_space(bytes, after);
    while let Some((items, end)) = literal_row(bytes, i) {
        if *width.get_or_insert(items) != items {
            break;
        }
        starts.push(i);
        let next = skip_space(bytes, end);
        if bytes.get(next) != Some(&b',') {
            break;
        }
        i = skip_space(bytes, next + 1);
    }
    // Keep the first row (the parser's witness) and the last of the run.
    (starts.len() > 2).then(|| starts[1]..starts[starts.len() - 1])
}

/// A parenthesized row of literals at `open`: its item count and the index after it.
fn literal_row(bytes: &[u8], open: usize) -> Option<(usize, usize)> {
    if bytes.get(open) != Some(&b'(') {
        return None;
    }
    let mut items = 0;
    let mut i = open + 1;
    loop {
        i = literal(bytes, skip_space(bytes, i))?;
        items += 1;
        i = skip_space(bytes, i);
        match bytes.get(i)? {
            b',' => i += 1,
            b')' => return Some((items, i + 1)),
            _ => return None,
        }
    }
}

/// One literal at `i`: the index after it.
fn literal(bytes: &[u8], i: usize) -> Option<usize> {
    match *bytes.get(i)? {
        b'\'' => {
            let end = skip_quoted(bytes, i, b'\'', false);
            // Backslashes and line breaks are left to the parser.
            let body = &bytes[i..end];
            (end <= bytes.len() && body.len() >= 2 && body.ends_with(b"'"))
                .then_some(end)
                .filter(|_| !body.iter().any(|&b| b == b'\\' || b == b'\n'))
        }
        b'-' | b'0'..=b'9' => number(bytes, i),
        _ => [&b"true"[..], b"false", b"null"]
            .into_iter()
            .find(|k| keyword_at(bytes, i, k))
            .map(|k| i + k.len()),
    }
}

/// `-?digits(.digits)?`, not followed by a word byte.
fn number(bytes: &[u8], i: usize) -> Option<usize> {
    let digits = |from: usize| {
        bytes[from..]
            .iter()
            .take_while(|b| b.is_ascii_digit())
            .count()
    };
    let mut end = i + usize::from(bytes[i] == b'-');
    let whole = digits(end);
    if whole == 0 {
        return None;
    }
    end += whole;
    if bytes.get(end) == Some(&b'.') {
        let fraction = digits(end + 1);
        if fraction == 0 {
            return None;
        }
        end += 1 + fraction;
    }
    bytes
        .get(end)
        .is_none_or(|&b| !is_word_byte(b))
        .then_some(end)
}

#[cfg(test)]
mod tests {
    use super::shorten_values;

    fn rows(n: usize) -> String {
        (0..n)
            .map(|i| format!("    (-100{i}, 'name_{i}', 'It''s {i}', true, NULL, 1.5)"))
            .collect::<Vec<_>>()
            .join(",\n")
    }

    #[test]
    fn keeps_the_first_and_last_row_and_every_line() {
        let text = format!(
            "INSERT INTO t (a, b, c, d, e, f) VALUES\n{}\nON CONFLICT DO NOTHING;\n",
            rows(6)
        );
        let short = shorten_values(&text);
        assert_eq!(short.lines().count(), text.lines().count());
        assert!(short.contains("(-1000, 'name_0'"), "{short}");
        assert!(short.contains("(-1005, 'name_5'"), "{short}");
        for i in 1..5 {
            assert!(!short.contains(&format!("name_{i}'")), "{short}");
        }
        assert_eq!(short.lines().nth(7), Some("ON CONFLICT DO NOTHING;"));
    }

    #[test]
    fn stops_at_a_row_that_is_not_plain_literals() {
        let mut text = format!("INSERT INTO t VALUES\n{}", rows(4));
        text.push_str(",\n    (now(), 'x', 'y', true, NULL, 1.5),\n");
        text.push_str(&rows(4).replace("name_", "late_"));
        let short = shorten_values(&text);
        assert!(short.contains("now()"));
        assert!(!short.contains("name_1'") && !short.contains("name_2'"));
        // Rows after the odd one are another list for the shortener: left to the parser.
        assert!(short.contains("late_1'") && short.contains("late_2'"));
    }

    #[test]
    fn stops_where_the_width_changes() {
        let text = "VALUES (1, 2), (3, 4), (5), (6, 7), (8, 9), (10, 11)";
        assert_eq!(shorten_values(text), text);
    }

    #[test]
    fn a_broken_row_is_left_for_the_parser() {
        let text = "VALUES (1, 'a'), (2, 'b'), (3, 'c' 'd'), (4, 'e'), (5, 'f')";
        assert_eq!(shorten_values(text), text);
    }

    #[test]
    fn values_in_strings_comments_and_bodies_are_text() {
        for text in [
            "SELECT 'VALUES (1), (2), (3), (4)';",
            "-- VALUES (1), (2), (3), (4)\nSELECT 1;",
            "/* a /* nested */ VALUES (1), (2), (3), (4) */ SELECT 1;",
            "CREATE FUNCTION f() RETURNS void AS $body$ VALUES (1), (2), (3), (4) $body$;",
            "SELECT E'it\\'s VALUES (1), (2), (3), (4)';",
            "SELECT \"VALUES (1), (2), (3), (4)\";",
        ] {
            assert_eq!(shorten_values(text), text, "{text}");
        }
    }

    #[test]
    fn strings_with_backslashes_or_line_breaks_are_left_for_the_parser() {
        for text in [
            "VALUES ('a'), ('b\\'), ('c'), ('d')",
            "VALUES ('a'), ('b\nc'), ('d'), ('e')",
        ] {
            assert!(shorten_values(text).contains("('b"), "{text}");
        }
    }
}

#[cfg(test)]
mod code_mask_tests {
    use super::code_mask;

    #[test]
    fn quoted_text_comments_and_bodies_are_not_code() {
        let text = "SELECT 'a;b', $$x;y$$; -- c;d\nINSERT";
        let mask = code_mask(text);
        let code: String = text
            .char_indices()
            .filter(|(i, _)| mask[*i])
            .map(|(_, c)| c)
            .collect();
        assert_eq!(code, "SELECT ', $; -INSERT");
    }
}
