//! Writes one dialect catalog to stdout; catalogs/SOURCES.md lists the command behind each
//! file of catalogs/. Sources at a tag are read from a git clone of the program's
//! repository (`git show TAG:PATH`).

use std::path::Path;
use std::process::Command;

use testkit::catalogs;

fn git_show(repo: &str, tag: &str, path: &str) -> String {
    let out = Command::new("git")
        .args(["-C", repo, "show", &format!("{tag}:{path}")])
        .output()
        .expect("git");
    assert!(
        out.status.success(),
        "git show {tag}:{path} in {repo} failed"
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn git_files(repo: &str, tag: &str, suffix: &str) -> Vec<String> {
    let out = Command::new("git")
        .args(["-C", repo, "ls-tree", "-r", "--name-only", tag])
        .output()
        .expect("git");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| l.ends_with(suffix))
        .map(str::to_owned)
        .collect()
}

const USAGE: &str = "usage: catalogs postgres BINDIR | systemd | redis REPO TAG | sentinel REPO TAG \
| pgbouncer REPO TAG | rabbitmq REPO TAG | rabbitmq-installed PLUGINS_DIR VERSION | compose SCHEMA";

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let arg = |i: usize| {
        args.get(i)
            .map(String::as_str)
            .unwrap_or_else(|| panic!("{USAGE}"))
    };
    let text = match arg(0) {
        "postgres" => catalogs::postgres(Path::new(arg(1))),
        "systemd" => catalogs::systemd(Path::new("/lib/systemd/systemd")),
        "redis" => catalogs::redis_source(arg(2), &git_show(arg(1), arg(2), "src/config.c")),
        "sentinel" => {
            catalogs::sentinel_source(arg(2), &git_show(arg(1), arg(2), "src/sentinel.c"))
        }
        "pgbouncer" => {
            let version = arg(2).trim_start_matches("pgbouncer_").replace('_', ".");
            catalogs::pgbouncer_source(&version, &git_show(arg(1), arg(2), "src/main.c"))
        }
        "rabbitmq" => {
            let files: Vec<(String, String)> = git_files(arg(1), arg(2), ".schema")
                .into_iter()
                .filter(|p| p.starts_with("deps/") && p.contains("/priv/schema/"))
                .map(|p| {
                    let plugin = p.split('/').nth(1).unwrap_or("").to_owned();
                    let text = git_show(arg(1), arg(2), &p);
                    (plugin, text)
                })
                .collect();
            catalogs::rabbitmq_schemas(arg(2).trim_start_matches('v'), &files)
        }
        "rabbitmq-installed" => catalogs::rabbitmq_schemas(
            arg(2),
            &catalogs::installed_rabbitmq_schemas(Path::new(arg(1))),
        ),
        "compose" => {
            let schema = std::fs::read_to_string(arg(1)).expect("read the compose schema");
            catalogs::compose_spec(&serde_json::from_str(&schema).expect("JSON"))
        }
        _ => panic!("{USAGE}"),
    };
    print!("{text}");
}
