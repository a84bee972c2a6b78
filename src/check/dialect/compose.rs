//! Compose files against every key path of the Compose Specification, so a valid key
//! tgstack never writes (`platform:`) is known and a misspelt one is found wherever it is.

use serde_json::Value;

use super::Issue;
use super::catalog::COMPOSE;

/// The keys of a compose file (already read as YAML) that the Compose Specification does
/// not have, and values of a type the specification does not allow there.
pub fn compose_file(text: &str, document: &Value) -> Vec<Issue> {
    let lines = Lines::new(text);
    let mut issues = Vec::new();
    walk(document, "", &[], &lines, &mut issues);
    issues.sort_by_key(|i| i.line);
    issues
}

fn walk(value: &Value, path: &str, trail: &[&str], lines: &Lines<'_>, issues: &mut Vec<Issue>) {
    match value {
        Value::Object(map) => {
            for (key, child) in map {
                // Extension fields and YAML merge keys are allowed everywhere.
                if key.starts_with("x-") || key == "<<" {
                    continue;
                }
                let exact = join(path, key);
                let named = join(path, "*");
                let child_path = if COMPOSE.get(&exact).is_some() {
                    exact
                } else if COMPOSE.get(&named).is_some() {
                    named
                } else {
                    issues.push(unknown(path, key, trail, lines));
                    continue;
                };
                let mut child_trail = trail.to_vec();
                child_trail.push(key);
                if let Some(issue) = type_problem(&child_path, child, &child_trail, lines) {
                    issues.push(issue);
                }
                walk(child, &child_path, &child_trail, lines, issues);
            }
        }
        Value::Array(items) => {
            for item in items.iter().filter(|i| i.is_object()) {
                walk(item, path, trail, lines, issues);
            }
        }
        _ => {}
    }
}

fn join(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_owned()
    } else {
        format!("{path}.{key}")
    }
}

fn unknown(path: &str, key: &str, trail: &[&str], lines: &Lines<'_>) -> Issue {
    let prefix = if path.is_empty() {
        String::new()
    } else {
        format!("{path}.")
    };
    let siblings = COMPOSE.keys().filter_map(|k| {
        let rest = k.strip_prefix(prefix.as_str())?;
        (!rest.contains('.') && rest != "*" && !rest.starts_with("x-")).then_some(rest)
    });
    let mut keys = trail.to_vec();
    keys.push(key);
    let mut issue = Issue::unknown(
        lines.find(&keys),
        "key",
        key,
        "Compose Specification",
        siblings,
    );
    let place = if trail.is_empty() {
        "the top level".to_string()
    } else {
        format!("`{}`", trail.join("."))
    };
    issue.message = format!("{} under {place}", issue.message);
    issue
}

/// A value whose JSON type the specification does not allow at `path`.
fn type_problem(path: &str, value: &Value, trail: &[&str], lines: &Lines<'_>) -> Option<Issue> {
    let allowed = COMPOSE.get(path)?.get(1).copied().unwrap_or("");
    if allowed.is_empty() || allowed == "any" {
        return None;
    }
    let actual = match value {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(n) if n.is_i64() || n.is_u64() => "integer",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    };
    let fits = allowed
        .split('|')
        .any(|a| a == actual || (a == "number" && actual == "integer"));
    (!fits).then(|| {
        Issue::new(
            lines.find(trail),
            format!(
                "`{}` is {actual}, the Compose Specification wants {}",
                trail.join("."),
                allowed.replace('|', " or ")
            ),
            "fix the value's type (quote it for a string)",
        )
    })
}

/// The 1-based line of a key path (`["services", "api", "image"]`) in a compose text, each
/// key looked for below its parent; the deepest key found (1 when none is).
pub fn compose_key_line(text: &str, keys: &[&str]) -> usize {
    Lines::new(text).find(keys)
}

/// Finds the line of a key path by indentation: each key is looked for below its parent.
struct Lines<'a> {
    lines: Vec<&'a str>,
}

impl<'a> Lines<'a> {
    fn new(text: &'a str) -> Self {
        Lines {
            lines: text.lines().collect(),
        }
    }

    /// Each key is looked for among the children of the previous one: lines of the parent's
    /// block at the depth of its first child, so a key of the same name deeper down (or in
    /// another service) is not taken for it.
    fn find(&self, keys: &[&str]) -> usize {
        let (mut from, mut parent, mut found) = (0, None::<usize>, 0);
        for key in keys {
            let mut child_depth = None;
            let mut hit = None;
            for (index, line) in self.lines.iter().enumerate().skip(from) {
                let content = line.trim_start();
                if content.is_empty() || content.starts_with('#') {
                    continue;
                }
                let depth = line.len() - content.len();
                if parent.is_some_and(|p| depth <= p) {
                    break;
                }
                let child = *child_depth.get_or_insert(depth);
                let body = content.trim_start_matches("- ");
                let named = [
                    format!("{key}:"),
                    format!("\"{key}\":"),
                    format!("'{key}':"),
                ];
                if depth == child && named.iter().any(|n| body.starts_with(n.as_str())) {
                    hit = Some((index, depth));
                    break;
                }
            }
            match hit {
                Some((index, depth)) => {
                    found = index + 1;
                    from = index + 1;
                    parent = Some(depth);
                }
                None => break,
            }
        }
        found.max(1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(text: &str) -> Vec<Issue> {
        let document: Value = serde_saphyr::from_str(text).unwrap();
        compose_file(text, &document)
    }

    #[test]
    fn spec_keys_pass_and_misspelt_keys_are_found_where_they_are() {
        let good = "name: app\nx-common: &common\n  restart: unless-stopped\nservices:\n  api:\n    <<: *common\n    image: nginx:1.27\n    platform: linux/amd64\n    pull_policy: missing\n    healthcheck:\n      test: [\"CMD\", \"true\"]\n      start_interval: 2s\n    deploy:\n      resources:\n        limits:\n          cpus: \"0.5\"\n    ports:\n      - target: 80\n        published: \"8080\"\n        host_ip: 127.0.0.1\nvolumes:\n  data:\n";
        assert_eq!(check(good), Vec::<Issue>::new());
        let bad = "services:\n  api:\n    image: nginx:1.27\n    healtcheck:\n      test: [\"CMD\", \"true\"]\n    deploy:\n      resources:\n        limit:\n          cpus: 1\n    ports: 8080\n";
        let found = check(bad);
        assert_eq!(found.len(), 3, "{found:#?}");
        assert!(found[0].message.contains("unknown key `healtcheck`") && found[0].line == 4);
        assert!(found[0].hint.contains("healthcheck"));
        assert!(found[1].message.contains("`limit`") && found[1].line == 8);
        assert!(
            found[2]
                .message
                .contains("`services.api.ports` is integer, the Compose Specification wants array")
        );
    }
}

/// One published port of a compose service, from either syntax.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct PortSpec {
    /// Host address (`127.0.0.1`), empty for all interfaces.
    pub host_ip: String,
    /// Host port (or range), empty when the engine picks one.
    pub published: String,
    /// Container port (or range), without the protocol.
    pub target: String,
    /// `tcp` (default) or `udp`.
    pub protocol: String,
}

/// `${VAR:-default}` / `${VAR-default}` replaced by the default; other `${VAR}` kept, so
/// a port spec splits on its own colons, not on the ones inside interpolations.
pub fn with_defaults(text: &str) -> String {
    let mut out = String::new();
    let mut rest = text;
    while let Some(start) = rest.find("${") {
        out.push_str(&rest[..start]);
        let body = start + 2;
        // The matching brace: a default may hold an interpolation of its own.
        let mut depth = 1;
        let end = rest[body..].char_indices().find_map(|(i, c)| {
            match c {
                '{' => depth += 1,
                '}' => depth -= 1,
                _ => {}
            }
            (depth == 0).then_some(body + i)
        });
        let Some(end) = end else {
            out.push_str(&rest[start..]);
            return out;
        };
        let inner = &rest[body..end];
        let name = inner
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .unwrap_or(inner.len());
        let operator = &inner[name..];
        match operator
            .strip_prefix(":-")
            .or_else(|| operator.strip_prefix('-'))
        {
            Some(default) => out.push_str(&with_defaults(default)),
            None => out.push_str(&rest[start..=end]),
        }
        rest = &rest[end + 1..];
    }
    out.push_str(rest);
    out
}

/// A `ports:` entry: `"[HOST_IP:][PUBLISHED:]TARGET[/PROTO]"` (IPv6 hosts in brackets,
/// interpolation defaults applied) or the long syntax.
pub fn port_spec(entry: &Value) -> PortSpec {
    let text = |v: Option<&Value>| match v {
        Some(Value::String(s)) => with_defaults(s),
        Some(Value::Number(n)) => n.to_string(),
        _ => String::new(),
    };
    match entry {
        Value::Object(map) => PortSpec {
            host_ip: text(map.get("host_ip")),
            published: text(map.get("published")),
            target: text(map.get("target")),
            protocol: protocol(&text(map.get("protocol"))),
        },
        Value::Number(n) => PortSpec {
            target: n.to_string(),
            protocol: protocol(""),
            ..PortSpec::default()
        },
        Value::String(spec) => {
            let spec = with_defaults(spec);
            let (spec, proto) = spec.split_once('/').unwrap_or((&spec, ""));
            let (host_ip, rest) = match spec.strip_prefix('[') {
                Some(v6) => match v6.split_once("]:") {
                    Some((ip, rest)) => (ip.to_owned(), rest),
                    None => (String::new(), spec),
                },
                None => (String::new(), spec),
            };
            let parts: Vec<&str> = rest.split(':').collect();
            let (ip, published, target) = match parts.as_slice() {
                [ip, published, target] => {
                    (ip.to_string(), published.to_string(), target.to_string())
                }
                [published, target] => (String::new(), published.to_string(), target.to_string()),
                [target] => (String::new(), String::new(), target.to_string()),
                _ => Default::default(),
            };
            PortSpec {
                host_ip: if host_ip.is_empty() { ip } else { host_ip },
                published,
                target,
                protocol: protocol(proto),
            }
        }
        _ => PortSpec::default(),
    }
}

fn protocol(text: &str) -> String {
    if text.is_empty() {
        "tcp".into()
    } else {
        text.to_ascii_lowercase()
    }
}

/// One `volumes:` entry of a service, from either syntax.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Mount {
    /// `bind` or `volume` (or `tmpfs`, ...).
    pub kind: String,
    /// Host path (bind) or volume name.
    pub source: String,
    pub target: String,
    pub read_only: bool,
}

/// A `volumes:` entry: `SOURCE:TARGET[:MODE]` (a source starting with `.`, `/` or `~` is a
/// host path) or the long syntax.
pub fn mount(entry: &Value) -> Mount {
    match entry {
        Value::Object(map) => {
            let text = |key: &str| {
                map.get(key)
                    .and_then(Value::as_str)
                    .map(with_defaults)
                    .unwrap_or_default()
            };
            Mount {
                kind: text("type"),
                source: text("source"),
                target: text("target"),
                read_only: map
                    .get("read_only")
                    .and_then(Value::as_bool)
                    .unwrap_or(false),
            }
        }
        Value::String(spec) => {
            let spec = with_defaults(spec);
            let parts: Vec<&str> = spec.split(':').collect();
            let (source, target, mode) = match parts.as_slice() {
                [target] => ("", *target, ""),
                [source, target] => (*source, *target, ""),
                [source, target, mode, ..] => (*source, *target, *mode),
                [] => ("", "", ""),
            };
            let host =
                source.starts_with('.') || source.starts_with('/') || source.starts_with('~');
            Mount {
                kind: if host { "bind" } else { "volume" }.into(),
                source: source.into(),
                target: target.into(),
                read_only: mode.split(',').any(|m| m == "ro"),
            }
        }
        _ => Mount::default(),
    }
}

#[cfg(test)]
mod spec_tests {
    use super::*;

    #[test]
    fn port_specs_with_interpolation_and_ipv6() {
        let spec = |s: &str| port_spec(&Value::String(s.into()));
        let want = |ip: &str, p: &str, t: &str| PortSpec {
            host_ip: ip.into(),
            published: p.into(),
            target: t.into(),
            protocol: "tcp".into(),
        };
        assert_eq!(
            spec("127.0.0.1:${PG_PORT:-6432}:6432"),
            want("127.0.0.1", "6432", "6432")
        );
        assert_eq!(
            spec("${BIND:-127.0.0.1}:8080:80/tcp"),
            want("127.0.0.1", "8080", "80")
        );
        assert_eq!(spec("[::1]:9090:9090"), want("::1", "9090", "9090"));
        assert_eq!(spec("5672"), want("", "", "5672"));
        assert_eq!(spec("53:53/udp").protocol, "udp");
        assert_eq!(
            with_defaults("${P:?must-be-set}:80"),
            "${P:?must-be-set}:80"
        );
        assert_eq!(with_defaults("${A:-${B:-7000}}:80"), "7000:80");
        assert_eq!(with_defaults("${V:+a-b}"), "${V:+a-b}");
        assert_eq!(spec("15672:15672"), want("", "15672", "15672"));
        let long: Value =
            serde_json::json!({"target": 80, "published": "${P:-8080}", "host_ip": "127.0.0.1"});
        assert_eq!(port_spec(&long), want("127.0.0.1", "8080", "80"));
    }

    #[test]
    fn mounts_of_both_syntaxes() {
        let short = mount(&Value::String(
            "./config/redis.conf:/etc/redis.conf:ro".into(),
        ));
        assert_eq!((short.kind.as_str(), short.read_only), ("bind", true));
        assert_eq!(short.target, "/etc/redis.conf");
        assert_eq!(
            mount(&Value::String("pgdata:/var/lib/postgresql/data".into())).kind,
            "volume"
        );
        let long = mount(
            &serde_json::json!({"type": "bind", "source": "./rules", "target": "/etc/prometheus/rules"}),
        );
        assert_eq!(
            (long.source.as_str(), long.target.as_str()),
            ("./rules", "/etc/prometheus/rules")
        );
    }
}
