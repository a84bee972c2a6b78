//! systemd unit files against the directives the installed systemd dumps per section.

use super::Issue;
use super::catalog::SYSTEMD;
use crate::check::artifacts::parse;

/// The section a unit type adds to [Unit] and [Install], by file suffix.
fn type_section(file_name: &str) -> Option<&'static str> {
    let suffix = file_name.rsplit_once('.')?.1;
    Some(match suffix {
        "service" => "Service",
        "socket" => "Socket",
        "timer" => "Timer",
        "mount" => "Mount",
        "automount" => "Automount",
        "swap" => "Swap",
        "path" => "Path",
        "slice" => "Slice",
        "scope" => "Scope",
        _ => return None,
    })
}

/// A unit file; `file_name` (`x.service`) says which type section it may have.
pub fn systemd_unit(text: &str, file_name: &str) -> Vec<Issue> {
    let program = format!("systemd {}", SYSTEMD.version);
    let (entries, syntax) = parse::ini(&joined_continuations(text));
    let mut issues = Issue::from_syntax(syntax);
    let own = type_section(file_name);
    let mut reported_sections = Vec::new();
    for entry in &entries {
        let section = entry.section.as_str();
        if section.starts_with("X-") || entry.key.starts_with("X-") {
            continue;
        }
        let allowed = matches!(section, "Unit" | "Install") || own.is_none_or(|s| s == section);
        let known = SYSTEMD
            .keys()
            .any(|k| k.split_once('.').is_some_and(|(s, _)| s == section));
        if !(allowed && known) {
            if !reported_sections.contains(&section) {
                reported_sections.push(section);
                issues.push(Issue::new(
                    entry.line,
                    format!("section [{section}] is not read in {file_name} ({program})"),
                    format!(
                        "a {} unit reads [Unit], [{}] and [Install]",
                        own.unwrap_or("unit").to_lowercase(),
                        own.unwrap_or("...")
                    ),
                ));
            }
            continue;
        }
        let key = format!("{section}.{}", entry.key);
        let Some(row) = SYSTEMD.get(&key) else {
            let in_section = SYSTEMD
                .keys()
                .filter_map(|k| k.strip_prefix(section).and_then(|k| k.strip_prefix('.')));
            issues.push(Issue::unknown(
                entry.line,
                &format!("[{section}] directive"),
                &entry.key,
                &program,
                in_section,
            ));
            continue;
        };
        if row.get(1) == Some(&"BOOLEAN") && !entry.value.is_empty() && !boolean(&entry.value) {
            issues.push(Issue::new(
                entry.line,
                format!("{}={}: not a boolean ({program})", entry.key, entry.value),
                "write yes or no",
            ));
        }
    }
    issues
}

/// systemd's parse_boolean.
fn boolean(value: &str) -> bool {
    matches!(
        value.to_ascii_lowercase().as_str(),
        "1" | "yes" | "y" | "true" | "t" | "on" | "0" | "no" | "n" | "false" | "f" | "off"
    )
}

/// Lines ending in `\` joined with the next, the joined lines left empty so line numbers
/// stay those of the file.
fn joined_continuations(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut pending = String::new();
    let mut blanks = 0;
    for line in text.lines() {
        let starts_comment =
            pending.is_empty() && matches!(line.trim_start().chars().next(), Some('#' | ';'));
        match line.strip_suffix('\\') {
            Some(head) if !starts_comment => {
                pending.push_str(head);
                pending.push(' ');
                blanks += 1;
            }
            _ => {
                pending.push_str(line);
                out.push_str(&pending);
                out.push('\n');
                out.push_str(&"\n".repeat(blanks));
                pending.clear();
                blanks = 0;
            }
        }
    }
    out.push_str(&pending);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn directives_per_section_and_booleans() {
        let good = "[Unit]\nDescription=x\nAfter=network.target\n[Service]\nExecStart=/bin/sleep \\\n  10\n\
            StandardOutput=journal\nNice=5\nSyslogIdentifier=x\nX-Team=data\nProtectSystem=strict\n\
            NoNewPrivileges=yes\n[Install]\nWantedBy=multi-user.target\n";
        assert_eq!(systemd_unit(good, "x.service"), Vec::<Issue>::new());
        let bad = "[Unit]\nDescription=x\n[Service]\nExecStrat=/bin/true\nNoNewPrivileges=maybe\n\
            [Timer]\nOnCalendar=daily\n";
        let found: Vec<String> = systemd_unit(bad, "x.service")
            .into_iter()
            .map(|i| i.message)
            .collect();
        assert_eq!(found.len(), 3, "{found:#?}");
        assert!(found[0].contains("unknown [Service] directive `ExecStrat`"));
        assert!(found[1].contains("not a boolean"));
        assert!(found[2].contains("section [Timer] is not read in x.service"));
        assert_eq!(systemd_unit(bad, "x.service")[0].line, 4);
    }
}
