//! nginx.conf of each `nginx` proxy re-read as found: its syntax, the port it listens on,
//! the address it passes requests to, and how long it waits for them.

use super::Files;
use crate::check::Ctx;
use crate::finding::Severity;
use crate::model::nginx::NginxSettings;
use crate::model::units::Duration;
use crate::model::{Kind, Service, Stack, paths};

/// One directive: its block path (`http/server/location`), name, arguments and line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Directive {
    pub context: String,
    pub name: String,
    pub args: Vec<String>,
    pub line: usize,
}

/// A malformed spot of the file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    pub line: usize,
    pub message: String,
}

/// Splits nginx.conf into directives. Quoted arguments keep their spaces; `#` starts a
/// comment outside quotes; a block's directives carry the names of the blocks around it.
pub fn parse(text: &str) -> (Vec<Directive>, Vec<Problem>) {
    let mut directives = Vec::new();
    let mut problems = Vec::new();
    let mut blocks: Vec<(String, usize)> = Vec::new();
    let mut words: Vec<String> = Vec::new();
    let mut start = 0;
    for (index, line) in text.lines().enumerate() {
        let number = index + 1;
        for token in tokens(line) {
            if words.is_empty() {
                start = number;
            }
            match token.as_str() {
                ";" | "{" if words.is_empty() => problems.push(Problem {
                    line: number,
                    message: format!("`{token}` without a directive"),
                }),
                ";" | "{" => {
                    let mut args = std::mem::take(&mut words);
                    let name = args.remove(0);
                    let context: Vec<&str> = blocks.iter().map(|(b, _)| b.as_str()).collect();
                    let context = context.join("/");
                    if token == "{" {
                        blocks.push((name.clone(), number));
                    }
                    directives.push(Directive {
                        context,
                        name,
                        args,
                        line: start,
                    });
                }
                "}" => {
                    if !words.is_empty() {
                        problems.push(Problem {
                            line: number,
                            message: format!("directive `{}` has no `;`", words[0]),
                        });
                        words.clear();
                    }
                    if blocks.pop().is_none() {
                        problems.push(Problem {
                            line: number,
                            message: "`}` closes no block".into(),
                        });
                    }
                }
                _ => words.push(token),
            }
        }
    }
    if let Some(word) = words.first() {
        problems.push(Problem {
            line: start,
            message: format!("directive `{word}` has no `;`"),
        });
    }
    for (name, line) in blocks {
        problems.push(Problem {
            line,
            message: format!("block `{name}` is never closed"),
        });
    }
    (directives, problems)
}

/// The words of one line: `;`, `{` and `}` stand alone; quotes group; `#` ends the line.
fn tokens(line: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut word = String::new();
    let mut quote: Option<char> = None;
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        match (quote, c) {
            (Some(q), c) if c == q => quote = None,
            (Some(_), '\\') => word.extend(chars.next()),
            (Some(_), c) => word.push(c),
            (None, '"' | '\'') => quote = Some(c),
            (None, '#') => break,
            (None, ';' | '{' | '}') => {
                if !word.is_empty() {
                    out.push(std::mem::take(&mut word));
                }
                out.push(c.to_string());
            }
            (None, c) if c.is_whitespace() => {
                if !word.is_empty() {
                    out.push(std::mem::take(&mut word));
                }
            }
            (None, c) => word.push(c),
        }
    }
    if !word.is_empty() {
        out.push(word);
    }
    out
}

/// An nginx time (`35s`, `500ms`, `1m`; a bare number is seconds).
fn nginx_time(text: &str) -> Option<Duration> {
    match text.parse::<u64>() {
        Ok(seconds) => seconds.checked_mul(1000).map(Duration),
        Err(_) => Duration::parse(text).ok(),
    }
}

pub fn run(cx: &mut Ctx<'_>, files: &Files<'_>) {
    let stack = cx.stack();
    for (name, service) in &stack.services {
        if service.kind == Kind::Nginx {
            proxy(cx, files, stack, name, service);
        }
    }
}

fn proxy(cx: &mut Ctx<'_>, files: &Files<'_>, stack: &Stack, name: &str, service: &Service) {
    let file = paths::nginx_conf(name);
    let Some(text) = files.text(&file) else {
        return;
    };
    let Some(settings) = &service.nginx else {
        return;
    };
    let base = format!("services.{name}");
    let (directives, problems) = parse(text);
    for problem in problems {
        cx.report_file(
            "TG022",
            Severity::Error,
            &base,
            &file,
            Some(problem.line),
            format!("{file}: {}", problem.message),
            "re-render, or balance the braces and end every directive with `;`".into(),
        );
    }
    for d in directives.iter().filter(|d| d.context == "http/server") {
        if d.name != "listen" {
            continue;
        }
        let listen = d.args.first().map(String::as_str).unwrap_or("");
        let port = listen.rsplit(':').next().unwrap_or(listen);
        if port != service.port.to_string() {
            cx.report_file(
                "TG201",
                Severity::Error,
                &format!("{base}.port"),
                &file,
                Some(d.line),
                format!(
                    "{file}: listens on {listen}, the model says port {}",
                    service.port
                ),
                "listen settings use the internal `port`".into(),
            );
        }
    }
    let Ok(expected) = stack.reach(service, &settings.upstream) else {
        return;
    };
    for d in directives
        .iter()
        .filter(|d| d.context.ends_with("location"))
    {
        let target = match (d.name.as_str(), d.args.as_slice()) {
            ("set", [var, value]) if var == "$upstream" => value,
            ("proxy_pass", [value]) if !value.starts_with('$') => value,
            ("proxy_read_timeout", [value]) => {
                let at = (file.as_str(), d.line);
                read_timeout(cx, stack, &base, settings, at, value);
                continue;
            }
            _ => continue,
        };
        let address = target.strip_prefix("http://").unwrap_or(target);
        if address.trim_end_matches('/') != expected.to_string() {
            cx.report_file(
                "TG202",
                Severity::Error,
                &format!("{base}.nginx.upstream"),
                &file,
                Some(d.line),
                format!(
                    "{file}: passes requests to {address}, but `{name}` reaches `{}` at {expected}",
                    settings.upstream
                ),
                format!("pass requests to http://{expected}"),
            );
        }
    }
}

/// The proxy must wait longer than the API it waits for (incident 31).
fn read_timeout(
    cx: &mut Ctx<'_>,
    stack: &Stack,
    base: &str,
    settings: &NginxSettings,
    (file, line): (&str, usize),
    value: &str,
) {
    let Some(api) = stack
        .service(&settings.upstream)
        .and_then(|u| u.api.as_ref())
    else {
        return;
    };
    match nginx_time(value) {
        Some(timeout) if timeout > api.request_timeout => {}
        _ => {
            cx.report_file(
                "TG607",
                Severity::Error,
                &format!("{base}.nginx.read_timeout"),
                file,
                Some(line),
                format!(
                    "{file}: proxy_read_timeout {value} is not longer than `{}` request_timeout {}",
                    settings.upstream, api.request_timeout
                ),
                "the caller's timeout must exceed the callee's".into(),
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn directives_carry_their_blocks_and_lines() {
        let text = "events {\n  worker_connections 10;\n}\nhttp {\n  server {\n    listen 8080; # port\n    location / { proxy_pass \"http://a:1\"; }\n  }\n}\n";
        let (directives, problems) = parse(text);
        assert!(problems.is_empty(), "{problems:?}");
        let listen = directives.iter().find(|d| d.name == "listen").unwrap();
        assert_eq!((listen.context.as_str(), listen.line), ("http/server", 6));
        let pass = directives.iter().find(|d| d.name == "proxy_pass").unwrap();
        assert_eq!(pass.context, "http/server/location");
        assert_eq!(pass.args, vec!["http://a:1".to_string()]);
    }

    #[test]
    fn unbalanced_blocks_and_missing_semicolons_are_problems() {
        let (_, problems) = parse("http {\n  listen 80\n");
        let messages: Vec<_> = problems.iter().map(|p| p.message.as_str()).collect();
        assert_eq!(
            messages,
            [
                "directive `listen` has no `;`",
                "block `http` is never closed"
            ]
        );
        let (_, problems) = parse("}\n");
        assert_eq!(problems[0].message, "`}` closes no block");
    }

    #[test]
    fn times_follow_nginx_units() {
        assert_eq!(nginx_time("35"), Some(Duration(35_000)));
        assert_eq!(nginx_time("35s"), Some(Duration(35_000)));
        assert_eq!(nginx_time("500ms"), Some(Duration(500)));
        assert_eq!(nginx_time("soon"), None);
    }
}
