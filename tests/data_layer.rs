//! The rendered data-layer configs proven by the real programs that read them:
//! PgBouncer, PostgreSQL, Redis + Sentinel, RabbitMQ, and the Compose Specification.

use std::path::Path;
use std::time::Duration;

use crate::support::*;
use testkit::*;

/// Overlay turning the data layer into native services on free loopback ports, with
/// deploy paths inside `tmp`.
fn native_overlay(tmp: &Path, ports: &Ports, database: &str) -> String {
    format!(
        r#"
unset = [
  "services.timescaledb.publish", "services.pgbouncer.publish",
  "services.redis-master.publish", "services.redis-replica.publish", "services.sentinel.publish",
]

[deploy]
secrets_dir = "{tmp}/secrets"
config_dir = "{tmp}/generated"
state_dir = "{tmp}/state"

# The gateway's unit keeps its session under /var/lib (systemd StateDirectory), whatever
# the state directory of the test's native data services is.
[services.tg-gateway.gateway]
session_file = "/var/lib/tg-gateway/telegram.session"

[services.timescaledb]
deploy = "native"
port = {postgres}

[services.timescaledb.postgres]
variant = "plain"
database = "{database}"

[services.pgbouncer]
deploy = "native"
port = {pgbouncer}

[services.redis-master]
deploy = "native"
port = {master}

[services.redis-replica]
deploy = "native"
port = {replica}

[services.sentinel]
deploy = "native"
port = {sentinel}

[services.sentinel.sentinel]
down_after = "1000ms"
failover_timeout = "5000ms"
"#,
        tmp = tmp.display(),
        postgres = ports.postgres,
        pgbouncer = ports.pgbouncer,
        master = ports.master,
        replica = ports.replica,
        sentinel = ports.sentinel,
    )
}

struct Ports {
    postgres: u16,
    pgbouncer: u16,
    master: u16,
    replica: u16,
    sentinel: u16,
}

/// A database of its own on the local PostgreSQL with the rendered roles, and the real
/// PgBouncer in front of it with the rendered config, for the reference model with
/// `extra` merged over the native data layer.
struct Pooled {
    tmp: tempfile::TempDir,
    model: tgstack::model::Model,
    secrets: std::collections::BTreeMap<String, String>,
    bouncer: Daemon,
    database: String,
    port: String,
}

impl Drop for Pooled {
    fn drop(&mut self) {
        self.bouncer.kill();
        psql(
            "postgres",
            &format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.database),
        );
    }
}

fn pooled_database(name: &str, extra: &str) -> Pooled {
    require_local_postgres();
    let tmp = daemon_temp_dir("tgstack-test-");
    let database = format!("tgstack_{name}_{}", std::process::id());
    let ports = Ports {
        postgres: 5432,
        pgbouncer: free_port(),
        master: free_port(),
        replica: free_port(),
        sentinel: free_port(),
    };
    let overlay = format!("{}\n{extra}", native_overlay(tmp.path(), &ports, &database));
    let model = load(&overlay);
    let generated = tmp.path().join("generated");
    render_into(&model, &generated);
    let secrets = write_secrets(&model);

    psql("postgres", &format!("DROP DATABASE IF EXISTS {database}"));
    psql("postgres", &format!("CREATE DATABASE {database}"));
    // The rendered roles script, with passwords passed as psql variables.
    let app_password = &secrets["db_app"];
    let ro_password = &secrets["db_readonly"];
    let roles = generated.join("timescaledb/roles.sql");
    let (ok, out) = run(
        "psql",
        &[
            "-h",
            "127.0.0.1",
            "-U",
            "postgres",
            "-d",
            &database,
            "-X",
            "-q",
            "-v",
            &format!("tg_app_password={app_password}"),
            "-v",
            &format!("grafana_ro_password={ro_password}"),
            "-f",
            roles.to_str().unwrap(),
        ],
        &[],
    );
    assert!(ok, "roles.sql failed: {out}");

    // The deploy-time files belong to the user the daemon runs as.
    let (ok, out) = run(
        "chown",
        &[
            "-R",
            "postgres",
            tmp.path().join("secrets").to_str().unwrap(),
        ],
        &[],
    );
    assert!(ok, "{out}");
    let ini = generated.join("pgbouncer/pgbouncer.ini");
    let mut bouncer = spawn(
        "pgbouncer",
        "pgbouncer",
        &[ini.to_str().unwrap()],
        &[],
        &tmp.path().join("pgbouncer.log"),
        Some("postgres"),
    );
    wait_for_port(&mut bouncer, ports.pgbouncer, Duration::from_secs(15));
    Pooled {
        tmp,
        model,
        secrets,
        bouncer,
        database,
        port: ports.pgbouncer.to_string(),
    }
}

#[test]
fn pgbouncer_with_rendered_config_authenticates_with_scram_and_pools_to_postgres() {
    let pooled = pooled_database("pgb", "");
    let (secrets, database, bouncer, port) = (
        &pooled.secrets,
        &pooled.database,
        &pooled.bouncer,
        &pooled.port,
    );
    let app_password = &secrets["db_app"];
    // The rendered auth method (SCRAM) with the deploy-time userlist: right password works...
    let (ok, out) = run(
        "psql",
        &[
            "-h",
            "127.0.0.1",
            "-p",
            port,
            "-U",
            "tg_app",
            "-d",
            database,
            "-X",
            "-t",
            "-A",
            "-c",
            "SELECT current_user || ':' || current_database()",
        ],
        &[("PGPASSWORD".into(), app_password.clone())],
    );
    assert!(
        ok,
        "query through pgbouncer failed: {out}\n{}",
        bouncer.log_text()
    );
    assert_eq!(out.trim(), format!("tg_app:{database}"));
    assert!(
        !bouncer.log_text().contains(app_password.as_str()),
        "pgbouncer logged a password"
    );

    // ...a wrong one is refused, so auth is really on.
    let (ok, out) = run(
        "psql",
        &[
            "-h",
            "127.0.0.1",
            "-p",
            port,
            "-U",
            "tg_app",
            "-d",
            database,
            "-X",
            "-c",
            "SELECT 1",
        ],
        &[("PGPASSWORD".into(), "wrong".into())],
    );
    assert!(!ok, "a wrong password was accepted: {out}");
    assert!(
        out.contains("password authentication failed") || out.contains("SASL"),
        "{out}"
    );

    // The admin console user from the model reaches the console with its own secret.
    let (ok, out) = run(
        "psql",
        &[
            "-h",
            "127.0.0.1",
            "-p",
            port,
            "-U",
            "pgbouncer_admin",
            "-d",
            "pgbouncer",
            "-X",
            "-t",
            "-A",
            "-c",
            "SHOW POOLS",
        ],
        &[("PGPASSWORD".into(), secrets["pgbouncer_admin"].clone())],
    );
    assert!(ok, "admin console refused: {out}");
    assert!(
        out.contains(database.as_str()),
        "no pool for {database}: {out}"
    );
}

/// The words of a systemd `ExecStart=` value as systemd reads them: double-quoted words
/// with `\\` and `\"` escapes, `%%` and `$$` for a literal `%`/`$`.
fn exec_words(line: &str) -> Vec<String> {
    systemd_words(&line.replace("$$", "\u{0}"))
        .into_iter()
        .map(|w| w.replace('\u{0}', "$"))
        .collect()
}

/// The words of an `Environment=` value or an EnvironmentFile value: as ExecStart, but `$`
/// is literal there.
fn systemd_words(line: &str) -> Vec<String> {
    let (mut words, mut word, mut quoted, mut chars) =
        (Vec::new(), String::new(), false, line.chars().peekable());
    while let Some(c) = chars.next() {
        match c {
            '"' => quoted = !quoted,
            '\\' if quoted => word.extend(chars.next()),
            '%' if chars.peek() == Some(&c) => {
                chars.next();
                word.push(c);
            }
            ' ' if !quoted => words.extend((!word.is_empty()).then(|| std::mem::take(&mut word))),
            _ => word.push(c),
        }
    }
    words.extend((!word.is_empty()).then_some(word));
    words
}

/// `NAME="value"` lines of an EnvironmentFile as tgstack writes it (backslash escapes).
fn environment_file(text: &str) -> Vec<(String, String)> {
    text.lines()
        .filter_map(|l| l.split_once('='))
        .map(|(name, value)| (name.to_string(), systemd_words(value).concat()))
        .collect()
}

/// An app on the host, rendered from links alone, reaches the real PgBouncer: its unit's
/// ExecStart and Environment= (host, port and URL resolved for a native process) and the
/// EnvironmentFile with its password, run as systemd would run them.
#[test]
fn a_native_app_reaches_pgbouncer_through_its_links() {
    let app = r#"
[services.report]
kind = "app"
deploy = "native"
port = 8090
cpus = 0.1
memory = "64MiB"

[services.report.native]
binary = "/usr/bin/psql"

[services.report.app]
command = ["-X", "-t", "-A", "-c", "SELECT current_user || ':' || current_database() || ' ' || current_setting('application_name') || ' 100%'"]
env = { PGUSER = "tg_app", PGAPPNAME = "report $1 50%" }

[services.report.app.links]
PGHOST = { host = "pgbouncer" }
PGPORT = { port = "pgbouncer" }
PGPASSWORD = { secret = "db_app" }
DATABASE_URL = { url = "pgbouncer", user = "tg_app" }
"#;
    let pooled = pooled_database("app", app);
    let unit = render_tree(&pooled.model)
        .get("systemd/report.service")
        .map(|b| String::from_utf8_lossy(b).into_owned())
        .expect("the app's unit is rendered");
    // systemd itself accepts the unit.
    let unit_path = pooled.tmp.path().join("report.service");
    std::fs::write(&unit_path, &unit).unwrap();
    let verify = std::process::Command::new("systemd-analyze")
        .args(["verify", unit_path.to_str().unwrap()])
        .output()
        .expect("systemd-analyze (run: bash scripts/test-env.sh)");
    let complaints = String::from_utf8_lossy(&verify.stderr).into_owned();
    assert!(
        !complaints.contains("Unknown") && !complaints.contains("Failed to parse"),
        "{complaints}"
    );
    let value = |key: &'static str| unit.lines().filter_map(move |l| l.strip_prefix(key));
    let exec = exec_words(value("ExecStart=").next().expect("ExecStart"));
    let mut env: Vec<(String, String)> = value("Environment=")
        .flat_map(systemd_words)
        .filter_map(|a| {
            a.split_once('=')
                .map(|(k, v)| (k.to_string(), v.to_string()))
        })
        .collect();
    assert!(
        !env.iter().any(|(k, _)| k == "PGPASSWORD"),
        "a secret inline: {unit}"
    );
    let env_file = value("EnvironmentFile=").next().expect("EnvironmentFile");
    env.extend(environment_file(
        &std::fs::read_to_string(env_file).unwrap(),
    ));
    assert!(
        env.contains(&("PGPORT".into(), pooled.port.clone())),
        "{env:?}"
    );
    env.push(("PGDATABASE".into(), pooled.database.clone()));
    let (ok, out) = run(
        &exec[0],
        &exec[1..].iter().map(String::as_str).collect::<Vec<_>>(),
        &env,
    );
    assert!(ok, "the app's command failed: {out}\n{unit}");
    assert_eq!(
        out.trim(),
        format!("tg_app:{} report $1 50% 100%", pooled.database)
    );
    // The URL link names the same pooler, role and database.
    let url = &env
        .iter()
        .find(|(k, _)| k == "DATABASE_URL")
        .expect("DATABASE_URL")
        .1;
    assert_eq!(
        *url,
        format!(
            "postgres://tg_app@127.0.0.1:{}/{}",
            pooled.port, pooled.database
        )
    );
    let password = env
        .iter()
        .find(|(k, _)| k == "PGPASSWORD")
        .unwrap()
        .1
        .clone();
    let (ok, out) = run(
        "psql",
        &[url, "-X", "-t", "-A", "-c", "SELECT 1"],
        &[("PGPASSWORD".into(), password)],
    );
    assert!(ok && out.trim() == "1", "{out}");
}

#[test]
fn postgres_starts_with_rendered_conf_and_hba_and_requires_the_password() {
    require_program("runuser");
    let tmp = daemon_temp_dir("tgstack-test-");
    let port = free_port();
    let ports = Ports {
        postgres: port,
        pgbouncer: free_port(),
        master: free_port(),
        replica: free_port(),
        sentinel: free_port(),
    };
    let model = load(&native_overlay(tmp.path(), &ports, "telegram"));
    let generated = tmp.path().join("generated");
    render_into(&model, &generated);
    let conf = generated.join("timescaledb/postgresql.conf");
    let hba = generated.join("timescaledb/pg_hba.conf");
    let conf_text = std::fs::read_to_string(&conf).unwrap();
    assert!(
        conf_text.contains("listen_addresses = '127.0.0.1'"),
        "{conf_text}"
    );
    assert!(
        conf_text.contains("shared_preload_libraries = 'pg_stat_statements'"),
        "plain variant must not preload timescaledb: {conf_text}"
    );

    let data = tmp.path().join("pgdata");
    let pwfile = tmp.path().join("pw");
    std::fs::write(&pwfile, "superuser-test-pw\n").unwrap();
    let (ok, out) = run(
        "chown",
        &[
            "postgres",
            pwfile.to_str().unwrap(),
            tmp.path().to_str().unwrap(),
        ],
        &[],
    );
    assert!(ok, "{out}");
    let initdb = "/usr/lib/postgresql/15/bin/initdb";
    let postgres = "/usr/lib/postgresql/15/bin/postgres";
    let (ok, out) = run(
        "runuser",
        &[
            "-u",
            "postgres",
            "--",
            initdb,
            "-D",
            data.to_str().unwrap(),
            "-U",
            "postgres",
            "--pwfile",
            pwfile.to_str().unwrap(),
        ],
        &[],
    );
    assert!(ok, "initdb failed: {out}");
    let socket_dir = tmp.path().join("sock");
    std::fs::create_dir_all(&socket_dir).unwrap();
    run("chown", &["postgres", socket_dir.to_str().unwrap()], &[]);
    let mut server = spawn(
        "postgres",
        postgres,
        &[
            "-D",
            data.to_str().unwrap(),
            "-c",
            &format!("config_file={}", conf.display()),
            "-c",
            &format!("hba_file={}", hba.display()),
            "-c",
            &format!("unix_socket_directories={}", socket_dir.display()),
        ],
        &[],
        &tmp.path().join("postgres.log"),
        Some("postgres"),
    );
    wait_for_port(&mut server, port, Duration::from_secs(30));
    let port_text = port.to_string();
    let query = |password: &str, sql: &str| {
        run(
            "psql",
            &[
                "-h",
                "127.0.0.1",
                "-p",
                &port_text,
                "-U",
                "postgres",
                "-d",
                "postgres",
                "-X",
                "-t",
                "-A",
                "-c",
                sql,
            ],
            &[("PGPASSWORD".into(), password.into())],
        )
    };
    let (ok, out) = eventually("postgres to accept logins", Duration::from_secs(20), || {
        let (ok, out) = query("superuser-test-pw", "SHOW password_encryption");
        (ok || !out.contains("starting up")).then_some((ok, out))
    });
    assert!(
        ok,
        "login with the right password failed: {out}\n{}",
        server.log_text()
    );
    assert_eq!(out.trim(), "scram-sha-256");
    let (ok, out) = query(
        "superuser-test-pw",
        "SELECT setting FROM pg_settings WHERE name = 'shared_preload_libraries'",
    );
    assert!(ok && out.trim() == "pg_stat_statements", "{out}");
    let (ok, out) = query("superuser-test-pw", "SHOW max_connections");
    assert!(ok && out.trim() == "100", "{out}");
    let (ok, out) = query("wrong", "SELECT 1");
    assert!(
        !ok && out.contains("password authentication failed"),
        "no trust line may let this in: {out}"
    );
}

#[test]
fn sentinels_from_rendered_configs_promote_the_replica_when_the_master_stops() {
    require_program("redis-server");
    require_program("redis-sentinel");
    let tmp = daemon_temp_dir("tgstack-test-");
    let ports = free_ports(2);
    let (master, replica) = (ports[0], ports[1]);
    // Three sentinels listen on consecutive ports from `sentinel`.
    let sentinel = free_port_run(3);
    let ports = Ports {
        postgres: free_port(),
        pgbouncer: free_port(),
        master,
        replica,
        sentinel,
    };
    let model = load(&native_overlay(tmp.path(), &ports, "telegram"));
    let generated = tmp.path().join("generated");
    render_into(&model, &generated);
    let secrets = write_secrets(&model);
    let password = secrets["redis"].clone();
    for dir in [
        "redis-master",
        "redis-replica",
        "sentinel-1",
        "sentinel-2",
        "sentinel-3",
    ] {
        std::fs::create_dir_all(tmp.path().join("state").join(dir)).unwrap();
    }

    let mut master_d = spawn(
        "redis-master",
        "redis-server",
        &[generated.join("redis-master/redis.conf").to_str().unwrap()],
        &[],
        &tmp.path().join("master.log"),
        None,
    );
    wait_for_port(&mut master_d, master, Duration::from_secs(10));
    let mut replica_d = spawn(
        "redis-replica",
        "redis-server",
        &[generated.join("redis-replica/redis.conf").to_str().unwrap()],
        &[],
        &tmp.path().join("replica.log"),
        None,
    );
    wait_for_port(&mut replica_d, replica, Duration::from_secs(10));

    let cli = |port: u16, args: &[&str]| {
        let port = port.to_string();
        let mut all = vec!["-h", "127.0.0.1", "-p", port.as_str(), "--no-auth-warning"];
        all.extend_from_slice(args);
        run("redis-cli", &all, &[])
    };
    // Auth is on: without the password the master refuses.
    let (_, out) = cli(master, &["ping"]);
    assert!(
        out.contains("NOAUTH"),
        "master accepts unauthenticated clients: {out}"
    );
    let (_, out) = cli(master, &["-a", &password, "set", "k", "v"]);
    assert!(out.contains("OK"), "{out}");
    eventually("the replica to sync", Duration::from_secs(20), || {
        let (_, out) = cli(replica, &["-a", &password, "get", "k"]);
        (out.trim() == "v").then_some(())
    });

    // Sentinels run from a writable copy with the deploy-time auth appended, as deployed.
    let _sentinels: Vec<Daemon> = (1..=3u16)
        .map(|i| {
            start_sentinel(
                &format!("sentinel-{i}"),
                &generated.join(format!("sentinel/sentinel-{i}.conf")),
                &tmp.path().join("secrets/sentinel-auth.conf"),
                &tmp.path().join(format!("state/sentinel-{i}/sentinel.conf")),
                sentinel + i - 1,
                &tmp.path().join(format!("sentinel-{i}.log")),
            )
        })
        .collect();
    eventually(
        "sentinels to discover the replica and each other",
        Duration::from_secs(30),
        || {
            let (_, out) = cli(sentinel, &["sentinel", "master", "mymaster"]);
            let lines: Vec<&str> = out.lines().collect();
            let field = |name: &str| {
                lines
                    .iter()
                    .position(|l| *l == name)
                    .and_then(|i| lines.get(i + 1))
                    .map(|v| v.to_string())
            };
            (field("num-slaves").as_deref() == Some("1")
                && field("num-other-sentinels").as_deref() == Some("2"))
            .then_some(())
        },
    );

    master_d.kill();
    let promoted = eventually(
        "a sentinel to promote the replica",
        Duration::from_secs(60),
        || {
            let (_, out) = cli(
                sentinel + 1,
                &["sentinel", "get-master-addr-by-name", "mymaster"],
            );
            let port = out.lines().nth(1)?.trim().parse::<u16>().ok()?;
            (port == replica).then_some(port)
        },
    );
    assert_eq!(promoted, replica);
    let (_, out) = cli(replica, &["-a", &password, "role"]);
    assert!(out.starts_with("master"), "replica was not promoted: {out}");
    // Every sentinel rewrites its writable copy (the rendered file stays untouched); each
    // learns of the new master on its own schedule.
    let rewritten_path = tmp.path().join("state/sentinel-1/sentinel.conf");
    let expected = format!("sentinel monitor mymaster 127.0.0.1 {replica}");
    eventually(
        "sentinel-1 to rewrite its config with the new master",
        Duration::from_secs(30),
        || {
            std::fs::read_to_string(&rewritten_path)
                .ok()
                .filter(|text| text.contains(&expected))
                .map(|_| ())
        },
    );
}

#[test]
fn rabbitmq_imports_rendered_definitions_and_routes_a_message() {
    require_local_rabbitmq();
    let tmp = daemon_temp_dir("tgstack-test-");
    let vhost = format!("tgstack-test-{}", std::process::id());
    let ports = Ports {
        postgres: free_port(),
        pgbouncer: free_port(),
        master: free_port(),
        replica: free_port(),
        sentinel: free_port(),
    };
    let overlay = format!(
        "{}\n[services.rabbitmq.rabbitmq]\nvhost = \"{vhost}\"\n",
        native_overlay(tmp.path(), &ports, "telegram")
    );
    let model = load(&overlay);
    let generated = tmp.path().join("generated");
    render_into(&model, &generated);
    let secrets = write_secrets(&model);

    let topology = generated.join("rabbitmq/definitions.json");
    let users = tmp.path().join("secrets/rabbitmq-users.json");
    // Through stdin: the broker node reads a path argument as its own user.
    for file in [&topology, &users] {
        let (ok, out) = run_with_stdin(
            "rabbitmqctl",
            &["import_definitions", "--format", "json"],
            &std::fs::read(file).unwrap(),
        );
        assert!(ok, "import of {} failed: {out}", file.display());
    }
    let _cleanup = VhostGuard(vhost.clone());
    // The import is asynchronous: wait for the topology and the user's permissions.
    eventually(
        "the imported queues and permissions",
        Duration::from_secs(30),
        || {
            let (_, queues) = run(
                "rabbitmqctl",
                &["-q", "list_queues", "-p", &vhost, "name"],
                &[],
            );
            let (_, perms) = run(
                "rabbitmqctl",
                &["-q", "list_permissions", "-p", &vhost],
                &[],
            );
            ([
                "telegram.signals",
                "telegram.archive",
                "telegram.dead-letter",
            ]
            .iter()
            .all(|q| queues.contains(q))
                && perms.contains("tg_gateway"))
            .then_some(())
        },
    );

    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let password = secrets["rabbitmq_gateway"].clone();
    let received = runtime.block_on(async {
        use lapin::options::*;
        use lapin::types::FieldTable;
        let user = percent_encode(&password);
        let uri = format!(
            "amqp://tg_gateway:{user}@127.0.0.1:5672/{}",
            percent_encode(&vhost)
        );
        let connection = lapin::Connection::connect(&uri, lapin::ConnectionProperties::default())
            .await
            .expect("connect as the rendered user");
        let channel = connection.create_channel().await.unwrap();
        channel
            .confirm_select(ConfirmSelectOptions::default())
            .await
            .unwrap();
        let confirm = channel
            .basic_publish(
                "telegram.messages".into(),
                "telegram.channel.-1001234567890".into(),
                BasicPublishOptions {
                    mandatory: true,
                    ..Default::default()
                },
                b"hello from the rendered topology",
                lapin::BasicProperties::default().with_delivery_mode(2),
            )
            .await
            .unwrap()
            .await
            .unwrap();
        assert!(confirm.is_ack(), "publish not confirmed: {confirm:?}");
        let mut got = Vec::new();
        for queue in ["telegram.signals", "telegram.archive"] {
            let message = channel
                .basic_get(queue.into(), BasicGetOptions { no_ack: true })
                .await
                .unwrap();
            got.push(message.map(|m| String::from_utf8_lossy(&m.delivery.data).into_owned()));
        }
        let _ = connection.close(0, "done".into()).await;
        let _ = FieldTable::default();
        got
    });
    assert_eq!(
        received,
        vec![Some("hello from the rendered topology".to_string()); 2]
    );
}

/// Deletes the test's vhost when the test ends, whatever happened.
struct VhostGuard(String);

impl Drop for VhostGuard {
    fn drop(&mut self) {
        let _ = run("rabbitmqctl", &["-q", "delete_vhost", &self.0], &[]);
    }
}

fn percent_encode(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

#[test]
fn rendered_compose_file_matches_the_compose_specification() {
    let model =
        tgstack::model::load_files(&[root().join("stack.toml")]).expect("reference model loads");
    // The reference, and the model with app services (commands, links, `$` escaped).
    let apps = tgstack::model::load_files(&[
        root().join("stack.toml"),
        root().join("tests/fixtures/models/apps.overlay.toml"),
    ])
    .expect("the apps overlay loads");
    let compose = |model: &tgstack::model::Model| -> serde_json::Value {
        let tree = tgstack::render::render(model, None).expect("renders");
        let yaml = std::str::from_utf8(&tree["docker-compose.yml"])
            .unwrap()
            .to_string();
        serde_saphyr::from_str(&yaml).expect("compose YAML parses (no duplicate keys)")
    };
    let document = compose(&model);
    let with_apps = compose(&apps);
    assert!(with_apps["services"]["signal-consumer"].is_object());
    let schema_path = root().join("../shared/oracles/schemas/compose-spec.json");
    let schema_text = std::fs::read_to_string(&schema_path).unwrap_or_else(|e| {
        panic!(
            "the Compose schema oracle is missing at {}: {e}",
            schema_path.display()
        )
    });
    let schema: serde_json::Value = serde_json::from_str(&schema_text).unwrap();
    let validator = jsonschema::draft7::new(&schema).expect("compose schema compiles");
    let errors: Vec<String> = validator
        .iter_errors(&document)
        .map(|e| format!("{} at {}", e, e.instance_path()))
        .collect();
    assert!(
        errors.is_empty(),
        "compose file violates the spec:\n{}",
        errors.join("\n")
    );
    let errors: Vec<String> = validator
        .iter_errors(&with_apps)
        .map(|e| format!("{} at {}", e, e.instance_path()))
        .collect();
    assert!(
        errors.is_empty(),
        "compose file with apps violates the spec:\n{}",
        errors.join("\n")
    );
    // The oracle is not a rubber stamp: a broken document is rejected.
    let mut broken = document.clone();
    broken["services"]["pgbouncer"]["ports"] = serde_json::json!("6434:6432");
    assert!(!validator.is_valid(&broken));
}
