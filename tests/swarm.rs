//! The swarm target: the reference model on three nodes (examples/swarm.toml) renders a
//! stack file the real `docker stack config` accepts, with the placement, reservations
//! and policies the model says, configs for every rendered file a service reads and the
//! credentials as Swarm secrets; deploy.sh and remove.sh are shellcheck-clean. The deploy on a real multi-node swarm is gateway/tests/swarm_stack.rs.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;
use tgstack::tree::Tree;

use crate::support::root;

fn swarm_model(extra: &str) -> tgstack::model::Model {
    let read = |path: PathBuf| (path.clone(), std::fs::read_to_string(&path).unwrap());
    tgstack::model::load_texts(vec![
        read(root().join("stack.toml")),
        read(root().join("examples/swarm.toml")),
        (PathBuf::from("extra.toml"), extra.to_string()),
    ])
    .unwrap_or_else(|f| panic!("{}", tgstack::report::human(&f)))
}

fn render(model: &tgstack::model::Model) -> Tree {
    tgstack::render(model, None)
        .unwrap_or_else(|f| panic!("{}", tgstack::report::human(&f)))
        .tree
}

fn write(tree: &Tree, dir: &Path) {
    for (path, bytes) in tree {
        let target = dir.join(path);
        std::fs::create_dir_all(target.parent().unwrap()).unwrap();
        std::fs::write(&target, bytes).unwrap();
    }
}

fn text<'a>(tree: &'a Tree, path: &str) -> std::borrow::Cow<'a, str> {
    String::from_utf8_lossy(tree.get(path).unwrap_or_else(|| panic!("no {path}")))
}

/// The variables the stack file interpolates, as deploy.sh would export them (dummy
/// secret names; the values of the interpolated credentials are made up here).
fn deploy_env(stack_yml: &str) -> BTreeMap<String, String> {
    let mut env = BTreeMap::new();
    for part in stack_yml.split("${").skip(1) {
        let var: String = part
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
            .collect();
        env.insert(var.clone(), format!("dummy-{}", var.to_lowercase()));
    }
    env
}

/// `docker stack config` of the stack file (the CLI resolves interpolation, configs and
/// the schema as `docker stack deploy` does, without a swarm).
fn stack_config(dir: &Path, env: &BTreeMap<String, String>) -> (bool, String) {
    let output = Command::new("docker")
        .args(["stack", "config", "-c", "stack.yml"])
        .current_dir(dir.join("swarm"))
        .envs(env)
        .output()
        .expect("docker runs (run: bash scripts/test-env.sh)");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    (output.status.success(), text)
}

#[test]
fn docker_stack_config_accepts_the_rendered_stack_as_the_model_places_it() {
    let tree = render(&swarm_model(""));
    assert!(!tree.contains_key("docker-compose.yml"));
    assert!(!tree.keys().any(|p| p.starts_with("scripts/")));
    let dir = tempfile::tempdir().unwrap();
    write(&tree, dir.path());
    let stack_yml = text(&tree, "swarm/stack.yml");
    let env = deploy_env(&stack_yml);
    let (ok, resolved) = stack_config(dir.path(), &env);
    assert!(
        ok,
        "docker stack config refused swarm/stack.yml:\n{resolved}"
    );
    let doc: Value = serde_saphyr::from_str(&resolved).expect("the resolved stack is YAML");
    let service = |name: &str| doc.pointer(&format!("/services/{name}")).unwrap().clone();

    // Pinned where the model says; the Sentinels one per node; the API spread.
    let constraints = |name: &str| -> Vec<String> {
        service(name)
            .pointer("/deploy/placement/constraints")
            .and_then(Value::as_array)
            .map(|c| {
                c.iter()
                    .filter_map(|v| v.as_str().map(String::from))
                    .collect()
            })
            .unwrap_or_default()
    };
    // The primary and its standby on the first and second data nodes.
    assert_eq!(
        constraints("timescaledb"),
        ["node.hostname == node-1", "node.labels.role == data"]
    );
    assert_eq!(
        constraints("timescaledb-2"),
        ["node.hostname == node-2", "node.labels.role == data"]
    );
    assert_eq!(constraints("redis-replica"), ["node.hostname == node-2"]);
    let sentinel_nodes: std::collections::BTreeSet<Vec<String>> = (1..=3)
        .map(|i| constraints(&format!("sentinel-{i}")))
        .collect();
    assert_eq!(sentinel_nodes.len(), 3, "{sentinel_nodes:?}");
    let api = service("gateway-api");
    assert_eq!(api.pointer("/deploy/replicas"), Some(&Value::from(2)));
    assert_eq!(
        api.pointer("/deploy/placement/max_replicas_per_node"),
        Some(&Value::from(1))
    );
    assert_eq!(constraints("gateway-api"), ["node.labels.role == data"]);
    // Reservations equal the limits (Swarm then refuses to overfill a node, as TG802).
    let pg = service("timescaledb");
    assert_eq!(
        pg.pointer("/deploy/resources/limits"),
        pg.pointer("/deploy/resources/reservations")
    );
    assert_eq!(
        pg.pointer("/deploy/update_config/order"),
        Some(&Value::from("stop-first"))
    );
    assert!(pg.get("depends_on").is_none());
    // The gateway: one task, pinned, its session on a volume.
    let gateway = service("tg-gateway");
    assert_eq!(gateway.pointer("/deploy/replicas"), Some(&Value::from(1)));
    assert_eq!(constraints("tg-gateway"), ["node.hostname == node-1"]);
    let volumes = gateway["volumes"].as_array().unwrap();
    assert!(
        volumes
            .iter()
            .any(|v| v["source"] == "tg-gateway-session" && v["target"] == "/var/lib/tg-gateway"),
        "{volumes:?}"
    );

    // Host agents run once on every node, and Prometheus scrapes each of their tasks.
    for agent in ["node-exporter", "cadvisor"] {
        let agent_service = service(agent);
        assert_eq!(
            agent_service.pointer("/deploy/mode"),
            Some(&Value::from("global")),
            "{agent}"
        );
        assert!(
            agent_service.pointer("/deploy/replicas").is_none(),
            "{agent}"
        );
        assert!(constraints(agent).is_empty(), "{agent}");
    }
    let prometheus_yml: Value = serde_saphyr::from_str(&text(&tree, "prometheus/prometheus.yml"))
        .expect("prometheus.yml is YAML");
    let job = |name: &str| {
        prometheus_yml["scrape_configs"]
            .as_array()
            .unwrap()
            .iter()
            .find(|j| j["job_name"] == name)
            .unwrap()
            .clone()
    };
    assert_eq!(
        job("node-exporter")["dns_sd_configs"],
        serde_json::json!([{"names": ["node-exporter"], "type": "A", "port": 9100}])
    );
    assert!(job("postgres-exporter").get("dns_sd_configs").is_none());

    // Every rendered file a service reads is a config, named by its content.
    let configs = doc["configs"].as_object().unwrap();
    for (key, config) in configs {
        let file = config["file"].as_str().unwrap();
        assert!(
            file.starts_with('/') || file.contains("../"),
            "{key}: {file}"
        );
        assert!(
            config["name"]
                .as_str()
                .unwrap()
                .starts_with("telegram-hybrid_")
        );
    }
    let prometheus = service("prometheus");
    let prometheus_targets: Vec<&str> = prometheus["configs"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|c| c["target"].as_str())
        .collect();
    for target in [
        "/etc/prometheus/prometheus.yml",
        "/etc/prometheus/rules/critical.yml",
        "/etc/prometheus/rules/warning.yml",
    ] {
        assert!(
            prometheus_targets.contains(&target),
            "{prometheus_targets:?}"
        );
    }
    // Credentials: secrets by versioned external name; the programs read files.
    let secrets = doc["secrets"].as_object().unwrap();
    assert!(secrets.values().all(|s| s["external"] == true));
    let pg_env = &pg["environment"];
    assert_eq!(
        pg_env["POSTGRES_PASSWORD_FILE"],
        "/run/secrets/postgres_superuser"
    );
    assert!(pg_env.get("POSTGRES_PASSWORD").is_none());
    assert_eq!(
        gateway["environment"]["TG_REDIS_PASSWORD_FILE"],
        "/run/secrets/redis"
    );
    let datasources = text(&tree, "grafana/provisioning/datasources/datasources.yml");
    assert!(
        datasources.contains("$__file{/run/secrets/redis}"),
        "{datasources}"
    );

    // The same check refuses a broken file: a misspelt deploy key.
    let broken = stack_yml.replacen("      restart_policy:\n", "      restart_polcy:\n", 1);
    std::fs::write(dir.path().join("swarm/stack.yml"), broken).unwrap();
    let (ok, message) = stack_config(dir.path(), &env);
    assert!(
        !ok,
        "docker stack config accepted an invalid mode:\n{message}"
    );
}

#[test]
fn the_swarm_scripts_are_shellcheck_clean_and_set_every_variable_the_stack_reads() {
    let tree = render(&swarm_model(""));
    let dir = tempfile::tempdir().unwrap();
    write(&tree, dir.path());
    let scripts = [
        "swarm/deploy.sh",
        "swarm/migrate.sh",
        "swarm/remove.sh",
        "swarm/rabbitmq-members.sh",
        "swarm/timescaledb-failover.sh",
        "timescaledb/entrypoint.sh",
    ];
    let output = Command::new("shellcheck")
        .args(scripts.map(|s| dir.path().join(s)))
        .output()
        .expect("shellcheck runs (run: bash scripts/test-env.sh)");
    assert!(
        output.status.success(),
        "shellcheck:\n{}",
        String::from_utf8_lossy(&output.stdout)
    );
    let deploy = text(&tree, "swarm/deploy.sh");
    // Every secret of the stack file is created by deploy.sh and exported under the
    // variable the stack file reads.
    let stack_yml = text(&tree, "swarm/stack.yml");
    for var in deploy_env(&stack_yml).keys() {
        if var.starts_with("TGSTACK_SECRET_") {
            assert!(deploy.contains(&format!("'{var}'")), "{var} is never set");
        } else {
            assert!(
                deploy.contains(&format!("export {var}\n")),
                "{var} is never set"
            );
        }
    }
    // The model's node labels are applied before the deploy that constrains on them.
    let label = deploy
        .find("node update --label-add 'role=data' 'node-1'")
        .expect("node-1 labelled");
    assert!(label < deploy.find("\"$DOCKER\" stack deploy").unwrap());
}

/// The failover script brings the running services to what the model with the standby
/// promoted renders: the standby's role, PgBouncer's ini (a config named as that render
/// names it, so the next deploy of that model changes nothing there) and the exporter.
#[test]
fn the_failover_script_applies_what_the_promoted_model_renders() {
    let tree = render(&swarm_model(""));
    let stack_yml = text(&tree, "swarm/stack.yml");
    let standby = stack_yml
        .split("\n  timescaledb-2:\n")
        .nth(1)
        .expect("a standby service");
    assert!(standby.contains("TGSTACK_POSTGRES_ROLE: \"standby\""));
    assert!(standby.contains("TGSTACK_POSTGRES_PEER: \"timescaledb\""));
    assert!(
        standby
            .contains("TGSTACK_REPLICATION_PASSWORD_FILE: \"/run/secrets/postgres_replication\"")
    );
    assert!(standby.contains("source: \"timescaledb-2-data\""));
    assert!(text(&tree, "pgbouncer/pgbouncer.ini").contains("host=timescaledb "));
    assert!(text(&tree, "timescaledb/pg_hba.conf").contains("host    replication  replicator  "));
    assert!(text(&tree, "timescaledb/roles.sql").contains("LOGIN REPLICATION"));

    let script = text(&tree, "swarm/timescaledb-failover.sh");
    let copy = "swarm/timescaledb-failover/pgbouncer/pgbouncer.ini";
    let repointed = text(&tree, copy);
    assert!(repointed.contains("host=timescaledb-2 "), "{repointed}");
    let order: Vec<usize> = [
        "scale --detach \"${PROJECT}_\"'timescaledb'=0",
        "--env-add 'TGSTACK_POSTGRES_ROLE=primary'",
        "--config-rm \"${OLD_CONFIG['pgbouncer /etc/pgbouncer/pgbouncer.ini']}\"",
        "--env-add 'DATA_SOURCE_URI=timescaledb-2:5432/telegram?sslmode=disable'",
    ]
    .iter()
    .map(|step| {
        script
            .find(step)
            .unwrap_or_else(|| panic!("{step} not in:\n{script}"))
    })
    .collect();
    assert!(order.windows(2).all(|w| w[0] < w[1]), "{order:?}");
    assert!(script.contains("next: set promoted = true"));
    // Configs are made, and the standby checked, before anything stops.
    let stop = script.find("service scale").unwrap();
    assert!(
        script
            .find("NEW_CONFIG['pgbouncer /etc/pgbouncer/pgbouncer.ini']=$(config_file")
            .unwrap()
            < stop
    );
    assert!(
        script
            .find("on_a_live_node 'timescaledb-2' running")
            .unwrap()
            < stop
    );
    // While the standby copies its peer, its healthcheck stays green.
    assert!(standby.contains("test -e /var/lib/postgresql/data/.tgstack-copying || pg_isready"));
    // deploy.sh refuses a model that would demote the instance a failover promoted.
    let deploy = text(&tree, "swarm/deploy.sh");
    let guard = deploy
        .find("grep -qx 'TGSTACK_POSTGRES_ROLE=primary'")
        .expect("a guard against demoting the promoted standby");
    assert!(guard < deploy.find("\"$DOCKER\" stack deploy").unwrap());

    // The promoted model: its stack file reads the very config the script creates.
    let promoted = render(&swarm_model(
        "[services.timescaledb.postgres.standby]\npromoted = true\n",
    ));
    assert_eq!(text(&promoted, "pgbouncer/pgbouncer.ini"), repointed);
    let promoted_yml = text(&promoted, "swarm/stack.yml");
    assert!(promoted_yml.contains("timescaledb-2:5432/telegram"));
    let config_name = |yml: &str| {
        yml.lines()
            .skip_while(|l| !l.starts_with("  pgbouncer-pgbouncer-ini:"))
            .find_map(|l| l.trim().strip_prefix("name: "))
            .map(|n| n.trim_matches('"').to_string())
            .expect("a pgbouncer.ini config")
    };
    let digest = {
        use sha2::Digest;
        let hash = sha2::Sha256::digest(repointed.as_bytes());
        hash.iter().map(|b| format!("{b:02x}")).collect::<String>()[..12].to_string()
    };
    assert!(config_name(&promoted_yml).ends_with(&digest));
    assert_ne!(config_name(&stack_yml), config_name(&promoted_yml));
    // Its failover script goes back.
    let back = text(&promoted, "swarm/timescaledb-failover.sh");
    assert!(back.contains("scale --detach \"${PROJECT}_\"'timescaledb-2'=0"));
    assert!(back.contains("next: set promoted = false"));
}

#[test]
fn a_single_host_model_renders_no_swarm_file() {
    let read = |path: PathBuf| (path.clone(), std::fs::read_to_string(&path).unwrap());
    let model = tgstack::model::load_texts(vec![read(root().join("stack.toml"))]).unwrap();
    let tree = render(&model);
    assert!(tree.contains_key("docker-compose.yml"));
    assert!(!tree.keys().any(|p| p.starts_with("swarm/")));
}
