//! The native layer: the gateway's systemd unit is accepted by `systemd-analyze verify`
//! (and rated by `systemd-analyze security`), its secrets reach it only through the
//! EnvironmentFile `render --with-secrets` writes, and a service is rendered in exactly
//! one place.

use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Command;

use crate::support::{load, render_tree};
use tgstack::check::check_model;
use tgstack::render::secrets;
use tgstack::tree::Tree;

fn text(tree: &Tree, path: &str) -> String {
    String::from_utf8_lossy(
        tree.get(path)
            .unwrap_or_else(|| panic!("{path} not rendered")),
    )
    .into_owned()
}

/// An executable standing in for the installed tg-gateway (verify checks ExecStart exists).
fn fake_binary(dir: &Path) -> String {
    let path = dir.join("tg-gateway");
    std::fs::write(&path, "#!/bin/sh\nexit 0\n").expect("write fake binary");
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    path.to_str().expect("utf-8 temp path").to_string()
}

fn systemd_analyze(args: &[&str]) -> (bool, String, String) {
    let output = Command::new("systemd-analyze")
        .args(args)
        .output()
        .expect("systemd-analyze runs (run: bash scripts/test-env.sh)");
    (
        output.status.success(),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

#[test]
fn gateway_unit_passes_systemd_analyze_verify() {
    let dir = tempfile::tempdir().expect("temp dir");
    let binary = fake_binary(dir.path());
    let model = load(&format!(
        "[services.tg-gateway.native]\nbinary = \"{binary}\"\n"
    ));
    let tree = render_tree(&model);
    let unit = text(&tree, "systemd/tg-gateway.service");
    assert!(
        unit.contains(&format!("ExecStart={binary} run\n")),
        "{unit}"
    );
    let path = dir.path().join("tg-gateway.service");
    std::fs::write(&path, &unit).expect("write unit");
    let path = path.to_str().expect("utf-8 path");

    // verify prints bad values as warnings and still exits 0: both must be clean.
    let (ok, stdout, stderr) = systemd_analyze(&["verify", path]);
    assert!(
        ok && stderr.trim().is_empty() && stdout.trim().is_empty(),
        "verify: {stdout}{stderr}"
    );

    let (ok, stdout, stderr) = systemd_analyze(&["security", "--offline=yes", path]);
    assert!(ok, "security: {stderr}");
    let level: f64 = stdout
        .lines()
        .find_map(|l| {
            l.split("Overall exposure level for tg-gateway.service: ")
                .nth(1)
        })
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no exposure level in:\n{stdout}"));
    assert!(
        level <= 2.0,
        "exposure level {level} (hardening lost?):\n{stdout}"
    );

    // The same check rejects a unit whose program does not exist.
    let broken = unit.replace(&binary, "/nonexistent/tg-gateway");
    let broken_path = dir.path().join("broken.service");
    std::fs::write(&broken_path, broken).expect("write unit");
    let (ok, _, stderr) = systemd_analyze(&["verify", broken_path.to_str().unwrap()]);
    assert!(!ok && stderr.contains("not executable"), "{stderr}");
}

#[test]
fn unit_takes_budget_user_state_and_secrets_from_the_model() {
    let tree = render_tree(&load(""));
    let unit = text(&tree, "systemd/tg-gateway.service");
    let unit_section = unit.split("[Service]").next().unwrap_or_default();
    for line in ["StartLimitIntervalSec=300", "StartLimitBurst=5"] {
        assert!(unit_section.contains(line), "[Unit] lacks {line}");
    }
    for line in [
        "ExecStart=/usr/local/bin/tg-gateway run",
        "User=tg-gateway",
        "EnvironmentFile=/etc/tgstack/secrets/tg-gateway.env",
        "Environment=TGSTACK_MODEL=/etc/tgstack/model/stack.toml",
        "Environment=TGSTACK_SERVICE=tg-gateway",
        "StateDirectory=tg-gateway",
        "StateDirectoryMode=0700",
        "UMask=0077",
        "MemoryMax=300M",
        "CPUQuota=50%",
        "Restart=on-failure",
        "NoNewPrivileges=yes",
        "ProtectSystem=strict",
        "ProtectHome=yes",
        "PrivateTmp=yes",
    ] {
        assert!(
            unit.lines().any(|l| l == line),
            "unit lacks `{line}`:\n{unit}"
        );
    }
    // No secret or shell expansion inline (incident 29): only the two model variables.
    let inline: Vec<_> = unit
        .lines()
        .filter(|l| l.starts_with("Environment="))
        .collect();
    assert_eq!(inline.len(), 2, "{inline:?}");
    assert!(!unit.contains("${"), "systemd does not expand ${{}}");
    let sysusers = text(&tree, "systemd/tgstack.sysusers.conf");
    assert!(sysusers.contains("u tg-gateway - \"tgstack tg-gateway\" /var/lib/tg-gateway"));

    // The budget follows the model.
    let tree = render_tree(&load(
        "[services.tg-gateway]\ncpus = 1.25\nmemory = \"1GiB\"\n",
    ));
    let unit = text(&tree, "systemd/tg-gateway.service");
    assert!(
        unit.contains("MemoryMax=1G\n") && unit.contains("CPUQuota=125%\n"),
        "{unit}"
    );
}

#[test]
fn with_secrets_writes_the_gateway_env_file() {
    let model = load("");
    let values: BTreeMap<String, String> = model
        .stack
        .secrets
        .keys()
        .map(|id| (id.clone(), format!("v-{id}")))
        .collect();
    let mut values = values;
    values.insert("db_app".into(), "pa\"ss$word\\x".into());
    let files = secrets::files(&model, &values);
    let env = files.get("tg-gateway.env").expect("tg-gateway.env written");
    let expected = "TG_DB_APP_PASSWORD=\"pa\\\"ss\\$word\\\\x\"\n\
TG_RABBITMQ_GATEWAY_PASSWORD=\"v-rabbitmq_gateway\"\n\
TG_REDIS_PASSWORD=\"v-redis\"\n\
TG_TELEGRAM_API_HASH=\"v-telegram_api_hash\"\n";
    assert_eq!(env, expected);

    let dir = tempfile::tempdir().expect("temp dir");
    let secrets_dir = dir.path().join("secrets");
    secrets::write(&secrets_dir, &files).expect("write secrets");
    let mode = std::fs::metadata(secrets_dir.join("tg-gateway.env"))
        .expect("env file exists")
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);

    // Nothing of it reaches the rendered tree.
    let tree = render_tree(&model);
    for (path, bytes) in &tree {
        let body = String::from_utf8_lossy(bytes);
        assert!(
            !body.contains("v-telegram_api_hash"),
            "{path} holds a secret"
        );
    }
}

#[test]
fn a_service_is_rendered_in_exactly_one_place() {
    let native = render_tree(&load(""));
    let compose = text(&native, "docker-compose.yml");
    assert!(native.contains_key("systemd/tg-gateway.service"));
    assert!(
        !compose.contains("tg-gateway:\n"),
        "native gateway also in compose"
    );

    let container = load(
        "[services.tg-gateway]\ndeploy = \"container\"\nimage = \"ghcr.io/tgstack/tg-gateway:0.1.0\"\nnetworks = [\"data\"]\n",
    );
    let tree = render_tree(&container);
    assert!(
        !tree.keys().any(|p| p.starts_with("systemd/")),
        "container gateway got a unit"
    );
    assert!(text(&tree, "docker-compose.yml").contains("tg-gateway:\n"));
}

fn tg701(overlay: &str) -> Vec<String> {
    check_model(&load(overlay))
        .into_iter()
        .filter(|f| f.rule == "TG701")
        .map(|f| format!("{}: {}", f.path, f.message))
        .collect()
}

#[test]
fn native_rule_catches_two_places_and_shared_sessions() {
    assert_eq!(tg701(""), Vec::<String>::new());

    let found = tg701("[services.rabbitmq.native]\nuser = \"rabbit\"\n");
    assert!(
        found
            .iter()
            .any(|f| f.starts_with("services.rabbitmq.native: ")),
        "{found:?}"
    );

    // Incident 30: a second gateway on the same session file (both native: a container
    // gateway's session is on a volume of its own).
    let found = tg701(
        "[services.tg-gateway.gateway]\nsession_file = \"/var/lib/tg/telegram.session\"\n\
[services.gateway-2]\nkind = \"gateway\"\ndeploy = \"native\"\nport = 4008\ncpus = 0.5\nmemory = \"300MiB\"\n\
[services.gateway-2.gateway]\napi_id = 1234567\napi_hash = { secret = \"telegram_api_hash\" }\ndatabase = \"pgbouncer\"\ndb_role = \"tg_app\"\nredis = \"redis-master\"\nbroker = \"rabbitmq\"\nbroker_user = \"tg_gateway\"\nsession_file = \"/var/lib/tg/telegram.session\"\n",
    );
    assert!(
        found
            .iter()
            .any(|f| f.contains("share the session file `/var/lib/tg/telegram.session`")),
        "{found:?}"
    );

    let found =
        tg701("[services.tg-gateway.gateway]\nsession_file = \"/home/op/telegram.session\"\n");
    assert!(
        found
            .iter()
            .any(|f| f.starts_with("services.tg-gateway.gateway.session_file: ")),
        "{found:?}"
    );

    let found = tg701("[services.tg-gateway.native]\nbinary = \"tg-gateway\"\nuser = \"root\"\n");
    assert!(
        found
            .iter()
            .any(|f| f.starts_with("services.tg-gateway.native.binary")),
        "{found:?}"
    );
    assert!(
        found
            .iter()
            .any(|f| f.starts_with("services.tg-gateway.native.user")),
        "{found:?}"
    );
}

/// A native app's unit as found on disk: a secret link written inline is TG104, a
/// variable the model does not declare is TG605; the unit as rendered is clean.
#[test]
fn an_app_unit_keeps_secrets_in_its_environment_file_and_only_declared_variables() {
    let model = load(
        r#"
[services.report]
kind = "app"
deploy = "native"
port = 8090
cpus = 0.1
memory = "64MiB"

[services.report.native]
binary = "/usr/local/bin/report"

[services.report.app]
env = { LOG_LEVEL = "info" }

[services.report.app.links]
PGHOST = { host = "pgbouncer" }
PGPASSWORD = { secret = "db_app" }
"#,
    );
    let mut tree = render_tree(&model);
    let unit = text(&tree, "systemd/report.service");
    assert!(
        unit.contains("EnvironmentFile=/etc/tgstack/secrets/report.env"),
        "{unit}"
    );
    let rules_at_unit = |tree: &Tree| -> Vec<String> {
        let files = tgstack::check::Files::new(tree);
        let dir = Path::new("generated");
        let report = tgstack::validate(&model, None, tgstack::Against::Disk { dir, files: &files });
        report
            .findings
            .iter()
            .filter(|f| f.rule != "TG013")
            .filter(|f| {
                f.artifact
                    .as_ref()
                    .is_some_and(|a| a.file == "systemd/report.service")
            })
            .map(|f| f.rule.clone())
            .collect()
    };
    assert_eq!(rules_at_unit(&tree), Vec::<String>::new());
    let edited = unit.replace(
        "Environment=\"LOG_LEVEL=info\"\n",
        "Environment=\"LOG_LEVEL=info\"\nEnvironment=PGPASSWORD=hunter2\nEnvironment=DEBUG=1\n",
    );
    assert_ne!(edited, unit, "the rendered unit sets LOG_LEVEL: {unit}");
    tree.insert("systemd/report.service".into(), edited.into_bytes());
    assert_eq!(
        rules_at_unit(&tree),
        vec!["TG104".to_string(), "TG605".to_string()]
    );
}
