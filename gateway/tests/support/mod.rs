//! Harness of the pipeline tests: a test model (overlay over the root stack.toml) with
//! native services on free loopback ports, a fresh database on the shared PostgreSQL, a
//! private PgBouncer and Redis started from the RENDERED configs and deploy-time secret
//! files, a test-owned vhost on the shared RabbitMQ imported from the rendered
//! definitions, and TCP proxies the tests cut to simulate outages. The generic helpers
//! (daemons, ports, psql, polling, the proxy) are in the `testkit` crate.
// The pipeline benchmark includes this file too and uses only part of it.
#![allow(dead_code)]

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use testkit::{
    Daemon, Proxy, eventually, free_port, free_port_run, psql, require_local_postgres,
    require_local_rabbitmq, run, run_with_stdin, spawn, wait_for_port,
};
use tgstack::model::{self, Model};
use tgstack::render;

pub const BINARY: &str = env!("CARGO_BIN_EXE_tg-gateway");

pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("workspace root")
        .to_path_buf()
}

/// How the test environment is wired.
#[derive(Default)]
pub struct Wiring {
    /// Put a cuttable proxy between PgBouncer and PostgreSQL.
    pub postgres_proxy: bool,
    /// Put a cuttable proxy between the gateway and RabbitMQ.
    pub rabbitmq_proxy: bool,
    /// Extra overlay text (gateway tuning).
    pub extra: String,
    /// The gateway's Telegram session file (below /var/lib, as the unit requires);
    /// the model's default when None.
    pub session_file: Option<PathBuf>,
    /// Also run the model's Redis replica and its three Sentinels (from the rendered
    /// configs, quick failover timings), so the master can be killed.
    pub sentinels: bool,
}

/// The replica and Sentinels of a stack started with `Wiring::sentinels`.
pub struct Failover {
    pub replica: Daemon,
    pub replica_port: u16,
    /// The first Sentinel's port; the others follow it.
    pub sentinel_port: u16,
    pub sentinels: Vec<Daemon>,
}

/// One test's stack: rendered, secrets written, daemons running, database migrated.
pub struct TestStack {
    pub tmp: tempfile::TempDir,
    pub name: String,
    pub database: String,
    pub vhost: String,
    pub gateway_port: u16,
    pub redis_port: u16,
    pub overlay: PathBuf,
    pub secrets: BTreeMap<String, String>,
    pub env: Vec<(String, String)>,
    pub model: Model,
    pub bouncer: Daemon,
    pub redis: Daemon,
    pub postgres_proxy: Option<Proxy>,
    pub rabbitmq_proxy: Option<Proxy>,
    pub failover: Option<Failover>,
    _scratch: testkit::Scratch,
}

impl TestStack {
    pub fn start(name: &str, wiring: Wiring) -> TestStack {
        require_local_postgres();
        require_local_rabbitmq();
        let tmp = testkit::daemon_temp_dir("tg-gateway-test-");
        let unique = format!("{name}_{}", std::process::id());
        let database = format!("gwtest_{unique}");
        let vhost = format!("gwtest-{unique}");
        let postgres_proxy = wiring.postgres_proxy.then(|| Proxy::start(5432));
        let rabbitmq_proxy = wiring.rabbitmq_proxy.then(|| Proxy::start(5672));
        let postgres_port = postgres_proxy.as_ref().map_or(5432, |p| p.port);
        let rabbitmq_port = rabbitmq_proxy.as_ref().map_or(5672, |p| p.port);
        let (gateway_port, pgbouncer_port, redis_port) = (free_port(), free_port(), free_port());
        // Without `sentinels`, the model's replica and Sentinels stay unpublished containers
        // that never run: the gateway finds no Sentinel and uses the master directly.
        let (replica_port, sentinel_port) = (free_port(), free_port_run(3));
        let failover_overlay = if wiring.sentinels {
            format!(
                r#"
[services.redis-replica]
deploy = "native"
port = {replica_port}

[services.redis-replica.redis]
persistence = "none"

[services.sentinel]
deploy = "native"
port = {sentinel_port}

[services.sentinel.sentinel]
down_after = "1000ms"
failover_timeout = "5000ms"
"#
            )
        } else {
            String::new()
        };
        let overlay_text = format!(
            r#"
unset = [
  "services.timescaledb.publish", "services.pgbouncer.publish",
  "services.redis-master.publish", "services.rabbitmq.publish",
  "services.redis-replica.publish", "services.sentinel.publish",
]

[deploy]
secrets_dir = "{tmp}/secrets"
config_dir = "{tmp}/generated"
state_dir = "{tmp}/state"

# The reference listens on the Docker bridge (Prometheus scrapes it from a container);
# here nothing but the test reaches it, on loopback.
[services.tg-gateway]
port = {gateway_port}
listen = "127.0.0.1"

[services.tg-gateway.gateway]
session_file = "{session_file}"

[services.timescaledb]
deploy = "native"
port = {postgres_port}

[services.timescaledb.postgres]
variant = "plain"
database = "{database}"

[services.pgbouncer]
deploy = "native"
port = {pgbouncer_port}

[services.redis-master]
deploy = "native"
port = {redis_port}

[services.redis-master.redis]
persistence = "none"

[services.rabbitmq]
deploy = "native"
port = {rabbitmq_port}

[services.rabbitmq.rabbitmq]
vhost = "{vhost}"
{failover_overlay}
{extra}
"#,
            tmp = tmp.path().display(),
            extra = wiring.extra,
            session_file = wiring
                .session_file
                .as_deref()
                .unwrap_or(Path::new("/var/lib/tg-gateway/telegram.session"))
                .display(),
        );
        let overlay = tmp.path().join("overlay.toml");
        std::fs::write(&overlay, &overlay_text).unwrap();
        let base = root().join("stack.toml");
        let model = match model::load_texts(vec![
            (base.clone(), std::fs::read_to_string(&base).unwrap()),
            (overlay.clone(), overlay_text),
        ]) {
            Ok(model) => model,
            Err(findings) => panic!(
                "test overlay does not load:\n{}",
                tgstack::report::human(&findings)
            ),
        };
        let generated = tmp.path().join("generated");
        let tree = render_data_layer(&model, tmp.path());
        render::write::write_tree(&tree, &generated).expect("write rendered tree");
        // The same values other tests use for the shared server's global roles and users.
        let secrets: BTreeMap<String, String> = model
            .stack
            .secrets
            .keys()
            .map(|id| (id.clone(), testkit::secret_value(id)))
            .collect();
        let files = render::secrets::files(&model, &secrets);
        render::secrets::write(Path::new(&model.stack.deploy.secrets_dir), &files)
            .expect("write secrets");
        let env: Vec<(String, String)> = model
            .stack
            .secrets
            .iter()
            .map(|(id, s)| (s.env.clone(), secrets[id].clone()))
            .chain([("TG_GATEWAY_LOG".to_string(), "warn".to_string())])
            .collect();

        // Database and roles (the rendered roles.sql with psql variables).
        psql(
            "postgres",
            &format!("DROP DATABASE IF EXISTS {database} WITH (FORCE)"),
        );
        psql("postgres", &format!("CREATE DATABASE {database}"));
        // Dropped with the stack, or as soon as a later step of the setup fails.
        let scratch = testkit::Scratch {
            database: database.clone(),
            roles: Vec::new(),
        };
        let roles = generated.join("timescaledb/roles.sql");
        // Roles are cluster-wide: two tests altering the same role at once make PostgreSQL
        // fail one with "tuple concurrently updated", so this step runs one at a time.
        static ROLES: std::sync::Mutex<()> = std::sync::Mutex::new(());
        let _roles_guard = ROLES
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
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
                &format!("tg_app_password={}", secrets["db_app"]),
                "-v",
                &format!("grafana_ro_password={}", secrets["db_readonly"]),
                "-f",
                roles.to_str().unwrap(),
            ],
            &[],
        );
        assert!(ok, "roles.sql failed: {out}");
        drop(_roles_guard);

        // PgBouncer from the rendered ini and the deploy-time userlist, as postgres.
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
        wait_for_port(&mut bouncer, pgbouncer_port, Duration::from_secs(15));

        // Redis from the rendered config (it includes the auth file), as root.
        std::fs::create_dir_all(tmp.path().join("state/redis-master")).unwrap();
        let mut redis = spawn(
            "redis-master",
            "redis-server",
            &[generated.join("redis-master/redis.conf").to_str().unwrap()],
            &[],
            &tmp.path().join("redis.log"),
            None,
        );
        wait_for_port(&mut redis, redis_port, Duration::from_secs(10));
        let failover = wiring.sentinels.then(|| {
            let password = &secrets["redis"];
            start_failover(
                tmp.path(),
                &generated,
                password,
                replica_port,
                sentinel_port,
            )
        });

        // RabbitMQ: the rendered topology and the deploy-time users into a fresh vhost.
        let _ = run("rabbitmqctl", &["-q", "delete_vhost", &vhost], &[]);
        let topology = generated.join("rabbitmq/definitions.json");
        let users = tmp.path().join("secrets/rabbitmq-users.json");
        for file in [&topology, &users] {
            let (ok, out) = run_with_stdin(
                "rabbitmqctl",
                &["import_definitions", "--format", "json"],
                &std::fs::read(file).unwrap(),
            );
            assert!(ok, "import of {} failed: {out}", file.display());
        }
        eventually("the imported vhost", Duration::from_secs(30), || {
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
            let declared = model.stack.services["rabbitmq"]
                .rabbitmq
                .as_ref()
                .map(|r| r.queues.iter().all(|q| queues.contains(q.name.as_str())));
            (declared == Some(true) && perms.contains("tg_gateway")).then_some(())
        });

        let stack = TestStack {
            tmp,
            name: name.into(),
            database,
            vhost,
            gateway_port,
            redis_port,
            overlay,
            secrets,
            env,
            model,
            bouncer,
            redis,
            postgres_proxy,
            rabbitmq_proxy,
            failover,
            _scratch: scratch,
        };
        let (ok, out) = stack.gateway(&["migrate"]);
        assert!(ok, "migrate failed: {out}");
        assert!(out.contains("001_schema applied"), "{out}");
        let (ok, out) = stack.gateway(&["migrate"]);
        assert!(ok, "second migrate failed: {out}");
        assert!(
            out.contains("001_schema re-applied (already recorded)"),
            "{out}"
        );
        stack
    }

    pub fn model_arg(&self) -> String {
        format!(
            "{},{}",
            root().join("stack.toml").display(),
            self.overlay.display()
        )
    }

    /// Runs `tg-gateway ARGS` against this stack to completion.
    pub fn gateway(&self, args: &[&str]) -> (bool, String) {
        let model = self.model_arg();
        let mut all = vec!["--model", model.as_str()];
        all.extend_from_slice(args);
        run(BINARY, &all, &self.env)
    }

    /// Starts `tg-gateway ARGS` in the background.
    pub fn spawn_gateway(&self, args: &[&str], log: &str) -> Daemon {
        let model = self.model_arg();
        let mut all = vec!["--model", model.as_str()];
        all.extend_from_slice(args);
        spawn(
            "tg-gateway",
            BINARY,
            &all,
            &self.env,
            &self.tmp.path().join(log),
            None,
        )
    }

    pub fn sql(&self, sql: &str) -> String {
        psql(&self.database, sql)
    }

    pub fn count(&self, sql: &str) -> i64 {
        self.sql(sql)
            .parse()
            .unwrap_or_else(|_| panic!("not a count: {sql}"))
    }

    /// Everything published to a queue so far (consumed).
    pub fn drain_queue(&self, queue: &str) -> Vec<Delivered> {
        let password = self.secrets["rabbitmq_gateway"].clone();
        let uri = format!(
            "amqp://tg_gateway:{}@127.0.0.1:5672/{}",
            tg_gateway::config::percent_encode(&password),
            tg_gateway::config::percent_encode(&self.vhost)
        );
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        runtime.block_on(async {
            use lapin::options::BasicGetOptions;
            let connection =
                lapin::Connection::connect(&uri, lapin::ConnectionProperties::default())
                    .await
                    .expect("connect to rabbitmq as tg_gateway");
            let channel = connection.create_channel().await.unwrap();
            let mut out = Vec::new();
            while let Some(message) = channel
                .basic_get(queue.into(), BasicGetOptions { no_ack: true })
                .await
                .expect("basic.get")
            {
                let delivery = message.delivery;
                let payload: serde_json::Value =
                    serde_json::from_slice(&delivery.data).expect("JSON payload");
                out.push(Delivered {
                    routing_key: delivery.routing_key.to_string(),
                    outbox_id: delivery
                        .properties
                        .message_id()
                        .as_ref()
                        .and_then(|id| id.as_str().parse().ok())
                        .unwrap_or(-1),
                    persistent: *delivery.properties.delivery_mode() == Some(2),
                    payload,
                });
            }
            let _ = connection.close(0, "done".into()).await;
            out
        })
    }

    /// Writes `name` in the test's directory: `per_channel` new messages per model channel,
    /// every `dup_every`-th repeated (0: none). Returns its path and the distinct messages.
    pub fn replay_file(&self, name: &str, per_channel: i64, dup_every: usize) -> (PathBuf, i64) {
        let file = self.tmp.path().join(name);
        write_lines(&file, &replay_lines(per_channel, dup_every));
        (file, per_channel * CHANNELS.len() as i64)
    }

    /// Starts `tg-gateway replay --drain-timeout DRAIN FILE`, serving /health and /metrics
    /// while it runs when `serve`; logs to gateway.log.
    pub fn spawn_replay(&self, file: &Path, drain: &str, serve: bool) -> Daemon {
        let file = file.to_str().expect("a UTF-8 path");
        let mut args = vec!["replay", "--drain-timeout", drain, file];
        if serve {
            args.insert(1, "--serve");
        }
        self.spawn_gateway(&args, "gateway.log")
    }

    /// Waits until /health answers with a body containing `needle`: (status, body).
    pub fn wait_health(&self, what: &str, needle: &str, timeout: Duration) -> (u16, String) {
        eventually(what, timeout, || {
            self.http_get("/health")
                .filter(|(_, body)| body.contains(needle))
        })
    }

    /// Waits (60 s at most) until more than `n` outbox rows are published by `gateway`.
    pub fn wait_published_over(&self, gateway: &mut Daemon, n: i64) {
        let sql = "SELECT count(*) FROM telegram.outbox WHERE published_at IS NOT NULL";
        self.wait_count_over(gateway, "some messages published", sql, n);
    }

    /// Waits (60 s at most) until more than `n` messages are stored by `gateway`: a replay
    /// is under way.
    pub fn wait_stored_over(&self, gateway: &mut Daemon, n: i64) {
        let sql = "SELECT count(*) FROM telegram.messages";
        self.wait_count_over(gateway, "some messages stored", sql, n);
    }

    /// Waits (60 s at most) until `sql` counts more than `n`; fails at once, with the
    /// gateway's log, when the gateway exits first, and with its log on the timeout too.
    fn wait_count_over(&self, gateway: &mut Daemon, what: &str, sql: &str, n: i64) {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if self.count(sql) > n {
                return;
            }
            if let Ok(Some(status)) = gateway.child.try_wait() {
                panic!(
                    "the gateway exited ({status}) before {what}:\n{}",
                    gateway.log_text()
                );
            }
            assert!(
                Instant::now() < deadline,
                "timed out after 60 s waiting for {what} (count {}):\n{}",
                self.count(sql),
                gateway.log_text()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// The gateway's `batch_size`: the most a fault may make it publish twice.
    pub fn batch_size(&self) -> i64 {
        let settings = self.model.stack.services["tg-gateway"].gateway.as_ref();
        i64::from(settings.expect("[services.tg-gateway.gateway]").batch_size)
    }

    /// GET on the gateway's own listener: (status, body).
    pub fn http_get(&self, path: &str) -> Option<(u16, String)> {
        testkit::http_request(self.gateway_port, "GET", path, &[], Duration::from_secs(5))
    }
}

impl Drop for TestStack {
    fn drop(&mut self) {
        let _ = run("rabbitmqctl", &["-q", "delete_vhost", &self.vhost], &[]);
        // PgBouncer goes first; the scratch field then drops the database.
        self.bouncer.kill();
    }
}

/// Renders the model. The test runs the data services natively, which the model allows
/// only for the gateway and API (systemd units are written for those alone): those unit
/// outputs are replaced by empty templates, every other file is the real rendering.
/// The replica and three Sentinels from the rendered configs; returns once the replica
/// holds the master's data and the Sentinels know it and each other (a failover can
/// happen from then on).
fn start_failover(
    tmp: &Path,
    generated: &Path,
    password: &str,
    replica_port: u16,
    sentinel_port: u16,
) -> Failover {
    std::fs::create_dir_all(tmp.join("state/redis-replica")).unwrap();
    let mut replica = spawn(
        "redis-replica",
        "redis-server",
        &[generated.join("redis-replica/redis.conf").to_str().unwrap()],
        &[],
        &tmp.join("replica.log"),
        None,
    );
    wait_for_port(&mut replica, replica_port, Duration::from_secs(10));
    // The first full sync waits for Redis's diskless-sync delay (5 s).
    eventually("the replica to sync", Duration::from_secs(30), || {
        let port = replica_port.to_string();
        let args = [
            "-p",
            &port,
            "-a",
            password,
            "--no-auth-warning",
            "info",
            "replication",
        ];
        let (_, out) = run("redis-cli", &args, &[]);
        out.contains("master_link_status:up").then_some(())
    });
    let sentinels: Vec<Daemon> = (1..=3u16)
        .map(|i| {
            testkit::start_sentinel(
                &format!("sentinel-{i}"),
                &generated.join(format!("sentinel/sentinel-{i}.conf")),
                &tmp.join("secrets/sentinel-auth.conf"),
                &tmp.join(format!("state/sentinel-{i}/sentinel.conf")),
                sentinel_port + i - 1,
                &tmp.join(format!("sentinel-{i}.log")),
            )
        })
        .collect();
    eventually(
        "the Sentinels to know the replica and each other",
        Duration::from_secs(30),
        || {
            let (_, out) = run(
                "redis-cli",
                &[
                    "-p",
                    &sentinel_port.to_string(),
                    "sentinel",
                    "master",
                    "mymaster",
                ],
                &[],
            );
            let lines: Vec<&str> = out.lines().collect();
            let field = |name: &str| {
                let at = lines.iter().position(|line| *line == name)?;
                lines.get(at + 1).copied()
            };
            (field("num-slaves") == Some("1") && field("num-other-sentinels") == Some("2"))
                .then_some(())
        },
    );
    Failover {
        replica,
        replica_port,
        sentinel_port,
        sentinels,
    }
}

fn render_data_layer(model: &Model, tmp: &Path) -> tgstack::tree::Tree {
    let findings = match render::render(model, None) {
        Ok(tree) => return tree,
        Err(findings) => findings,
    };
    let only_units = findings
        .iter()
        .all(|f| f.message.starts_with("cannot render systemd/"));
    assert!(
        only_units,
        "render failed:\n{}",
        tgstack::report::human(&findings)
    );
    let templates = tmp.join("templates");
    copy_dir(&root().join("templates"), &templates);
    for entry in std::fs::read_dir(templates.join("systemd")).unwrap() {
        std::fs::write(entry.unwrap().path(), "").unwrap();
    }
    render::render(model, Some(&templates))
        .unwrap_or_else(|f| panic!("render failed:\n{}", tgstack::report::human(&f)))
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target).unwrap();
        }
    }
}

/// One message taken from a queue.
#[derive(Debug, Clone)]
pub struct Delivered {
    pub routing_key: String,
    pub outbox_id: i64,
    pub persistent: bool,
    pub payload: serde_json::Value,
}

impl Delivered {
    pub fn key(&self) -> (String, i64, i64) {
        (
            self.payload["event"]
                .as_str()
                .unwrap_or_default()
                .to_string(),
            self.payload["channel_id"].as_i64().unwrap_or_default(),
            self.payload["message_id"].as_i64().unwrap_or_default(),
        )
    }
}

/// Counts of each (event, channel, message) delivered.
pub fn tally(delivered: &[Delivered]) -> HashMap<(String, i64, i64), usize> {
    let mut counts = HashMap::new();
    for d in delivered {
        *counts.entry(d.key()).or_default() += 1;
    }
    counts
}

/// Channels of the root model.
pub const CHANNELS: [i64; 3] = [-1001234567890, -1001234567891, -1001234567892];

/// A deterministic replay file: `per_channel` messages per channel, shuffled, with every
/// `dup_every`-th message repeated later in the file.
pub fn replay_lines(per_channel: i64, dup_every: usize) -> Vec<String> {
    let mut lines = Vec::new();
    for channel in CHANNELS {
        for id in 1..=per_channel {
            lines.push(new_message(channel, id));
        }
    }
    // Deterministic shuffle (LCG), so arrival order is not message order.
    let mut state: u64 = 0x2545_f491_4f6c_dd1d;
    for i in (1..lines.len()).rev() {
        state = state
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        let j = (state >> 33) as usize % (i + 1);
        lines.swap(i, j);
    }
    if dup_every > 0 {
        let dups: Vec<String> = lines.iter().step_by(dup_every).cloned().collect();
        lines.extend(dups);
    }
    lines
}

pub fn new_message(channel: i64, id: i64) -> String {
    // posted_at is a deterministic function of the id: Telegram's date is part of the key.
    let seconds = 1_767_225_600 + id;
    let posted = chrono::DateTime::from_timestamp(seconds, 0)
        .unwrap()
        .to_rfc3339();
    serde_json::json!({
        "kind": "new",
        "channel_id": channel,
        "message_id": id,
        "posted_at": posted,
        "text": format!("message {id} of {channel}"),
        "sender_id": 42,
        "raw": {"id": id, "views": id * 3},
    })
    .to_string()
}

pub fn write_lines(path: &Path, lines: &[String]) {
    let mut text = lines.join("\n");
    text.push('\n');
    std::fs::write(path, text).unwrap();
}
