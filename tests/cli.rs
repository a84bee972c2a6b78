//! The command line as an operator uses it: exit codes, messages that name the file,
//! line and key, secrets never echoed, `generated/` untouched on error, drift diffs.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::support::{root, tgstack};

/// A temp project: the reference stack.toml, a rendered generated/, and an overlay.
struct Project {
    dir: tempfile::TempDir,
}

impl Project {
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        std::fs::copy(root().join("stack.toml"), dir.path().join("stack.toml")).unwrap();
        let project = Project { dir };
        let (code, _, err) = project.run(&["render"]);
        assert_eq!(code, 0, "reference render failed: {err}");
        project
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    fn run(&self, args: &[&str]) -> (i32, String, String) {
        tgstack(args, self.path())
    }

    fn write(&self, name: &str, text: &str) -> PathBuf {
        let path = self.path().join(name);
        std::fs::write(&path, text).unwrap();
        path
    }

    fn snapshot(&self) -> Vec<(PathBuf, Vec<u8>)> {
        let mut files = Vec::new();
        fn walk(dir: &Path, files: &mut Vec<(PathBuf, Vec<u8>)>) {
            for entry in std::fs::read_dir(dir).unwrap() {
                let path = entry.unwrap().path();
                if path.is_dir() {
                    walk(&path, files);
                } else {
                    files.push((path.clone(), std::fs::read(&path).unwrap()));
                }
            }
        }
        walk(&self.path().join("generated"), &mut files);
        files.sort();
        files
    }
}

#[test]
fn reference_model_renders_validates_and_is_current() {
    let project = Project::new();
    let (code, _, err) = project.run(&["render", "--check"]);
    assert_eq!(code, 0, "{err}");
    let (code, out, err) = project.run(&["validate"]);
    assert_eq!(
        code, 0,
        "validate of the reference model failed:\n{out}{err}"
    );
    // The committed generated/ is byte for byte what the committed stack.toml renders to.
    let (code, out, err) = tgstack(&["render", "--check"], &root());
    assert_eq!(
        code, 0,
        "the committed generated/ is stale: run `tgstack render`\n{out}{err}"
    );
}

#[test]
fn reference_with_the_read_cache_on_renders_and_validates_clean() {
    let project = Project::new();
    project.write(
        "cache.toml",
        "[services.gateway-api.api.cache]\nenabled = true\n",
    );
    let model = ["-f", "stack.toml", "-f", "cache.toml"];
    let (code, _, err) = project.run(&[&["render"][..], &model, &["--out", "on"]].concat());
    assert_eq!(code, 0, "{err}");
    // Its alert and panels are checked against the API's metric catalog (TG510) too.
    let (code, out, err) =
        project.run(&[&["validate"][..], &model, &["--generated", "on"]].concat());
    assert_eq!(code, 0, "validate with the cache on:\n{out}{err}");
    let rules =
        std::fs::read_to_string(project.path().join("on/prometheus/rules/warning.yml")).unwrap();
    assert!(rules.contains("tg_api_cache_hits_total"), "{rules}");
}

/// Each broken model: exit 1, the finding names the overlay's line and the key, and
/// generated/ is byte for byte what it was.
fn assert_rejected(
    overlay: &str,
    rule: &str,
    line: usize,
    must_mention: &[&str],
    must_not_mention: &[&str],
) {
    let project = Project::new();
    let before = project.snapshot();
    project.write("broken.toml", overlay);
    for command in [
        ["render", "-f", "stack.toml", "-f", "broken.toml"],
        ["validate", "-f", "stack.toml", "-f", "broken.toml"],
    ] {
        let (code, out, err) = project.run(&command);
        let all = format!("{out}{err}");
        assert_eq!(
            code,
            1,
            "`{}` should fail with 1:\n{all}",
            command.join(" ")
        );
        assert!(all.contains(&format!("[{rule}]")), "no {rule} in:\n{all}");
        assert!(
            all.contains(&format!("broken.toml:{line}:")),
            "no location broken.toml:{line} in:\n{all}"
        );
        for needle in must_mention {
            assert!(all.contains(needle), "`{needle}` missing from:\n{all}");
        }
        for needle in must_not_mention {
            assert!(
                !all.contains(needle),
                "`{needle}` must not appear in:\n{all}"
            );
        }
    }
    assert!(
        project.snapshot() == before,
        "generated/ changed although render failed"
    );
}

#[test]
fn two_services_publishing_6379_is_rejected_with_the_line() {
    assert_rejected(
        "[services.redis-replica]\npublish = 6379\n",
        "TG203",
        2,
        &[
            "host port 6379 is published by both",
            "services.redis-replica.publish",
        ],
        &[],
    );
}

#[test]
fn unknown_key_is_rejected_with_a_suggestion() {
    assert_rejected(
        "[services.pgbouncer.pgbouncer]\npool_mod = \"session\"\n",
        "TG002",
        2,
        &["unknown key `pool_mod`", "did you mean `pool_mode`?"],
        &[],
    );
}

#[test]
fn literal_password_is_rejected_without_echoing_it() {
    assert_rejected(
        "[services.timescaledb.postgres.roles.tg_app]\npassword = \"hunter2-literal\"\n",
        "TG104",
        2,
        &["literal secret", "{ secret = "],
        &["hunter2-literal"],
    );
}

#[test]
fn unknown_service_reference_suggests_the_near_name() {
    assert_rejected(
        "[services.pgbouncer.pgbouncer]\nupstream = \"timescale\"\n",
        "TG003",
        2,
        &["unknown service `timescale`", "did you mean `timescaledb`?"],
        &[],
    );
}

#[test]
fn toml_syntax_error_names_the_file_and_line() {
    assert_rejected(
        "[services.pgbouncer\nport = 1\n",
        "TG001",
        1,
        &["not valid TOML"],
        &[],
    );
}

#[test]
fn numbers_out_of_their_range_are_rejected_at_their_key() {
    assert_rejected(
        "[services.pgbouncer]\nport = 0\n",
        "TG002",
        2,
        &["services.pgbouncer.port", "from 1 to 65535"],
        &[],
    );
    assert_rejected(
        "[services.redis-master]\ncpus = nan\n",
        "TG002",
        2,
        &["services.redis-master.cpus", "from 0.01 to 256"],
        &[],
    );
    // Far beyond the type: one finding for the range, none from the parser's u32.
    assert_rejected(
        "[services.tg-gateway.gateway]\nbatch_size = 99999999999\n",
        "TG002",
        2,
        &[
            "services.tg-gateway.gateway.batch_size",
            "from 1 to 10000",
            "1 error(s)",
        ],
        &[],
    );
}

/// Every key of the reference model that holds a `{ secret = "<id>" }` reference, as the
/// TOML table header and key an overlay writes it with.
fn secret_bearing_keys() -> Vec<(String, String)> {
    fn walk(table: &toml::Table, path: &mut Vec<String>, out: &mut Vec<(String, String)>) {
        for (key, value) in table {
            let toml::Value::Table(inner) = value else {
                continue;
            };
            if inner.len() == 1 && inner.get("secret").is_some_and(toml::Value::is_str) {
                let header = path.iter().map(|p| format!("\"{p}\"")).collect::<Vec<_>>();
                out.push((header.join("."), key.clone()));
            } else {
                path.push(key.clone());
                walk(inner, path, out);
                path.pop();
            }
        }
    }
    let text = std::fs::read_to_string(root().join("stack.toml")).unwrap();
    let model: toml::Table = toml::from_str(&text).unwrap();
    let mut out = Vec::new();
    walk(&model, &mut Vec::new(), &mut out);
    out
}

#[test]
fn secrets_written_in_any_wrong_shape_never_reach_any_output() {
    let project = Project::new();
    let keys = secret_bearing_keys();
    assert!(keys.len() >= 10, "{keys:?}");
    // (value as written, the bytes that must appear nowhere)
    let shapes = [
        ("\"Lk7quartz\"", "Lk7quartz"),
        ("987654321987", "987654321987"),
        ("98765.4321", "98765"),
        ("[\"Lk7basalt\"]", "Lk7basalt"),
        ("{ secret = \"redis\", extra = \"Lk7marble\" }", "Lk7marble"),
        ("{ value = \"Lk7granite\" }", "Lk7granite"),
        ("{ secret = 424242424242 }", "424242424242"),
    ];
    for (header, key) in &keys {
        for (value, token) in shapes {
            project.write("leak.toml", &format!("[{header}]\n{key} = {value}\n"));
            let out_dir = project.path().join("leak-out");
            let runs = [
                vec!["validate", "-f", "stack.toml", "-f", "leak.toml"],
                vec![
                    "validate",
                    "-f",
                    "stack.toml",
                    "-f",
                    "leak.toml",
                    "--format",
                    "json",
                ],
                vec![
                    "validate",
                    "-f",
                    "stack.toml",
                    "-f",
                    "leak.toml",
                    "--format",
                    "sarif",
                ],
                vec![
                    "render",
                    "-f",
                    "stack.toml",
                    "-f",
                    "leak.toml",
                    "--out",
                    "leak-out",
                ],
            ];
            for args in runs {
                let (code, out, err) = project.run(&args);
                assert_eq!(
                    code,
                    1,
                    "{header}.{key} = {value}: `{}` accepted it",
                    args.join(" ")
                );
                assert!(
                    !out.contains(token) && !err.contains(token),
                    "{header}.{key} = {value}: `{}` printed it:\n{out}{err}",
                    args.join(" ")
                );
            }
            assert!(
                !out_dir.exists(),
                "{header}.{key} = {value}: render wrote files"
            );
        }
    }
}

#[test]
fn every_shape_mistake_of_a_file_is_reported_in_one_run_in_the_model_words() {
    let project = Project::new();
    project.write(
        "three.toml",
        "[services.redis-master]\nport = \"abc\"\nnetworks = \"data\"\ncpu = 1\ndeploy = \"somewhere\"\nmemory = \"a lot\"\n",
    );
    let (code, out, err) = project.run(&["validate", "-f", "stack.toml", "-f", "three.toml"]);
    assert_eq!(code, 1, "{out}{err}");
    let all = format!("{out}{err}");
    for (line, key, says) in [
        (
            2,
            "services.redis-master.port",
            "must be a whole number from 1 to 65535",
        ),
        (3, "services.redis-master.networks", "must be a list"),
        (4, "services.redis-master.cpu", "did you mean `cpus`?"),
        (
            5,
            "services.redis-master.deploy",
            "must be one of `container`, `native`",
        ),
        (6, "services.redis-master.memory", "is not a size"),
    ] {
        assert!(
            all.contains(&format!("three.toml:{line}:")),
            "line {line} missing:\n{all}"
        );
        assert!(
            all.contains(&format!("key: {key}")),
            "{key} missing:\n{all}"
        );
        assert!(all.contains(says), "`{says}` missing:\n{all}");
    }
    for serde_speak in [
        "invalid type",
        "expected u16",
        "struct",
        "sequence",
        "variant",
    ] {
        assert!(!all.contains(serde_speak), "`{serde_speak}` in:\n{all}");
    }
}

#[test]
fn overlay_paths_that_name_nothing_are_rejected_with_their_line() {
    assert_rejected(
        "# a typo in the path\nunset = [\"services.pgbouncer.publsh\"]\n",
        "TG003",
        2,
        &["services.pgbouncer.publsh", "unset"],
        &[],
    );
    assert_rejected(
        "append = [\n  \"alerts\",\n  \"channnels\",\n]\n\n[[alerts]]\nname = \"X\"\nkind = \"service-down\"\nservice = \"tg-gateway\"\nseverity = \"warning\"\nfor = \"1m\"\n",
        "TG003",
        3,
        &["channnels", "append"],
        &[],
    );
}

#[test]
fn overlay_arrays_of_tables_replace_with_a_note_or_append_when_asked() {
    let project = Project::new();
    let alert = "[[alerts]]\nname = \"ApiDown\"\nkind = \"service-down\"\nservice = \"gateway-api\"\nseverity = \"warning\"\nfor = \"2m\"\n";
    project.write("replace.toml", alert);
    project.write("append.toml", &format!("append = [\"alerts\"]\n\n{alert}"));
    let base_alerts = std::fs::read_to_string(project.path().join("stack.toml"))
        .unwrap()
        .matches("[[alerts]]")
        .count();
    // Every alert of the rendered rule files (one per severity), in file then rule order.
    let alert_names = |dir: &str| -> Vec<String> {
        let rules = project.path().join(dir).join("prometheus/rules");
        let mut files: Vec<_> = std::fs::read_dir(rules)
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
        files.sort();
        files
            .iter()
            .flat_map(|f| {
                let text = std::fs::read_to_string(f).unwrap();
                text.lines()
                    .filter_map(|l| l.trim().strip_prefix("- alert: "))
                    .map(|n| n.trim_matches('"').to_string())
                    .collect::<Vec<_>>()
            })
            .collect()
    };

    let (code, _, err) = project.run(&[
        "render",
        "-f",
        "stack.toml",
        "-f",
        "replace.toml",
        "--out",
        "replaced",
    ]);
    assert_eq!(code, 0, "{err}");
    assert!(
        err.contains(&format!(
            "note: replace.toml replaces `alerts` ({base_alerts} entries -> 1)"
        )) && err.contains("append = [\"alerts\"]"),
        "{err}"
    );
    assert_eq!(alert_names("replaced"), ["ApiDown"]);

    let (code, _, err) = project.run(&[
        "render",
        "-f",
        "stack.toml",
        "-f",
        "append.toml",
        "--out",
        "appended",
    ]);
    assert_eq!(code, 0, "{err}");
    assert!(!err.contains("note:"), "{err}");
    let names = alert_names("appended");
    // The base's rendered alerts (its read-cache alert is not: the cache is off), plus one.
    let (code, _, err) = project.run(&["render", "-f", "stack.toml", "--out", "base"]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(names.len(), alert_names("base").len() + 1, "{names:?}");
    assert!(names.iter().any(|n| n == "ApiDown"), "{names:?}");
}

#[test]
fn render_check_prints_a_unified_diff_and_the_fixing_command() {
    let project = Project::new();
    let ini = project.path().join("generated/pgbouncer/pgbouncer.ini");
    let text = std::fs::read_to_string(&ini).unwrap();
    std::fs::write(
        &ini,
        text.replace("default_pool_size = 20", "default_pool_size = 50"),
    )
    .unwrap();
    std::fs::write(project.path().join("generated/stray.conf"), "x\n").unwrap();
    std::fs::remove_file(project.path().join("generated/.env.example")).unwrap();
    let (code, out, err) = project.run(&["render", "--check"]);
    assert_eq!(code, 1);
    assert!(
        out.contains("--- a/generated/pgbouncer/pgbouncer.ini"),
        "{out}"
    );
    assert!(
        out.contains("-default_pool_size = 50\n+default_pool_size = 20"),
        "{out}"
    );
    assert!(
        out.contains("+++ /dev/null") && out.contains("stray.conf"),
        "{out}"
    );
    assert!(
        out.contains("--- /dev/null") && out.contains(".env.example"),
        "{out}"
    );
    assert!(
        err.contains("3 file(s) differ") && err.contains("tgstack render"),
        "{err}"
    );
    assert!(
        err.contains("move away stray.conf (tgstack did not write them)"),
        "{err}"
    );
    // validate reports the hand edit as a finding with the rendered file and line.
    let (code, out, _) = project.run(&["validate"]);
    assert_eq!(code, 1);
    assert!(
        out.contains("[TG013]") && out.contains("rendered: pgbouncer/pgbouncer.ini:"),
        "{out}"
    );
    // Re-rendering repairs it once the file tgstack did not write is moved away: render
    // never deletes it.
    let (code, _, err) = project.run(&["render"]);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("stray.conf"), "{err}");
    std::fs::remove_file(project.path().join("generated/stray.conf")).unwrap();
    assert_eq!(project.run(&["render"]).0, 0);
    assert_eq!(project.run(&["render", "--check"]).0, 0);
}

/// Every entry of `dir` (recursively), as relative paths: what a failed render must leave.
fn entries(dir: &Path) -> Vec<String> {
    let mut out = Vec::new();
    fn walk(root: &Path, dir: &Path, out: &mut Vec<String>) {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            out.push(path.strip_prefix(root).unwrap().display().to_string());
            if path.is_dir() && !path.is_symlink() {
                walk(root, &path, out);
            }
        }
    }
    walk(dir, dir, &mut out);
    out.sort();
    out
}

#[test]
fn render_never_replaces_a_directory_holding_files_it_did_not_write() {
    let project = Project::new();
    let model = project.path().join("stack.toml");
    let model = model.to_str().unwrap();
    // A directory of the operator's: refused, untouched, nothing left beside it.
    let mine = project.path().join("mine");
    std::fs::create_dir_all(mine.join("notes")).unwrap();
    std::fs::write(mine.join("notes/todo.txt"), "keep me").unwrap();
    std::fs::write(mine.join("deploy.sh"), "echo hi").unwrap();
    let before = entries(project.path());
    let (code, _, err) = project.run(&["render", "-f", model, "--out", "mine"]);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("refusing to render into mine"), "{err}");
    assert!(err.contains("deploy.sh") && err.contains("notes/"), "{err}");
    assert_eq!(
        entries(project.path()),
        before,
        "a refused render changed the disk"
    );
    assert_eq!(
        std::fs::read_to_string(mine.join("notes/todo.txt")).unwrap(),
        "keep me"
    );

    // Its own tree it replaces, again and again; a file added by hand makes it refuse.
    let generated = project.path().join("generated");
    assert_eq!(project.run(&["render"]).0, 0);
    std::fs::write(generated.join("handmade.conf"), "x").unwrap();
    let (code, _, err) = project.run(&["render"]);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("handmade.conf"), "{err}");
    assert!(generated.join("handmade.conf").exists());
    std::fs::remove_file(generated.join("handmade.conf")).unwrap();
    assert_eq!(project.run(&["render"]).0, 0);

    // A file where the tree should go.
    std::fs::write(project.path().join("flat"), "not a directory").unwrap();
    let (code, _, err) = project.run(&["render", "-f", model, "--out", "flat"]);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("not a directory"), "{err}");
}

#[test]
fn render_into_the_current_directory_works_and_leaves_no_temporary_tree() {
    let project = Project::new();
    let model = project.path().join("stack.toml");
    let model = model.to_str().unwrap();
    let empty = project.path().join("empty");
    std::fs::create_dir(&empty).unwrap();
    for _ in 0..2 {
        let (code, _, err) = tgstack(&["render", "-f", model, "--out", "."], &empty);
        assert_eq!(code, 0, "{err}");
    }
    assert!(empty.join("MANIFEST").exists() && empty.join("docker-compose.yml").exists());
    let hidden: Vec<String> = entries(project.path())
        .into_iter()
        .filter(|e| e.starts_with('.'))
        .collect();
    assert!(hidden.is_empty(), "temporary trees left behind: {hidden:?}");
    // The project directory itself holds the model: refused, and nothing left behind.
    let before = entries(project.path());
    let (code, _, err) = project.run(&["render", "--out", "."]);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("stack.toml"), "{err}");
    assert_eq!(entries(project.path()), before);
}

#[test]
fn a_secret_put_into_generated_by_hand_is_never_printed() {
    let project = Project::new();
    let compose = project.path().join("generated/docker-compose.yml");
    let text = std::fs::read_to_string(&compose).unwrap();
    let needle =
        "\"${TG_DB_READONLY_PASSWORD:?set TG_DB_READONLY_PASSWORD in .env (see .env.example)}\"";
    assert!(text.contains(needle));
    std::fs::write(
        &compose,
        text.replacen(needle, "\"${TG_DB_READONLY_PASSWORD:-Lk7zircon}\"", 1),
    )
    .unwrap();
    let redis = project.path().join("generated/redis-master/redis.conf");
    let text = std::fs::read_to_string(&redis).unwrap();
    std::fs::write(
        &redis,
        format!("{text}requirepass Lk7onyx\nmasterauth Lk7onyx\n"),
    )
    .unwrap();
    for args in [
        vec!["render", "--check"],
        vec!["validate"],
        vec!["validate", "--format", "json"],
        vec!["validate", "--format", "sarif"],
    ] {
        let (code, out, err) = project.run(&args);
        assert_eq!(code, 1, "{}", args.join(" "));
        for token in ["Lk7zircon", "Lk7onyx"] {
            assert!(
                !out.contains(token) && !err.contains(token),
                "`{}` printed {token}:\n{out}{err}",
                args.join(" ")
            );
        }
    }
}

#[test]
fn a_file_that_cannot_be_rendered_is_reported_at_its_service_in_the_model() {
    let project = Project::new();
    // Templates of the operator's own (--templates) with one that cannot render.
    let templates = project.path().join("my-templates");
    let copy = |from: &Path, to: &Path| {
        fn walk(from: &Path, to: &Path) {
            std::fs::create_dir_all(to).unwrap();
            for entry in std::fs::read_dir(from).unwrap() {
                let path = entry.unwrap().path();
                let target = to.join(path.file_name().unwrap());
                if path.is_dir() {
                    walk(&path, &target);
                } else {
                    std::fs::copy(&path, &target).unwrap();
                }
            }
        }
        walk(from, to);
    };
    copy(&root().join("templates"), &templates);
    let ini = templates.join("pgbouncer/pgbouncer.ini.j2");
    let text = std::fs::read_to_string(&ini).unwrap();
    std::fs::write(
        &ini,
        format!("{text}\n{{{{ no_such_filter | no_such_filter }}}}\n"),
    )
    .unwrap();
    let (code, out, err) = project.run(&["render", "--templates", "my-templates", "--out", "mine"]);
    let all = format!("{out}{err}");
    assert_eq!(code, 1, "{all}");
    assert!(
        all.contains("[TG010]") && all.contains("pgbouncer/pgbouncer.ini"),
        "{all}"
    );
    assert!(
        all.contains("--> stack.toml:") && all.contains("key: services.pgbouncer"),
        "{all}"
    );
    assert!(
        !project.path().join("mine").exists(),
        "a failed render wrote files"
    );
}

/// `tgstack ... | head` closes the pipe early: tgstack ends as SIGPIPE would, never with
/// a panic.
#[test]
fn a_reader_that_goes_away_ends_the_output_quietly() {
    let project = Project::new();
    // An empty tree: the diff of every file is far more than a pipe holds.
    std::fs::create_dir(project.path().join("empty")).unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_tgstack"))
        .args(["render", "--check", "--out", "empty"])
        .current_dir(project.path())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("run tgstack");
    drop(child.stdout.take());
    let output = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert_eq!(output.status.code(), Some(141), "{stderr}");
}

#[test]
fn overlay_shifts_ports_without_copying_the_model() {
    let project = Project::new();
    project.write(
        "test.toml",
        "[services.pgbouncer]\nport = 16432\npublish = 16434\n",
    );
    let out_dir = project.path().join("out");
    let (code, _, err) = project.run(&[
        "render",
        "-f",
        "stack.toml",
        "-f",
        "test.toml",
        "--out",
        out_dir.to_str().unwrap(),
    ]);
    assert_eq!(code, 0, "{err}");
    let ini = std::fs::read_to_string(out_dir.join("pgbouncer/pgbouncer.ini")).unwrap();
    assert!(ini.contains("listen_port = 16432"), "{ini}");
    let compose = std::fs::read_to_string(out_dir.join("docker-compose.yml")).unwrap();
    assert!(
        compose.contains("\"127.0.0.1:16434:16432\""),
        "published port not shifted"
    );
}

#[test]
fn with_secrets_writes_private_files_outside_the_tree_and_names_missing_variables() {
    use std::os::unix::fs::PermissionsExt;
    let project = Project::new();
    let secrets = project.path().join("deploy-secrets");
    project.write(
        "deploy.toml",
        &format!("[deploy]\nsecrets_dir = \"{}\"\n", secrets.display()),
    );
    let out_dir = project.path().join("deploy-out");
    let args = [
        "render",
        "-f",
        "stack.toml",
        "-f",
        "deploy.toml",
        "--out",
        out_dir.to_str().unwrap(),
        "--with-secrets",
    ];
    // Missing variables: every one is named, nothing is written.
    let output = Command::new(env!("CARGO_BIN_EXE_tgstack"))
        .args(args)
        .current_dir(project.path())
        .env_clear()
        .output()
        .unwrap();
    // Findings are on stdout, like validate's.
    let err = String::from_utf8_lossy(&output.stdout);
    assert_eq!(output.status.code(), Some(1), "{err}");
    assert!(
        err.contains("TG_DB_APP_PASSWORD")
            && err.contains("TG_REDIS_PASSWORD")
            && err.contains("[TG011]"),
        "{err}"
    );
    assert!(
        !secrets.exists() && !out_dir.exists(),
        "something was written although secrets were missing"
    );

    let model = tgstack::model::load_files(&[root().join("stack.toml")]).unwrap();
    let envs: Vec<(String, String)> = model
        .stack
        .secrets
        .iter()
        .map(|(id, s)| (s.env.clone(), format!("value-of-{id}")))
        .collect();
    let output = Command::new(env!("CARGO_BIN_EXE_tgstack"))
        .args(args)
        .current_dir(project.path())
        .env_clear()
        .envs(envs.clone())
        .output()
        .unwrap();
    assert_eq!(
        output.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&secrets), 0o700);
    let userlist = secrets.join("pgbouncer-userlist.txt");
    assert_eq!(mode(&userlist), 0o600);
    assert!(
        std::fs::read_to_string(&userlist)
            .unwrap()
            .contains("\"tg_app\" \"value-of-db_app\"")
    );
    // No secret value anywhere in the rendered tree or in the committed generated/.
    for dir in [out_dir.as_path(), &project.path().join("generated")] {
        let tree = tgstack::tree::read_tree(dir).unwrap();
        for (path, bytes) in tree {
            let text = String::from_utf8_lossy(&bytes);
            for (_, value) in &envs {
                assert!(
                    !text.contains(value.as_str()),
                    "{value} leaked into {}/{path}",
                    dir.display()
                );
            }
        }
    }
    // Secrets never go into the rendered tree itself.
    project.write(
        "inside.toml",
        &format!(
            "[deploy]\nsecrets_dir = \"{}/secrets\"\n",
            out_dir.display()
        ),
    );
    let output = Command::new(env!("CARGO_BIN_EXE_tgstack"))
        .args([
            "render",
            "-f",
            "stack.toml",
            "-f",
            "inside.toml",
            "--out",
            out_dir.to_str().unwrap(),
            "--with-secrets",
        ])
        .current_dir(project.path())
        .env_clear()
        .envs(envs)
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(1));
}

#[test]
fn output_is_deterministic() {
    let project = Project::new();
    let first = project.snapshot();
    assert_eq!(project.run(&["render"]).0, 0);
    assert!(project.snapshot() == first, "a second render changed bytes");
}

#[test]
fn committed_schema_is_current_and_describes_the_model() {
    let committed = std::fs::read_to_string(root().join("schemas/stack.schema.json"))
        .expect("schemas/stack.schema.json is committed");
    let (code, printed, _) = tgstack(&["schema"], &root());
    assert_eq!(code, 0);
    assert!(
        committed == printed,
        "schemas/stack.schema.json is stale: run `tgstack schema > schemas/stack.schema.json`"
    );
    // The reference model is valid under its own schema.
    let schema: serde_json::Value = serde_json::from_str(&committed).unwrap();
    let validator = jsonschema::validator_for(&schema).expect("schema compiles");
    let model: toml::Value =
        toml::from_str(&std::fs::read_to_string(root().join("stack.toml")).unwrap()).unwrap();
    let instance = serde_json::to_value(&model).unwrap();
    let errors: Vec<String> = validator
        .iter_errors(&instance)
        .map(|e| format!("{e} at {}", e.instance_path()))
        .collect();
    assert!(errors.is_empty(), "{}", errors.join("\n"));
    let mut broken = instance.clone();
    broken["services"]["pgbouncer"]["colour"] = serde_json::json!("blue");
    assert!(
        !validator.is_valid(&broken),
        "the schema must reject unknown keys"
    );
    // A typo inside an optional settings table: one error, at that table, naming the key
    // (no "not valid under any of the schemas" from an `anyOf` with null).
    let mut typo = instance.clone();
    typo["services"]["pgbouncer"]["pgbouncer"]["pool_mod"] = serde_json::json!("session");
    let errors: Vec<(String, String)> = validator
        .iter_errors(&typo)
        .map(|e| (e.instance_path().to_string(), e.to_string()))
        .collect();
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert_eq!(errors[0].0, "/services/pgbouncer/pgbouncer", "{errors:?}");
    assert!(errors[0].1.contains("pool_mod"), "{errors:?}");
    assert!(!committed.contains("\"null\""), "TOML has no null");
}

#[test]
fn docs_model_md_is_current_and_names_every_key_of_the_reference() {
    let committed =
        std::fs::read_to_string(root().join("docs/model.md")).expect("docs/model.md is committed");
    let (code, printed, _) = tgstack(&["schema", "--markdown"], &root());
    assert_eq!(code, 0);
    assert!(
        committed == printed,
        "docs/model.md is stale: run `tgstack schema --markdown > docs/model.md`"
    );
    // Every key the reference model writes has its row.
    fn keys(value: &toml::Value, out: &mut BTreeSet<String>) {
        match value {
            toml::Value::Table(table) => {
                for (key, value) in table {
                    out.insert(key.clone());
                    keys(value, out);
                }
            }
            toml::Value::Array(items) => items.iter().for_each(|v| keys(v, out)),
            _ => {}
        }
    }
    let model: toml::Value =
        toml::from_str(&std::fs::read_to_string(root().join("stack.toml")).unwrap()).unwrap();
    let mut names = BTreeSet::new();
    keys(&model["services"], &mut names);
    keys(&model["host"], &mut names);
    keys(&model["alerts"], &mut names);
    // Names the operator chooses (services, roles, users) are not keys of the schema.
    for name in &names {
        let service_name = model["services"].get(name.as_str()).is_some();
        let role_or_user = model["services"].as_table().unwrap().values().any(|s| {
            ["postgres", "rabbitmq"].iter().any(|k| {
                s.get(*k)
                    .and_then(|t| t.get("roles").or_else(|| t.get("users")))
                    .and_then(|m| m.get(name.as_str()))
                    .is_some()
            })
        });
        if service_name || role_or_user {
            continue;
        }
        // A row of its own, or the one key of a reference written in the type column.
        assert!(
            committed.contains(&format!("| `{name}` |"))
                || committed.contains(&format!("`{{ {name} = ")),
            "docs/model.md has no row for `{name}`"
        );
    }
}

#[test]
fn missing_model_file_is_an_io_error_with_exit_2() {
    let dir = tempfile::tempdir().unwrap();
    let (code, out, err) = tgstack(&["validate", "-f", "nope.toml"], dir.path());
    assert_eq!(code, 2);
    assert!(
        format!("{out}{err}").contains("cannot read nope.toml"),
        "{out}{err}"
    );
}

#[test]
fn docs_rules_md_is_current_and_rules_are_explained() {
    let committed =
        std::fs::read_to_string(root().join("docs/rules.md")).expect("docs/rules.md is committed");
    let (code, printed, _) = tgstack(&["rules", "--markdown"], &root());
    assert_eq!(code, 0);
    assert!(
        committed == printed,
        "docs/rules.md is stale: run `tgstack rules --markdown > docs/rules.md`"
    );
    let (code, json, _) = tgstack(&["rules", "--json"], &root());
    assert_eq!(code, 0);
    let rules: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(rules["version"], 1);
    assert!(
        rules["rules"]
            .as_array()
            .unwrap()
            .iter()
            .any(|r| r["id"] == "TG203")
    );
    let (code, out, _) = tgstack(&["explain", "tg203"], &root());
    assert_eq!(code, 0);
    assert!(
        out.contains("duplicate-host-port") && out.contains("Bad:") && out.contains("Good:"),
        "{out}"
    );
    let (code, _, err) = tgstack(&["explain", "TG2O3"], &root());
    assert_eq!(code, 2);
    assert!(err.contains("did you mean `TG203`?"), "{err}");
    // By name too, and a near-miss name gets the name suggested.
    let (code, by_name, _) = tgstack(&["explain", "duplicate-host-port"], &root());
    assert_eq!((code, by_name), (0, out));
    let (code, _, err) = tgstack(&["explain", "duplicate-host-ports"], &root());
    assert_eq!(code, 2);
    assert!(err.contains("did you mean `duplicate-host-port`?"), "{err}");
    let (code, _, _) = tgstack(&["explain", "aé.."], &root());
    assert_eq!(code, 2, "no panic on a non-ASCII name");
}

/// A compiled schema of `schemas/NAME`.
fn output_schema(name: &str) -> (serde_json::Value, jsonschema::Validator) {
    let text = std::fs::read_to_string(root().join("schemas").join(name)).unwrap();
    let schema: serde_json::Value = serde_json::from_str(&text).unwrap();
    let validator = jsonschema::validator_for(&schema).expect("schema compiles");
    (schema, validator)
}

fn assert_valid(validator: &jsonschema::Validator, output: &str, what: &str) {
    let instance: serde_json::Value =
        serde_json::from_str(output).unwrap_or_else(|e| panic!("{what}: {e}\n{output}"));
    let errors: Vec<String> = validator
        .iter_errors(&instance)
        .map(|e| format!("{e} at {}", e.instance_path()))
        .collect();
    assert!(
        errors.is_empty(),
        "{what}:\n{}\n{output}",
        errors.join("\n")
    );
}

/// Every property name a schema declares.
fn property_names(schema: &serde_json::Value, names: &mut BTreeSet<String>) {
    match schema {
        serde_json::Value::Object(map) => {
            if let Some(serde_json::Value::Object(properties)) = map.get("properties") {
                names.extend(properties.keys().cloned());
            }
            map.values().for_each(|v| property_names(v, names));
        }
        serde_json::Value::Array(items) => items.iter().for_each(|v| property_names(v, names)),
        _ => {}
    }
}

#[test]
fn json_outputs_follow_their_documented_schemas() {
    let (findings_schema, findings) = output_schema("validate-output.schema.json");
    let (rules_schema, rules) = output_schema("rules-output.schema.json");
    let project = Project::new();
    project.write("broken.toml", "[services.redis-replica]\npublish = 6379\n");
    // A rendered file edited by hand: findings with an artifact as well.
    let ini = project.path().join("generated/pgbouncer/pgbouncer.ini");
    let edited = std::fs::read_to_string(&ini).unwrap() + "bogus_setting = 1\n";
    std::fs::write(&ini, edited).unwrap();
    let runs: [&[&str]; 3] = [
        &[
            "validate",
            "-f",
            "stack.toml",
            "-f",
            "broken.toml",
            "--format",
            "json",
        ],
        &["validate", "--format", "json"],
        &["validate", "-f", "missing.toml", "--format", "json"],
    ];
    let mut placed = (false, false);
    for args in runs {
        let (code, out, err) = project.run(args);
        assert!(code == 1 || code == 2, "{args:?}: {code}\n{err}");
        assert_valid(&findings, &out, &format!("{args:?}"));
        let doc: serde_json::Value = serde_json::from_str(&out).unwrap();
        for finding in doc["findings"].as_array().unwrap() {
            placed.0 |= finding.get("location").is_some();
            placed.1 |= finding.get("artifact").is_some();
        }
    }
    assert_eq!(placed, (true, true), "the runs cover both kinds of place");
    let (code, out, _) = project.run(&["rules", "--json"]);
    assert_eq!(code, 0);
    assert_valid(&rules, &out, "rules --json");
    // The document names every field the schemas declare.
    let doc = std::fs::read_to_string(root().join("docs/validate-json.md")).unwrap();
    let mut names = BTreeSet::new();
    property_names(&findings_schema, &mut names);
    property_names(&rules_schema, &mut names);
    for name in names {
        assert!(
            doc.contains(&format!("`{name}`"))
                || doc.contains(&format!(".{name}`"))
                || doc.contains(&format!("`{name}[]")),
            "docs/validate-json.md does not describe `{name}`"
        );
    }
}

/// A project whose overlay publishes the Redis replica on the master's port (TG203 at
/// broken.toml:2), validated in `format`: (project, exit code, stdout).
fn validate_port_clash(format: &str) -> (Project, i32, String) {
    let project = Project::new();
    project.write("broken.toml", "[services.redis-replica]\npublish = 6379\n");
    let (code, out, _) = project.run(&[
        "validate",
        "-f",
        "stack.toml",
        "-f",
        "broken.toml",
        "--format",
        format,
    ]);
    (project, code, out)
}

#[test]
fn validate_speaks_github_workflow_commands() {
    let (_project, code, out) = validate_port_clash("github");
    assert_eq!(code, 1);
    let line = out
        .lines()
        .find(|l| l.contains("TG203"))
        .unwrap_or_else(|| panic!("no TG203 command:\n{out}"));
    assert!(
        line.starts_with("::error file=broken.toml,line=2,col="),
        "{line}"
    );
    assert!(
        line.contains(",title=TG203 duplicate-host-port::"),
        "{line}"
    );
    // One line per finding: the help's line break is escaped.
    assert!(line.contains("%0Ahelp: "), "{line}");
    assert_eq!(
        out.lines().count(),
        out.matches("::error ").count() + out.matches("::warning ").count()
    );
}

#[test]
fn the_model_is_found_upwards_named_by_the_environment_or_read_from_stdin() {
    let project = Project::new();
    let nested = project.path().join("deploy/nested");
    std::fs::create_dir_all(&nested).unwrap();
    // The nearest stack.toml above, with generated/ next to it.
    let (code, _, err) = tgstack(&["validate"], &nested);
    assert_eq!(code, 0, "{err}");
    assert!(err.contains("no findings"), "{err}");
    let (code, out, err) = tgstack(&["-q", "validate"], &nested);
    assert_eq!(
        (code, out.as_str(), err.as_str()),
        (0, "", ""),
        "-q prints nothing when clean"
    );
    // Nowhere to find one: exit 2, saying where it looked and what to do.
    let empty = tempfile::tempdir().unwrap();
    let (code, _, err) = tgstack(&["validate"], empty.path());
    assert_eq!(code, 2);
    assert!(
        err.contains("no stack.toml in") && err.contains("TGSTACK_MODEL"),
        "{err}"
    );
    let run = |env: Option<&str>, args: &[&str], stdin: &str| {
        let mut command = Command::new(env!("CARGO_BIN_EXE_tgstack"));
        command
            .args(args)
            .current_dir(empty.path())
            .env_remove("TGSTACK_MODEL")
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped());
        if let Some(value) = env {
            command.env("TGSTACK_MODEL", value);
        }
        let mut child = command.spawn().unwrap();
        use std::io::Write as _;
        child
            .stdin
            .take()
            .unwrap()
            .write_all(stdin.as_bytes())
            .unwrap();
        let output = child.wait_with_output().unwrap();
        let text = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
        (
            output.status.code().unwrap_or(-1),
            text(&output.stdout) + &text(&output.stderr),
        )
    };
    // TGSTACK_MODEL: files separated by commas, as tg-gateway reads it.
    let overlay = project.write("broken.toml", "[services.redis-replica]\npublish = 6379\n");
    let model = format!(
        "{},{}",
        project.path().join("stack.toml").display(),
        overlay.display()
    );
    let generated = project.path().join("generated");
    let generated = generated.to_str().unwrap();
    let (code, out) = run(Some(&model), &["validate", "--generated", generated], "");
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains("TG203") && out.contains("broken.toml:2"),
        "{out}"
    );
    // `-f -`: the model from standard input, named <stdin> in findings.
    let reference = std::fs::read_to_string(project.path().join("stack.toml")).unwrap();
    let (code, out) = run(
        None,
        &["validate", "-f", "-", "--generated", generated],
        &reference,
    );
    assert_eq!(code, 0, "{out}");
    let (code, out) = run(None, &["validate", "-f", "-"], "name = 5\n");
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("<stdin>:1:8"), "{out}");
    let (code, out) = run(None, &["validate", "-f", "-", "-f", "-"], "name = \"x\"\n");
    assert_eq!(code, 2, "{out}");
    assert!(out.contains("more than once"), "{out}");
}

#[test]
fn plan_shows_files_and_deploy_steps_and_render_touches_only_changed_files() {
    use std::os::unix::fs::MetadataExt as _;
    let project = Project::new();
    let (code, out, _) = project.run(&["plan", "--detailed-exitcode"]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains(": no changes ("), "{out}");
    let file = |p: &str| project.path().join("generated").join(p);
    let inode = |p: &str| std::fs::metadata(file(p)).unwrap().ino();
    let (ini, replica) = ("pgbouncer/pgbouncer.ini", "redis-replica/redis.conf");
    let before = (inode(ini), inode(replica));
    project.write(
        "change.toml",
        "[services.pgbouncer.pgbouncer]\ndefault_pool_size = 25\n\n\
         [services.redis-master.redis]\nmaxmemory = \"700MiB\"\n\n\
         [services.timescaledb]\npublish = 5435\n",
    );
    let on_disk = project.snapshot();
    let model = ["-f", "stack.toml", "-f", "change.toml"];
    let (code, out, err) =
        project.run(&[&["plan"][..], &model, &["--detailed-exitcode", "--diff"]].concat());
    assert_eq!(code, 2, "{out}{err}");
    assert_eq!(project.snapshot(), on_disk, "plan wrote something");
    for expected in [
        "to change",
        "~ pgbouncer/pgbouncer.ini",
        "~ docker-compose.yml",
        "-default_pool_size = 20",
        "+default_pool_size = 25",
    ] {
        assert!(out.contains(expected), "no `{expected}` in:\n{out}");
    }
    let step = |service: &str| {
        out.lines()
            .find(|l| l.trim_start().starts_with(&format!("{service} ")))
            .map(|l| l.split_whitespace().nth(1).unwrap_or_default().to_string())
    };
    assert_eq!(step("pgbouncer").as_deref(), Some("reload"), "{out}");
    assert_eq!(step("redis-master").as_deref(), Some("restart"), "{out}");
    assert_eq!(step("timescaledb").as_deref(), Some("recreate"), "{out}");
    assert_eq!(step("redis-replica"), None, "{out}");
    // Render rewrites what changed only: other files keep their inode (and mtime).
    let (code, _, err) = project.run(&[&["render"][..], &model, &["--out", "generated"]].concat());
    assert_eq!(code, 0, "{err}");
    assert!(err.contains("changed") && err.contains("reload"), "{err}");
    assert_ne!(inode(ini), before.0, "a changed file is new");
    assert_eq!(inode(replica), before.1, "an unchanged file was rewritten");
    let after = inode(ini);
    let (code, _, err) = project.run(&[&["render"][..], &model, &["--out", "generated"]].concat());
    assert_eq!(code, 0, "{err}");
    assert!(err.contains("nothing written"), "{err}");
    assert_eq!(inode(ini), after);
    // Errors are 1 with --detailed-exitcode (2 means changes).
    project.write("broken.toml", "[services.pgbouncer]\nport = 0\n");
    let (code, _, _) = project.run(&[
        "plan",
        "-f",
        "stack.toml",
        "-f",
        "broken.toml",
        "--detailed-exitcode",
    ]);
    assert_eq!(code, 1);
}

#[test]
fn diff_compares_two_environments() {
    let prod = ["-f", "stack.toml", "-f", "examples/prod.toml"];
    let dev = ["--against", "stack.toml", "--against", "examples/dev.toml"];
    let (code, out, err) = tgstack(&[&["diff"][..], &prod, &dev].concat(), &root());
    assert_eq!(code, 1, "{err}");
    for expected in [
        "stack.toml + examples/dev.toml -> stack.toml + examples/prod.toml",
        "~ prometheus/rules/warning.yml",
        "+      - alert: \"LowReadCacheHitRate\"",
        "prometheus ",
    ] {
        assert!(out.contains(expected), "no `{expected}` in:\n{out}");
    }
    let (code, out, _) = tgstack(
        &[
            "diff",
            "-f",
            "stack.toml",
            "--against",
            "stack.toml",
            "--stat",
        ],
        &root(),
    );
    assert_eq!(code, 0);
    assert!(out.contains("render the same"), "{out}");
    let (code, _, _) = tgstack(&["diff", "--against", "missing.toml"], &root());
    assert_eq!(code, 2);
}

#[test]
fn findings_are_coloured_only_when_asked_or_on_a_terminal() {
    let project = Project::new();
    project.write("broken.toml", "[services.redis-replica]\npublish = 6379\n");
    let model = ["validate", "-f", "stack.toml", "-f", "broken.toml"];
    // Piped (as here): plain, the same as --color never.
    let (code, plain, _) = project.run(&model);
    assert_eq!(code, 1);
    assert!(
        plain.contains("error[TG203]") && !plain.contains('\u{1b}'),
        "{plain}"
    );
    let (_, never, _) = project.run(&[&model[..], &["--color", "never"]].concat());
    assert_eq!(never, plain);
    let (code, always, _) = project.run(&[&model[..], &["--color", "always"]].concat());
    assert_eq!(code, 1);
    assert!(always.contains("\u{1b}["), "no ANSI colour: {always}");
    // The same information, coloured: strip the escapes and it reads the same.
    let mut stripped = String::new();
    let mut chars = always.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            for c in chars.by_ref() {
                if c == 'm' {
                    break;
                }
            }
        } else {
            stripped.push(c);
        }
    }
    assert_eq!(stripped, plain);
    // The rendered file, the key and the fix stay in the plain report.
    assert!(
        plain.contains("--> broken.toml:2:11")
            && plain.contains("key: services.redis-replica.publish")
            && plain.contains("help:"),
        "{plain}"
    );
}

/// taplo from the test environment's venv (PyPI).
fn taplo(args: &[&str], cwd: &Path) -> (bool, String) {
    let output = Command::new("/opt/tgstack-tools/bin/taplo")
        .args(args)
        .current_dir(cwd)
        .env("RUST_LOG", "error")
        .output()
        .expect("taplo is installed (run: bash scripts/test-env.sh)");
    let text = String::from_utf8_lossy(&output.stdout).into_owned()
        + &String::from_utf8_lossy(&output.stderr);
    (output.status.success(), text)
}

#[test]
fn models_pass_taplo_fmt_and_lint_and_a_typo_is_named_at_its_table() {
    let (ok, out) = taplo(
        &[
            "fmt",
            "--check",
            "stack.toml",
            "examples/dev.toml",
            "examples/prod.toml",
        ],
        &root(),
    );
    assert!(ok, "run `taplo fmt` on them:\n{out}");
    // Lint reads `#:schema ./schemas/stack.schema.json` at the top of stack.toml.
    let (ok, out) = taplo(&["lint", "stack.toml"], &root());
    assert!(ok, "{out}");
    let project = Project::new();
    std::fs::create_dir_all(project.path().join("schemas")).unwrap();
    std::fs::copy(
        root().join("schemas/stack.schema.json"),
        project.path().join("schemas/stack.schema.json"),
    )
    .unwrap();
    let text = std::fs::read_to_string(project.path().join("stack.toml")).unwrap();
    assert!(text.starts_with("#:schema ./schemas/stack.schema.json"));
    let typo = text.replacen("pool_mode = ", "pool_mod = ", 1);
    std::fs::write(project.path().join("stack.toml"), typo).unwrap();
    let (ok, out) = taplo(&["lint", "stack.toml"], project.path());
    assert!(!ok, "taplo lint accepted a typo");
    assert!(out.contains("'pool_mod' was unexpected"), "{out}");
    assert!(!out.contains("not valid under any of the"), "{out}");
}

#[test]
fn shell_completions_and_the_manual_page() {
    let dir = tempfile::tempdir().unwrap();
    let (code, bash, _) = tgstack(&["completions", "bash"], dir.path());
    assert_eq!(code, 0);
    assert!(
        bash.contains("validate") && bash.contains("--format"),
        "{bash}"
    );
    let script = dir.path().join("tgstack.bash");
    std::fs::write(&script, &bash).unwrap();
    let syntax = Command::new("bash")
        .arg("-n")
        .arg(&script)
        .output()
        .unwrap();
    assert!(
        syntax.status.success(),
        "{}",
        String::from_utf8_lossy(&syntax.stderr)
    );
    let (code, zsh, _) = tgstack(&["completions", "zsh"], dir.path());
    assert_eq!(code, 0);
    assert!(zsh.starts_with("#compdef tgstack"), "{zsh}");
    let (code, fish, _) = tgstack(&["completions", "fish"], dir.path());
    assert_eq!(code, 0);
    assert!(fish.contains("complete -c tgstack"), "{fish}");
    let (code, _, err) = tgstack(&["completions", "tcsh"], dir.path());
    assert_eq!(code, 2, "{err}");

    let (code, page, _) = tgstack(&["man"], dir.path());
    assert_eq!(code, 0);
    let file = dir.path().join("tgstack.1");
    std::fs::write(&file, &page).unwrap();
    // man renders it (groff from Debian's man-db).
    let shown = Command::new("man")
        .arg("-l")
        .arg(&file)
        .env("MANPAGER", "cat")
        .env("MANWIDTH", "100")
        .output()
        .expect("man is installed (man-db)");
    let text = String::from_utf8_lossy(&shown.stdout);
    assert!(
        shown.status.success(),
        "{}",
        String::from_utf8_lossy(&shown.stderr)
    );
    assert!(
        text.contains("SUBCOMMANDS") && text.contains("validate") && text.contains("completions"),
        "{text}"
    );
}

/// Installed by scripts/test-env.sh from the npm package @microsoft/jest-sarif, which ships
/// the OASIS SARIF 2.1.0 schema (rtm.5).
const SARIF_SCHEMA: &str = "/opt/tgstack-tools/sarif/sarif-2.1.0-rtm.5.json";

/// Replaces every `language` pattern of the SARIF schema that has the stray `]` with its
/// escaped equivalent; returns how many it replaced.
fn escape_stray_bracket(schema: &mut serde_json::Value) -> usize {
    const STRAY: &str = "^[a-zA-Z]{2}|^[a-zA-Z]{2}-[a-zA-Z]{2}]?$";
    match schema {
        serde_json::Value::String(text) if text == STRAY => {
            *text = "^[a-zA-Z]{2}|^[a-zA-Z]{2}-[a-zA-Z]{2}\\]?$".into();
            1
        }
        serde_json::Value::Array(items) => items.iter_mut().map(escape_stray_bracket).sum(),
        serde_json::Value::Object(map) => map.values_mut().map(escape_stray_bracket).sum(),
        _ => 0,
    }
}

/// Every shape of SARIF output (results with regions and logical locations, a rendered
/// file's line, warnings, an I/O error as a tool notification, a clean run) is valid SARIF
/// 2.1.0 by the OASIS schema.
#[test]
fn sarif_output_is_valid_by_the_sarif_2_1_0_schema() {
    let text = std::fs::read_to_string(SARIF_SCHEMA).unwrap_or_else(|e| {
        panic!("{SARIF_SCHEMA}: {e}: run `bash scripts/test-env.sh`, which installs it")
    });
    let mut schema: serde_json::Value = serde_json::from_str(&text).unwrap();
    // The `language` patterns (of run and toolComponent) have a stray `]`, a literal in
    // ECMA-262 (Annex B) that the Rust regex engine refuses: escaped, same meaning.
    let escaped = escape_stray_bracket(&mut schema);
    assert_eq!(escaped, 2, "the SARIF schema's language patterns changed");
    let validator = jsonschema::validator_for(&schema).expect("the SARIF schema compiles");
    let (project, code, out) = validate_port_clash("sarif");
    assert_eq!(code, 1, "{out}");
    assert_valid(&validator, &out, "a model finding");
    // A hand edit in a rendered file: a result located in generated/.
    let ini = project.path().join("generated/pgbouncer/pgbouncer.ini");
    let edited = std::fs::read_to_string(&ini)
        .unwrap()
        .replace("pool_mode = transaction", "pool_mode = session");
    std::fs::write(&ini, edited).unwrap();
    let cases: [(&[&str], i32, &str); 4] = [
        (
            &["validate", "--format", "sarif"],
            1,
            "a rendered file's finding",
        ),
        (
            &["validate", "-f", "missing.toml", "--format", "sarif"],
            2,
            "an I/O error",
        ),
        (
            &["validate", "-f", "syntax.toml", "--format", "sarif"],
            1,
            "a TOML syntax error",
        ),
        (
            &[
                "validate",
                "-f",
                "stack.toml",
                "-f",
                "warn.toml",
                "--format",
                "sarif",
            ],
            1,
            "warnings",
        ),
    ];
    project.write("syntax.toml", "name = [\n");
    project.write(
        "warn.toml",
        "[services.redis-master]\nimage = \"redis:latest\"\n",
    );
    for (args, expected, what) in cases {
        let (code, out, err) = project.run(args);
        assert_eq!(code, expected, "{what}: {out}{err}");
        assert_valid(&validator, &out, what);
    }
    let clean = Project::new();
    let (code, out, _) = clean.run(&["validate", "--format", "sarif"]);
    assert_eq!(code, 0, "{out}");
    assert_valid(&validator, &out, "a clean run");
    let doc: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(doc["runs"][0]["results"].as_array().map(Vec::len), Some(0));
    // The schema is strict enough to catch a broken log (so this test can fail).
    let mut broken = doc.clone();
    broken["runs"][0]["results"] = serde_json::json!([{ "ruleId": "TG203", "level": "fatal" }]);
    assert!(
        !validator.is_valid(&broken),
        "the schema accepted an invalid level"
    );
}

#[test]
fn validate_speaks_json_and_sarif() {
    let (project, code, out) = validate_port_clash("json");
    assert_eq!(code, 1);
    let doc: serde_json::Value = serde_json::from_str(&out).expect("JSON output");
    assert_eq!(doc["version"], 1);
    let finding = &doc["findings"][0];
    assert_eq!(finding["rule"], "TG203");
    assert_eq!(finding["location"]["line"], 2);
    let (code, out, _) = project.run(&[
        "validate",
        "-f",
        "stack.toml",
        "-f",
        "broken.toml",
        "--format",
        "sarif",
    ]);
    assert_eq!(code, 1);
    let sarif: serde_json::Value = serde_json::from_str(&out).expect("SARIF output");
    assert_eq!(sarif["version"], "2.1.0");
    let result = &sarif["runs"][0]["results"][0];
    assert_eq!(result["ruleId"], "TG203");
    assert_eq!(
        result["locations"][0]["physicalLocation"]["region"]["startLine"],
        2
    );
    assert!(
        sarif["runs"][0]["tool"]["driver"]["rules"]
            .as_array()
            .unwrap()
            .len()
            > 40
    );
    // For code hosts: URIs relative to SRCROOT (here the project directory, which holds
    // the model), a help link per rule, a fingerprint that survives a re-run and a move.
    let run = &sarif["runs"][0];
    let location = &result["locations"][0]["physicalLocation"]["artifactLocation"];
    assert_eq!(location["uri"], "broken.toml");
    assert_eq!(location["uriBaseId"], "SRCROOT");
    let root_uri = run["originalUriBaseIds"]["SRCROOT"]["uri"]
        .as_str()
        .unwrap();
    assert!(
        root_uri.starts_with("file:///") && root_uri.ends_with('/'),
        "{root_uri}"
    );
    assert!(
        run["tool"]["driver"]["rules"][0]["helpUri"]
            .as_str()
            .unwrap()
            .ends_with("docs/rules.md#tg000")
    );
    let fingerprint = result["partialFingerprints"]["tgstackFinding/v1"].clone();
    assert!(fingerprint.is_string());
    // From a subdirectory, with the model named by a relative path: the same URIs and
    // fingerprint.
    let sub = project.path().join("sub");
    std::fs::create_dir_all(&sub).unwrap();
    let (_, again, _) = tgstack(
        &[
            "validate",
            "-f",
            "../stack.toml",
            "-f",
            "../broken.toml",
            "--generated",
            "../generated",
            "--format",
            "sarif",
        ],
        &sub,
    );
    let again: serde_json::Value = serde_json::from_str(&again).unwrap();
    let again_result = &again["runs"][0]["results"][0];
    assert_eq!(
        again_result["locations"][0]["physicalLocation"]["artifactLocation"]["uri"],
        "broken.toml"
    );
    assert_eq!(
        again_result["partialFingerprints"]["tgstackFinding/v1"],
        fingerprint
    );
    // An I/O error is a tool notification, not a result without a place.
    let (code, out, _) = project.run(&["validate", "-f", "missing.toml", "--format", "sarif"]);
    assert_eq!(code, 2);
    let io: serde_json::Value = serde_json::from_str(&out).unwrap();
    let invocation = &io["runs"][0]["invocations"][0];
    assert_eq!(invocation["executionSuccessful"], false);
    assert_eq!(
        invocation["toolExecutionNotifications"][0]["descriptor"]["id"],
        "TG000"
    );
    assert_eq!(io["runs"][0]["results"].as_array().unwrap().len(), 0);
    // Warnings alone pass, unless --deny-warnings.
    project.write(
        "warn.toml",
        "[services.redis-master]\nimage = \"redis:latest\"\n",
    );
    assert_eq!(
        project
            .run(&[
                "render",
                "-f",
                "stack.toml",
                "-f",
                "warn.toml",
                "--out",
                "warn-out"
            ])
            .0,
        0
    );
    let (code, out, _) = project.run(&[
        "validate",
        "-f",
        "stack.toml",
        "-f",
        "warn.toml",
        "--generated",
        "warn-out",
    ]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("warning[TG608]"), "{out}");
    let (code, _, _) = project.run(&[
        "validate",
        "-f",
        "stack.toml",
        "-f",
        "warn.toml",
        "--generated",
        "warn-out",
        "--deny-warnings",
    ]);
    assert_eq!(code, 1);
}
