//! The dialect checks against the programs' own catalogs: a corpus of valid hand-written
//! configs (tests/fixtures/dialects/valid, each proven by its real program, see its README)
//! and the reference tree give no finding; the catalogs match the programs installed here.

use std::path::{Path, PathBuf};

use tgstack::check::dialect::{Dialect, Release};

const DIALECTS: &[(&str, Dialect)] = &[
    ("postgresql", Dialect::Postgresql),
    ("pgbouncer", Dialect::Pgbouncer),
    ("redis", Dialect::Redis),
    ("sentinel", Dialect::Sentinel),
    ("rabbitmq", Dialect::Rabbitmq),
    ("systemd", Dialect::Systemd),
    ("compose", Dialect::Compose),
];

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn files_in(dir: &Path) -> Vec<PathBuf> {
    testkit::sorted_entries(dir)
}

/// Every finding of `dialect` on `file`, as `file:line: message`.
fn findings(dialect: Dialect, file: &Path, release: Release<'_>) -> Vec<String> {
    let text = std::fs::read_to_string(file).unwrap();
    let name = file.file_name().unwrap().to_string_lossy();
    dialect
        .check(&name, &text, release)
        .into_iter()
        .map(|i| format!("{}:{}: {}", file.display(), i.line, i.message))
        .collect()
}

#[test]
fn valid_hand_written_configs_give_no_finding() {
    let corpus = root().join("tests/fixtures/dialects/valid");
    let mut false_findings = Vec::new();
    for (dir, dialect) in DIALECTS {
        let files = files_in(&corpus.join(dir));
        assert!(files.len() >= 5, "{dir}: the corpus needs at least 5 files");
        for file in files {
            false_findings.extend(findings(*dialect, &file, Release::Newest));
        }
    }
    assert!(
        false_findings.is_empty(),
        "false findings:\n{}",
        false_findings.join("\n")
    );
}

#[test]
fn the_reference_tree_gives_no_dialect_finding() {
    let generated = root().join("generated");
    let mut checked = 0;
    let mut false_findings = Vec::new();
    for file in walk(&generated) {
        let name = file.file_name().unwrap().to_string_lossy().into_owned();
        let dialect = match name.as_str() {
            "postgresql.conf" => Dialect::Postgresql,
            "pgbouncer.ini" => Dialect::Pgbouncer,
            "redis.conf" => Dialect::Redis,
            "rabbitmq.conf" => Dialect::Rabbitmq,
            "docker-compose.yml" => Dialect::Compose,
            n if n.starts_with("sentinel") && n.ends_with(".conf") => Dialect::Sentinel,
            n if n.ends_with(".service") || n.ends_with(".timer") => Dialect::Systemd,
            _ => continue,
        };
        checked += 1;
        false_findings.extend(findings(dialect, &file, Release::Newest));
    }
    assert!(
        checked >= 8,
        "only {checked} dialect files found in generated/"
    );
    assert!(
        false_findings.is_empty(),
        "false findings:\n{}",
        false_findings.join("\n")
    );
}

fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for path in files_in(dir) {
        if path.is_dir() {
            out.extend(walk(&path));
        } else {
            out.push(path);
        }
    }
    out
}

/// The data lines of catalogs/`name`, which tgstack embeds.
fn stored(name: &str) -> String {
    let text = std::fs::read_to_string(root().join("catalogs").join(name)).unwrap();
    testkit::catalogs::data_lines(&text).join("\n")
}

fn assert_regenerated(name: &str, regenerated: &str) {
    let fresh = testkit::catalogs::data_lines(regenerated).join("\n");
    let stored = stored(name);
    if fresh != stored {
        let diff = similar::TextDiff::from_lines(&stored, &fresh);
        panic!(
            "catalogs/{name} differs from what the installed program says (- stored, + program); \
             regenerate it as catalogs/SOURCES.md says:\n{}",
            diff.unified_diff().context_radius(1)
        );
    }
}

#[test]
fn catalogs_match_the_programs_installed_here() {
    testkit::require_program("/usr/lib/postgresql/15/bin/postgres");
    let postgres = testkit::catalogs::postgres(Path::new("/usr/lib/postgresql/15/bin"));
    assert_regenerated("postgresql-15.tsv", &postgres);
    assert_regenerated(
        "systemd-252.tsv",
        &testkit::catalogs::systemd(Path::new("/lib/systemd/systemd")),
    );
    let plugins = Path::new("/usr/lib/rabbitmq/lib/rabbitmq_server-3.10.8/plugins");
    assert!(
        plugins.is_dir(),
        "RabbitMQ 3.10.8 is not installed: run `bash scripts/test-env.sh`"
    );
    let schemas = testkit::catalogs::installed_rabbitmq_schemas(plugins);
    assert_regenerated(
        "rabbitmq-3.10.8.tsv",
        &testkit::catalogs::rabbitmq_schemas("3.10.8", &schemas),
    );
    let spec = root().join("../shared/oracles/schemas/compose-spec.json");
    let spec = std::fs::read_to_string(&spec).unwrap_or_else(|e| {
        panic!(
            "{}: {e} (the public schemas live beside the project)",
            spec.display()
        )
    });
    assert_regenerated(
        "compose-spec.tsv",
        &testkit::catalogs::compose_spec(&serde_json::from_str(&spec).unwrap()),
    );
}

/// The rows of a catalog as columns.
fn rows(name: &str) -> Vec<Vec<String>> {
    stored(name)
        .lines()
        .map(|l| l.split('\t').map(str::to_owned).collect())
        .collect()
}

/// The Redis catalog of the installed version is read from its source (like the pinned
/// one); the running server's `CONFIG GET *` proves the reader finds every setting.
#[test]
fn the_redis_source_catalog_matches_the_installed_server() {
    let dir = testkit::daemon_temp_dir("tgstack-catalog-redis");
    let port = testkit::free_port();
    let port_arg = port.to_string();
    let mut redis = testkit::spawn(
        "redis",
        "redis-server",
        &[
            "--port",
            &port_arg,
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--dir",
            dir.path().to_str().unwrap(),
        ],
        &[],
        &dir.path().join("log"),
        None,
    );
    testkit::wait_for_port(&mut redis, port, std::time::Duration::from_secs(10));
    let (ok, out) = testkit::run(
        "redis-cli",
        &["-p", &port_arg, "--raw", "CONFIG", "GET", "*"],
        &[],
    );
    assert!(ok, "{out}");
    let mut served: Vec<String> = out.lines().step_by(2).map(str::to_owned).collect();
    served.sort();
    let (_, version) = testkit::run("redis-server", &["--version"], &[]);
    assert!(
        version.contains("v=7.0.15"),
        "the catalog is of Redis 7.0.15, installed: {version}"
    );
    // The table's settings and their aliases (name, alias, type, flags); CONFIG GET leaves
    // out hidden debug settings, and loader directives (include, user) are not settings.
    let mut expected: Vec<String> = rows("redis-7.0.15.tsv")
        .into_iter()
        .filter(|r| {
            !matches!(r[2].as_str(), "directive" | "deprecated") && !r[3].contains("hidden")
        })
        .flat_map(|r| [r[0].clone(), r[1].clone()])
        .filter(|n| !n.is_empty())
        .collect();
    expected.sort();
    assert_eq!(served, expected);
}

/// Likewise PgBouncer: `SHOW CONFIG` of the installed 1.18 against its source catalog.
#[test]
fn the_pgbouncer_source_catalog_matches_the_installed_pooler() {
    let dir = testkit::daemon_temp_dir("tgstack-catalog-pgbouncer");
    let port = testkit::free_port();
    let ini = dir.path().join("pgbouncer.ini");
    std::fs::write(
        &ini,
        format!(
            "[databases]\n\n[pgbouncer]\nlisten_addr = 127.0.0.1\nlisten_port = {port}\n\
             auth_type = trust\nauth_file = {0}/users.txt\nadmin_users = catalog\nunix_socket_dir =\n",
            dir.path().display()
        ),
    )
    .unwrap();
    std::fs::write(dir.path().join("users.txt"), "\"catalog\" \"\"\n").unwrap();
    let mut bouncer = testkit::spawn(
        "pgbouncer",
        "pgbouncer",
        &[ini.to_str().unwrap()],
        &[],
        &dir.path().join("log"),
        Some("postgres"),
    );
    testkit::wait_for_port(&mut bouncer, port, std::time::Duration::from_secs(10));
    let (ok, out) = testkit::run(
        "psql",
        &[
            "-h",
            "127.0.0.1",
            "-p",
            &port.to_string(),
            "-U",
            "catalog",
            "-d",
            "pgbouncer",
            "-X",
            "-t",
            "-A",
            "-c",
            "SHOW CONFIG",
        ],
        &[],
    );
    assert!(ok, "{out}\n{}", bouncer.log_text());
    let mut served: Vec<String> = out
        .lines()
        .filter_map(|l| l.split('|').next())
        .map(str::to_owned)
        .collect();
    served.sort();
    // SHOW CONFIG lists a setting once, not under its alias (name, type, enumvals, alias_of).
    let mut expected: Vec<String> = rows("pgbouncer-1.18.0.tsv")
        .into_iter()
        .filter(|r| r.get(3).is_none_or(String::is_empty))
        .map(|r| r[0].clone())
        .collect();
    expected.sort();
    assert_eq!(served, expected);
}

/// The Sentinel catalog of the installed version (read from its source, like the pinned
/// one) is what the installed redis-sentinel accepts: each subcommand with each of its
/// argument counts gets past the program's "Unrecognized sentinel configuration
/// statement", and one argument more (or an unknown subcommand) does not.
#[test]
fn the_sentinel_catalog_is_what_the_installed_sentinel_accepts() {
    testkit::require_program("redis-sentinel");
    let (_, version) = testkit::run("redis-sentinel", &["--version"], &[]);
    assert!(
        version.contains("v=7.0.15"),
        "the catalog is of Redis Sentinel 7.0.15, installed: {version}"
    );
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("sentinel.conf");
    // Line 1 is the statement; line 2 always stops the program, so a statement it
    // accepts is reported at line 2 and nothing is started.
    let verdict = |statement: &str| -> String {
        std::fs::write(
            &config,
            format!("{statement}\nsentinel tgstack-no-such-statement\n"),
        )
        .unwrap();
        let (ok, out) = testkit::run("redis-sentinel", &[config.to_str().unwrap()], &[]);
        assert!(!ok, "redis-sentinel started on {statement:?}:\n{out}");
        let at_line = |n: usize| out.contains(&format!("at line {n}\n"));
        assert!(at_line(1) || at_line(2), "{statement:?}:\n{out}");
        if at_line(2) {
            "accepted".into()
        } else if out.contains("Unrecognized sentinel configuration statement") {
            "unrecognized".into()
        } else {
            // Recognized, its (dummy) arguments refused: e.g. "No such master".
            "recognized".into()
        }
    };
    let statement = |subcommand: &str, argc: usize| {
        let mut words = vec!["sentinel".to_string(), subcommand.to_string()];
        words.extend((1..argc).map(|i| format!("a{i}")));
        words.join(" ")
    };
    let catalog = rows("sentinel-7.0.15.tsv");
    assert!(catalog.len() > 20, "{catalog:?}");
    for row in &catalog {
        let (subcommand, counts) = (&row[0], &row[1]);
        let counts: Vec<usize> = counts.split('|').map(|c| c.parse().unwrap()).collect();
        for &argc in &counts {
            assert_ne!(
                verdict(&statement(subcommand, argc)),
                "unrecognized",
                "the catalog says `sentinel {subcommand}` takes {argc} words"
            );
        }
        let more = counts.iter().max().unwrap() + 1;
        assert_eq!(
            verdict(&statement(subcommand, more)),
            "unrecognized",
            "`sentinel {subcommand}` with {more} words is accepted, the catalog says {counts:?}"
        );
    }
    assert_eq!(verdict("sentinel tgstack-unknown a1"), "unrecognized");
}
