//! End-to-end: the whole rendered stack on a real Docker engine, the native gateway under
//! a real systemd. One bounded scenario, stages named in the output:
//!
//! images -> render (with secrets) -> start (start.sh from nothing) -> migrate (again:
//! idempotent) -> messages -> native (systemd) -> prometheus -> failover -> backup
//! (backup.sh) -> stop (stop.sh) -> start (start.sh from stopped) -> health (health.sh).
//!
//! Everything runs from the images of `deploy/e2e/images.sh` (stand-ins for the pinned
//! upstream images, see deploy/e2e/README.md) and the rendered files of
//! `stack.toml + deploy/e2e/overlay.toml + a run overlay` (unique project name, temp
//! secrets dir, the stand-in images). The test reaches containers only through ports
//! published on 127.0.0.1; a Drop guard removes every container, network and volume of the
//! run's compose project (and the systemd container) by ID, also when a stage fails.
//! Needs Docker Engine, docker-compose and debootstrap: `bash scripts/test-env.sh` installs them.

use std::collections::BTreeMap;
use std::io::Read as _;
use std::net::{TcpListener, TcpStream};
use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, bail, ensure};

const BINARY: &str = env!("CARGO_BIN_EXE_tg-gateway");
const ROOT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/..");
/// `systemd-analyze security` exposure of the rendered unit, as the README states it.
const SECURITY_EXPOSURE: &str = "1.2";
/// Ports of deploy/e2e/overlay.toml.
const PGBOUNCER: u16 = 28434;
const RABBITMQ: u16 = 28672;
const PROMETHEUS: u16 = 28090;
const GATEWAY_NATIVE: &str = "172.17.0.1:28007";
/// The alert the failover stage waits for (its `for` comes from the effective model).
const REDIS_DOWN: &str = "RedisDown";

pub(crate) fn root() -> PathBuf {
    Path::new(ROOT).canonicalize().expect("workspace root")
}

pub(crate) fn log(message: impl AsRef<str>) {
    eprintln!("e2e: {}", message.as_ref());
}

/// Runs a command; error with its stderr tail unless it exits 0.
pub(crate) fn run(command: &mut Command) -> Result<String> {
    let output = output(command)?;
    if !output.status.success() {
        bail!(
            "{:?} failed ({}):\n{}{}",
            command,
            output.status,
            tail(&String::from_utf8_lossy(&output.stdout), 20),
            tail(&String::from_utf8_lossy(&output.stderr), 30)
        );
    }
    Ok(String::from_utf8_lossy(&output.stdout).into_owned())
}

pub(crate) fn output(command: &mut Command) -> Result<Output> {
    command
        .stdin(Stdio::null())
        .output()
        .with_context(|| format!("cannot run {command:?}"))
}

pub(crate) fn tail(text: &str, lines: usize) -> String {
    let all: Vec<&str> = text.lines().collect();
    let mut out = all[all.len().saturating_sub(lines)..].join("\n");
    if !out.is_empty() {
        out.push('\n');
    }
    out
}

pub(crate) fn docker(args: &[&str]) -> Result<String> {
    run(Command::new("docker").args(args))
}

/// Polls `check` every `every` until it returns Some or `limit` passes.
pub(crate) fn wait_for<T>(
    what: &str,
    limit: Duration,
    every: Duration,
    mut check: impl FnMut() -> Result<Option<T>>,
) -> Result<T> {
    let start = Instant::now();
    let mut last = String::new();
    loop {
        match check() {
            Ok(Some(value)) => return Ok(value),
            Ok(None) => {}
            Err(error) => last = format!("{error:#}"),
        }
        if start.elapsed() > limit {
            bail!("{what}: not within {limit:?} (last error: {last})");
        }
        std::thread::sleep(every);
    }
}

fn http_get(address: &str, path: &str) -> Result<(u16, String)> {
    use std::io::Write as _;
    let mut stream = TcpStream::connect_timeout(&address.parse()?, Duration::from_secs(5))?;
    stream.set_read_timeout(Some(Duration::from_secs(10)))?;
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: {address}\r\nConnection: close\r\n\r\n"
    )?;
    let mut response = Vec::new();
    stream.read_to_end(&mut response)?;
    let text = String::from_utf8_lossy(&response).into_owned();
    let status = text
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| anyhow!("no HTTP status from {address}{path}"))?;
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let body = if head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked")
    {
        dechunk(body)
    } else {
        body.to_string()
    };
    Ok((status, body))
}

fn dechunk(mut body: &str) -> String {
    let mut out = String::new();
    while let Some((size, rest)) = body.split_once("\r\n") {
        let Ok(size) = usize::from_str_radix(size.trim(), 16) else {
            break;
        };
        if size == 0 || rest.len() < size {
            break;
        }
        out.push_str(&rest[..size]);
        body = rest[size..].trim_start_matches("\r\n");
    }
    out
}

fn prometheus(query_path: &str) -> Result<serde_json::Value> {
    let (status, body) = http_get(&format!("127.0.0.1:{PROMETHEUS}"), query_path)?;
    ensure!(
        status == 200,
        "Prometheus {query_path}: HTTP {status}: {body}"
    );
    Ok(serde_json::from_str(&body)?)
}

/// A TCP sink on 127.0.0.1 standing in for Telegram's data centres: it accepts and never
/// answers, so `tg-gateway run` waits for Telegram without any traffic leaving the host.
struct TelegramSink {
    port: u16,
    stop: Arc<AtomicBool>,
}

impl TelegramSink {
    fn start() -> Result<TelegramSink> {
        let listener = TcpListener::bind("127.0.0.1:0")?;
        listener.set_nonblocking(true)?;
        let port = listener.local_addr()?.port();
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        std::thread::spawn(move || {
            let mut held = Vec::new();
            while !flag.load(Ordering::Relaxed) {
                if let Ok((stream, _)) = listener.accept() {
                    held.push(stream);
                }
                std::thread::sleep(Duration::from_millis(100));
            }
        });
        Ok(TelegramSink { port, stop })
    }
}

impl Drop for TelegramSink {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

/// Everything of one run; dropping it removes what the run created in Docker.
struct Stack {
    project: String,
    /// A private copy of the tg-gateway binary taken at the start (a shared target dir
    /// may be rebuilt by another checkout while the test runs).
    binary: PathBuf,
    dir: PathBuf,
    generated: PathBuf,
    secrets: PathBuf,
    images: BTreeMap<String, String>,
    secret_values: BTreeMap<String, String>,
    systemd: Option<String>,
    /// Stands for `/` of the native host: the native service's state directory lives in
    /// `state_root/var/lib/...`, bind-mounted into the systemd container (what backup.sh
    /// reads through TGSTACK_STATE_ROOT).
    state_root: PathBuf,
    /// Compose service -> the services it depends on (stop order is checked against it).
    depends_on: BTreeMap<String, Vec<String>>,
    /// `for` of the RedisDown alert in the effective model.
    redis_down_for: Duration,
    timings: Vec<(String, Duration)>,
    _sink: Option<TelegramSink>,
    _tmp: tempfile::TempDir,
}

impl Drop for Stack {
    fn drop(&mut self) {
        let label = format!("label=com.docker.compose.project={}", self.project);
        let mut containers: Vec<String> = list(&["ps", "-aq", "--filter", &label]);
        containers.extend(self.systemd.take());
        for id in &containers {
            let _ = output(Command::new("docker").args(["rm", "-f", "-v", id]));
        }
        for id in list(&["network", "ls", "-q", "--filter", &label]) {
            let _ = output(Command::new("docker").args(["network", "rm", &id]));
        }
        for name in list(&["volume", "ls", "-q", "--filter", &label]) {
            let _ = output(Command::new("docker").args(["volume", "rm", "-f", &name]));
        }
        log(format!(
            "teardown: removed {} containers of {}",
            containers.len(),
            self.project
        ));
    }
}

pub(crate) fn list(args: &[&str]) -> Vec<String> {
    docker(args)
        .map(|out| out.split_whitespace().map(String::from).collect())
        .unwrap_or_default()
}

impl Stack {
    /// The environment of the rendered scripts: the compose-v1 shim first on PATH.
    fn script(&self, name: &str, args: &[&str]) -> Command {
        let shim = root().join("deploy/e2e/bin");
        let mut command = Command::new("bash");
        command
            .arg(self.generated.join("scripts").join(name))
            .args(args)
            .env(
                "PATH",
                format!(
                    "{}:{}",
                    shim.display(),
                    std::env::var("PATH").unwrap_or_default()
                ),
            )
            .env("TGSTACK_DIR", &self.generated)
            .env("TGSTACK_SECRETS_DIR", &self.secrets)
            .env("TGSTACK_BACKUP_DIR", self.dir.join("backups"))
            .env("TGSTACK_STATE_ROOT", &self.state_root)
            .env("TGSTACK_SYSTEMCTL", shim.join("systemctl-in-container"))
            .env(
                "TGSTACK_E2E_SYSTEMD_CONTAINER",
                self.systemd.clone().unwrap_or_default(),
            );
        command
    }

    /// Container IDs of the project by compose service name.
    fn containers(&self) -> Result<BTreeMap<String, String>> {
        let out = docker(&[
            "ps",
            "-a",
            "--filter",
            &format!("label=com.docker.compose.project={}", self.project),
            "--format",
            "{{.ID}} {{.Label \"com.docker.compose.service\"}}",
        ])?;
        Ok(out
            .lines()
            .filter_map(|l| l.split_once(' '))
            .map(|(id, service)| (service.to_string(), id.to_string()))
            .collect())
    }

    fn container(&self, service: &str) -> Result<String> {
        self.containers()?
            .remove(service)
            .ok_or_else(|| anyhow!("no container for service {service}"))
    }

    /// Waits until every container is running and healthy (or has no healthcheck); fails
    /// at once on an exited container.
    fn wait_healthy(&self, limit: Duration) -> Result<()> {
        wait_for(
            "every container healthy",
            limit,
            Duration::from_secs(2),
            || {
                let mut pending = Vec::new();
                for (service, id) in self.containers()? {
                    let state = docker(&[
                        "inspect",
                        "-f",
                        "{{.State.Status}} {{if .State.Health}}{{.State.Health.Status}}{{else}}none{{end}}",
                        &id,
                    ])?;
                    match state.trim() {
                        "running healthy" | "running none" => {}
                        "running starting" | "running unhealthy" => pending.push(service),
                        other => bail!("{service} is {other}"),
                    }
                }
                if pending.is_empty() {
                    Ok(Some(()))
                } else {
                    Err(anyhow!("waiting for {}", pending.join(", ")))
                }
            },
        )
    }

    fn secret(&self, env: &str) -> &str {
        &self.secret_values[env]
    }

    /// Prints the last log lines of every container of the run (on a failed stage).
    fn dump_logs(&self) {
        if let Ok(containers) = self.containers() {
            for (service, id) in containers {
                let state = docker(&[
                    "inspect",
                    "-f",
                    "{{.State.Status}} {{if .State.Health}}{{.State.Health.Status}}{{end}}",
                    &id,
                ])
                .unwrap_or_default();
                let logs = output(Command::new("docker").args(["logs", "--tail", "15", &id]))
                    .map(|o| {
                        format!(
                            "{}{}",
                            String::from_utf8_lossy(&o.stdout),
                            String::from_utf8_lossy(&o.stderr)
                        )
                    })
                    .unwrap_or_default();
                eprintln!(
                    "---- {service} ({}) last log lines:\n{}",
                    state.trim(),
                    tail(&logs, 15)
                );
            }
        }
        if let Some(systemd) = &self.systemd {
            let journal = output(Command::new("docker").args([
                "exec",
                systemd,
                "journalctl",
                "-u",
                "tg-gateway.service",
                "-n",
                "20",
                "--no-pager",
            ]))
            .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
            .unwrap_or_default();
            eprintln!("---- tg-gateway.service (systemd) journal:\n{journal}");
        }
    }

    /// Runs one named stage; on failure prints what failed and the container logs.
    fn stage(&mut self, name: &str, body: impl FnOnce(&mut Stack) -> Result<()>) {
        log(format!("== stage {name}"));
        let start = Instant::now();
        if let Err(error) = body(self) {
            eprintln!("e2e: stage {name} FAILED: {error:#}");
            self.dump_logs();
            panic!("stage {name} failed: {error:#}");
        }
        let took = start.elapsed();
        log(format!("== stage {name}: ok ({:.1} s)", took.as_secs_f64()));
        self.timings.push((name.to_string(), took));
    }
}

pub(crate) fn docker_ready() {
    let ok = Command::new("docker")
        .args(["info", "--format", "{{.ServerVersion}}"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    let compose = Command::new("docker-compose")
        .arg("version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    assert!(
        ok && compose,
        "the end-to-end test needs Docker Engine (answering on /var/run/docker.sock), \
         docker-compose and debootstrap: run `bash scripts/test-env.sh` (installs docker.io, \
         docker-compose, debootstrap and starts dockerd)"
    );
}

pub(crate) fn random_secret() -> String {
    let mut bytes = [0u8; 18];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut bytes))
        .expect("/dev/urandom");
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Upstream user ids that must read each secret file (see deploy/e2e/README.md).
const SECRET_OWNERS: &[(&str, u32)] = &[
    ("pgbouncer-userlist.txt", 70),
    ("redis-master-auth.conf", 999),
    ("redis-replica-auth.conf", 999),
    ("rabbitmq-users.json", 100),
];

/// A run's scratch directory, and the suffix (process id and time) that makes the names
/// of what the run creates in Docker unique on the machine.
pub(crate) fn run_scratch(prefix: &str) -> (tempfile::TempDir, String) {
    let tmp = tempfile::Builder::new()
        .prefix(prefix)
        .tempdir()
        .expect("temp dir");
    let stamp = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    (tmp, format!("{}x{}", std::process::id(), stamp % 100_000))
}

fn prepare() -> Stack {
    docker_ready();
    let (tmp, suffix) = run_scratch("tgstack-e2e-");
    let dir = tmp.path().to_path_buf();
    let binary = dir.join("tg-gateway");
    std::fs::copy(BINARY, &binary).expect("copy the tg-gateway binary");
    Stack {
        binary,
        project: format!("tge2e{suffix}"),
        generated: dir.join("generated"),
        secrets: dir.join("secrets"),
        state_root: dir.join("native-root"),
        depends_on: BTreeMap::new(),
        redis_down_for: Duration::ZERO,
        dir,
        images: BTreeMap::new(),
        secret_values: BTreeMap::new(),
        systemd: None,
        timings: Vec::new(),
        _sink: None,
        _tmp: tmp,
    }
}

fn stage_images(s: &mut Stack) -> Result<()> {
    let out = run(Command::new("bash")
        .arg(root().join("deploy/e2e/images.sh"))
        .arg("--gateway-binary")
        .arg(&s.binary))?;
    for line in out.lines() {
        if let Some((name, image)) = line.split_once('=') {
            s.images.insert(name.to_string(), image.to_string());
        }
    }
    ensure!(s.images.contains_key("tg-gateway"), "images.sh: {out}");
    Ok(())
}

/// The stand-in image (a name of images.sh's output) of each container service the
/// end-to-end models keep (Grafana and cAdvisor have none).
pub(crate) const STANDIN_IMAGES: &[(&str, &str)] = &[
    ("timescaledb", "timescaledb"),
    ("pgbouncer", "pgbouncer"),
    ("redis-master", "redis"),
    ("redis-replica", "redis"),
    ("sentinel", "redis"),
    ("rabbitmq", "rabbitmq"),
    ("gateway-api", "tg-gateway"),
    ("prometheus", "prometheus"),
    ("postgres-exporter", "postgres-exporter"),
    ("redis-exporter", "redis-exporter"),
    ("pgbouncer-exporter", "pgbouncer-exporter"),
    ("node-exporter", "node-exporter"),
];

fn stage_render(s: &mut Stack) -> Result<()> {
    let services = STANDIN_IMAGES.iter().copied();
    let mut overlay = format!(
        "name = \"{}\"\n\n[deploy]\nsecrets_dir = \"{}\"\n",
        s.project,
        s.secrets.display()
    );
    for (service, image) in services {
        overlay.push_str(&format!(
            "\n[services.{service}]\nimage = \"{}\"\n",
            s.images[image]
        ));
    }
    let run_overlay = s.dir.join("run-overlay.toml");
    std::fs::write(&run_overlay, overlay)?;
    let files = vec![
        root().join("stack.toml"),
        root().join("deploy/e2e/overlay.toml"),
        run_overlay,
    ];
    let model = tgstack::model::load_files(&files).map_err(|f| {
        anyhow!(
            "model: {:?}",
            f.iter().map(|f| &f.message).collect::<Vec<_>>()
        )
    })?;
    // This checkout's templates, not the embedded ones: a target dir shared by several
    // checkouts embeds the templates of whichever checkout ran the build script last.
    let templates = root().join("templates");
    let rendered = tgstack::render(&model, Some(&templates)).map_err(|f| {
        anyhow!(
            "render: {:?}",
            f.iter().map(|f| &f.message).collect::<Vec<_>>()
        )
    })?;
    // `render --with-secrets`: every secret from "its environment variable" (here a map).
    for secret in model.stack.secrets.values() {
        s.secret_values.insert(secret.env.clone(), random_secret());
    }
    let values = s.secret_values.clone();
    let lookup = move |var: &str| values.get(var).cloned();
    let resolved = tgstack::render::secrets::resolve(&model.stack, &lookup).map_err(|f| {
        anyhow!(
            "secrets: {:?}",
            f.iter().map(|f| &f.message).collect::<Vec<_>>()
        )
    })?;
    s.depends_on = tgstack::render::compose::compose_services(&model.stack)
        .into_iter()
        .map(|c| (c.name, c.depends_on.into_keys().collect()))
        .collect();
    s.redis_down_for = model
        .stack
        .alerts
        .iter()
        .find(|a| a.name == REDIS_DOWN)
        .and_then(|a| a.for_)
        .map(|d| Duration::from_millis(d.millis()))
        .ok_or_else(|| anyhow!("no {REDIS_DOWN} alert with a `for` in the model"))?;
    let files = tgstack::render::secrets::files(&model, &resolved);
    tgstack::render::secrets::write(&s.secrets, &files)?;
    tgstack::render::write::write_tree(&rendered.tree, &s.generated)?;
    // Deploy step the renderer leaves to the operator: the containers that read a secret
    // file run as their image's user, and the files are 0600.
    for (file, uid) in SECRET_OWNERS {
        std::os::unix::fs::chown(s.secrets.join(file), Some(*uid), None)
            .with_context(|| format!("chown {file}"))?;
    }
    log(format!(
        "rendered {} files into {}, {} secret files into {}",
        rendered.tree.len(),
        s.generated.display(),
        files.len(),
        s.secrets.display()
    ));
    Ok(())
}

/// start.sh on nothing (no container, empty volumes): the database first, the migrations
/// (they create the roles the API logs in with), then every container healthy. No systemd
/// yet: the native unit is installed by the native stage, so systemctl is `true` here.
fn stage_start_fresh(s: &mut Stack) -> Result<()> {
    let start = Instant::now();
    let out = output(s.script("start.sh", &[]).env("TGSTACK_SYSTEMCTL", "true"))?;
    let log_text = String::from_utf8_lossy(&out.stderr).into_owned();
    ensure!(
        out.status.success(),
        "start.sh from nothing failed ({}):\n{}",
        out.status,
        tail(&log_text, 30)
    );
    for line in log_text.lines().filter(|l| l.starts_with("20")) {
        log(format!("start.sh: {line}"));
    }
    s.wait_healthy(Duration::from_secs(30))?;
    let healthy = start.elapsed();
    log(format!(
        "start.sh from nothing -> every container healthy: {:.1} s",
        healthy.as_secs_f64()
    ));
    Ok(())
}

/// migrate.sh again, with its pre-migration database backup: changes nothing.
fn stage_migrate(s: &mut Stack) -> Result<()> {
    let out = output(&mut s.script("migrate.sh", &[]))?;
    let log_text = String::from_utf8_lossy(&out.stderr).into_owned();
    ensure!(
        out.status.success(),
        "migrate.sh failed ({}):\n{}",
        out.status,
        tail(&log_text, 30)
    );
    log(tail(&log_text, 2).trim());
    let dumps = std::fs::read_dir(s.dir.join("backups"))?
        .filter_map(|e| e.ok())
        .filter(|e| e.path().join("postgres.dump").is_file())
        .count();
    ensure!(
        dumps == 1,
        "migrate.sh left {dumps} database backups, not 1"
    );
    s.wait_healthy(Duration::from_secs(60))?;
    Ok(())
}

pub(crate) fn event_lines(first: i64, count: i64) -> String {
    let channels = [-1001234567890_i64, -1001234567891, -1001234567892];
    let mut lines = String::new();
    for id in first..first + count {
        let channel = channels[(id % 3) as usize];
        let line = serde_json::json!({
            "kind": "new", "channel_id": channel, "message_id": id,
            "posted_at": "2026-01-02T03:04:05Z", "text": format!("e2e message {id}"),
        })
        .to_string();
        // Every message twice: the duplicate must be dropped.
        lines.push_str(&format!("{line}\n{line}\n"));
    }
    lines
}

/// `tg-gateway replay` inside the gateway-api container, as the (containerised) gateway
/// service: the model + an overlay that deploys tg-gateway in a container.
fn replay_in_container(s: &Stack, name: &str, lines: &str) -> Result<String> {
    let api = s.container("gateway-api")?;
    let events = s.dir.join(format!("{name}.jsonl"));
    std::fs::write(&events, lines)?;
    let overlay = s.dir.join("replay-overlay.toml");
    std::fs::write(
        &overlay,
        "[services.tg-gateway]\ndeploy = \"container\"\nimage = \"tg-gateway\"\nnetworks = [\"data\"]\n",
    )?;
    docker(&[
        "cp",
        &overlay.display().to_string(),
        &format!("{api}:/tmp/replay-overlay.toml"),
    ])?;
    docker(&[
        "cp",
        &events.display().to_string(),
        &format!("{api}:/tmp/{name}.jsonl"),
    ])?;
    let mut command = Command::new("docker");
    command.args(["exec"]);
    for var in [
        "TG_DB_APP_PASSWORD",
        "TG_REDIS_PASSWORD",
        "TG_RABBITMQ_GATEWAY_PASSWORD",
        "TG_TELEGRAM_API_HASH",
    ] {
        command.args(["-e", &format!("{var}={}", s.secret(var))]);
    }
    command.args([
        "-e",
        "TGSTACK_MODEL=/etc/tgstack/stack.toml,/tmp/replay-overlay.toml",
        "-e",
        "TGSTACK_SERVICE=tg-gateway",
        &api,
        "tg-gateway",
        "replay",
        &format!("/tmp/{name}.jsonl"),
    ]);
    let out = run(&mut command)?;
    ensure!(
        out.contains("0 events left in the outbox"),
        "replay left events in the outbox: {out}"
    );
    Ok(out)
}

pub(crate) fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

/// Rows per (channel, message) in the ids range, read through PgBouncer's published port.
fn stored_counts(s: &Stack, first: i64, count: i64) -> Result<BTreeMap<(i64, i64), i64>> {
    stored_counts_at(PGBOUNCER, s.secret("TG_DB_APP_PASSWORD"), first, count)
}

/// Rows per (channel, message) in the ids range, as `tg_app` through PgBouncer at `port`
/// of 127.0.0.1.
pub(crate) fn stored_counts_at(
    port: u16,
    password: &str,
    first: i64,
    count: i64,
) -> Result<BTreeMap<(i64, i64), i64>> {
    let password = password.to_string();
    runtime().block_on(async move {
        let mut config = tokio_postgres::Config::new();
        config
            .host("127.0.0.1")
            .port(port)
            .user("tg_app")
            .password(password)
            .dbname("telegram")
            .connect_timeout(Duration::from_secs(10));
        let (client, connection) = config.connect(tokio_postgres::NoTls).await?;
        tokio::spawn(connection);
        let rows = client
            .query_typed(
                "SELECT channel_id, message_id, count(*) FROM telegram.messages \
                 WHERE message_id >= $1 AND message_id < $2 GROUP BY 1, 2",
                &[
                    (&first, tokio_postgres::types::Type::INT8),
                    (&(first + count), tokio_postgres::types::Type::INT8),
                ],
            )
            .await?;
        Ok(rows
            .iter()
            .map(|r| ((r.get(0), r.get(1)), r.get(2)))
            .collect())
    })
}

/// Drains `queue` through RabbitMQ's published port; counts per (channel, message).
fn consumed_counts(s: &Stack, queue: &str) -> Result<BTreeMap<(i64, i64), i64>> {
    consumed_counts_at(RABBITMQ, s.secret("TG_RABBITMQ_ADMIN_PASSWORD"), queue)
}

/// Drains `queue` as `admin` through RabbitMQ at `port` of 127.0.0.1; counts per
/// (channel, message).
pub(crate) fn consumed_counts_at(
    port: u16,
    admin_password: &str,
    queue: &str,
) -> Result<BTreeMap<(i64, i64), i64>> {
    use lapin::options::BasicGetOptions;
    let uri = format!("amqp://admin:{admin_password}@127.0.0.1:{port}/telegram");
    let queue = queue.to_string();
    runtime().block_on(async move {
        let connection =
            lapin::Connection::connect(&uri, lapin::ConnectionProperties::default()).await?;
        let channel = connection.create_channel().await?;
        let mut counts = BTreeMap::new();
        for _ in 0..100_000 {
            let Some(message) = channel
                .basic_get(queue.as_str().into(), BasicGetOptions { no_ack: true })
                .await?
            else {
                break;
            };
            let body: serde_json::Value = serde_json::from_slice(&message.delivery.data)
                .with_context(|| "message body is not JSON")?;
            let find = |key: &str| {
                body.get(key)
                    .or_else(|| body.get("message").and_then(|m| m.get(key)))
                    .and_then(serde_json::Value::as_i64)
            };
            let (Some(channel_id), Some(message_id)) = (find("channel_id"), find("message_id"))
            else {
                bail!("message without channel_id/message_id: {body}");
            };
            *counts.entry((channel_id, message_id)).or_insert(0) += 1;
        }
        let _ = connection.close(0, "done".into()).await;
        Ok(counts)
    })
}

/// How many times each message may reach each queue.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Publishers {
    /// One gateway process publishes: exactly once.
    One,
    /// Two gateway processes share the outbox (the native unit drains rows left
    /// unpublished across two probes while a replay publishes its own): at least once.
    Two,
}

fn assert_once(s: &Stack, first: i64, count: i64, publishers: Publishers) -> Result<()> {
    let stored = wait_for(
        "rows stored",
        Duration::from_secs(30),
        Duration::from_secs(1),
        || {
            let stored = stored_counts(s, first, count)?;
            Ok((stored.len() as i64 == count).then_some(stored))
        },
    )?;
    ensure!(
        stored.values().all(|n| *n == 1),
        "a message stored more than once: {stored:?}"
    );
    for queue in ["telegram.signals", "telegram.archive"] {
        let consumed = consumed_counts(s, queue)?;
        let ours: BTreeMap<_, _> = consumed
            .iter()
            .filter(|((_, m), _)| *m >= first && *m < first + count)
            .collect();
        ensure!(
            ours.len() as i64 == count,
            "{queue}: {} of {count} messages published",
            ours.len()
        );
        let repeated = ours.values().filter(|n| ***n > 1).count();
        match publishers {
            Publishers::One => ensure!(
                repeated == 0,
                "{queue}: a message published more than once: {ours:?}"
            ),
            Publishers::Two if repeated > 0 => log(format!(
                "{queue}: {repeated} of {count} published twice (two publishers: at-least-once)"
            )),
            Publishers::Two => {}
        }
    }
    let published = match publishers {
        Publishers::One => "published once",
        Publishers::Two => "published at least once",
    };
    log(format!(
        "{count} messages (each sent twice) stored once (through PgBouncer) and {published} to both queues"
    ));
    Ok(())
}

fn stage_messages(s: &mut Stack) -> Result<()> {
    let lines = event_lines(1000, 30);
    let out = replay_in_container(s, "batch1", &lines)?;
    log(out.trim());
    // The whole file again: everything is a duplicate now.
    replay_in_container(s, "batch1-again", &lines)?;
    // The native unit is not running yet: the replay is the only publisher.
    assert_once(s, 1000, 30, Publishers::One)
}

/// A grammers session whose data centres all point at the sink on 127.0.0.1.
fn seed_session(path: &Path, port: u16) -> Result<()> {
    use grammers_session::Session as _;
    use grammers_session::storages::SqliteSession;
    use grammers_session::types::DcOption;
    runtime().block_on(async move {
        let session = SqliteSession::open(path).await?;
        for id in 1..=5 {
            let option = DcOption {
                id,
                ipv4: std::net::SocketAddrV4::new(std::net::Ipv4Addr::LOCALHOST, port),
                ipv6: std::net::SocketAddrV6::new(std::net::Ipv6Addr::LOCALHOST, port, 0, 0),
                auth_key: None,
            };
            session.set_dc_option(&option).await?;
        }
        Ok::<_, anyhow::Error>(())
    })
}

fn exec(container: &str, args: &[&str]) -> Result<String> {
    let mut all = vec!["exec", container];
    all.extend_from_slice(args);
    docker(&all)
}

fn stage_native(s: &mut Stack) -> Result<()> {
    let sink = TelegramSink::start()?;
    // The native host's /var/lib/tg-gateway, bind-mounted into the systemd container.
    let state = s.state_root.join("var/lib/tg-gateway");
    std::fs::create_dir_all(&state)?;
    seed_session(&state.join("telegram.session"), sink.port)?;
    s._sink = Some(sink);
    let name = format!("{}-systemd", s.project);
    let secrets = s.secrets.display().to_string();
    let generated = s.generated.display().to_string();
    let id = docker(&[
        "run",
        "-d",
        "--name",
        &name,
        "--label",
        &format!("tgstack-e2e={}", s.project),
        "--network",
        "host",
        "--cap-add",
        "SYS_ADMIN",
        "--security-opt",
        "seccomp=unconfined",
        "--tmpfs",
        "/run",
        "--tmpfs",
        "/run/lock",
        "-v",
        "/sys/fs/cgroup:/sys/fs/cgroup:ro",
        "-v",
        &format!("{generated}:/etc/tgstack:ro"),
        "-v",
        &format!("{secrets}:{secrets}:ro"),
        "-v",
        &format!("{}:/usr/local/bin/tg-gateway:ro", s.binary.display()),
        "-v",
        &format!("{}:/var/lib/tg-gateway", state.display()),
        &s.images["systemd"],
    ])?;
    s.systemd = Some(id.trim().to_string());
    let ctr = id.trim().to_string();
    wait_for(
        "systemd running",
        Duration::from_secs(60),
        Duration::from_secs(1),
        || {
            let state = output(Command::new("docker").args([
                "exec",
                &ctr,
                "systemctl",
                "is-system-running",
            ]))?;
            let text = String::from_utf8_lossy(&state.stdout).trim().to_string();
            Ok(matches!(text.as_str(), "running" | "degraded").then_some(()))
        },
    )?;
    // Install as the README says: unit, sysusers, then start.
    exec(
        &ctr,
        &[
            "cp",
            "/etc/tgstack/systemd/tg-gateway.service",
            "/etc/systemd/system/",
        ],
    )?;
    exec(
        &ctr,
        &[
            "install",
            "-D",
            "-m",
            "0644",
            "/etc/tgstack/systemd/tgstack.sysusers.conf",
            "/etc/sysusers.d/tgstack.conf",
        ],
    )?;
    exec(&ctr, &["systemd-sysusers"])?;
    exec(&ctr, &["systemctl", "daemon-reload"])?;
    exec(&ctr, &["systemctl", "start", "tg-gateway.service"])?;
    let (status, body) = wait_for(
        "native gateway /health 200",
        Duration::from_secs(60),
        Duration::from_secs(1),
        || {
            let (status, body) = http_get(GATEWAY_NATIVE, "/health")?;
            Ok((status == 200).then_some((status, body)))
        },
    )?;
    log(format!("native /health: {status} {body}"));
    ensure!(status == 200, "native /health answered {status}");
    // Connected through the published ports, with the secrets of its EnvironmentFile
    // (RabbitMQ is connected on the first publish, Telegram never: the sink holds it).
    wait_for(
        "native gateway dependencies up",
        Duration::from_secs(60),
        Duration::from_secs(1),
        || {
            let (_, body) = http_get(GATEWAY_NATIVE, "/health")?;
            let v: serde_json::Value = serde_json::from_str(&body)?;
            let up = |d: &str| v["dependencies"][d]["up"].as_bool() == Some(true);
            Ok((up("postgres") && up("redis")).then_some(()))
        },
    )?;
    let pid = exec(
        &ctr,
        &["systemctl", "show", "-P", "MainPID", "tg-gateway.service"],
    )?;
    let pid = pid.trim();
    ensure!(pid != "0", "tg-gateway.service has no main process");
    let user = exec(&ctr, &["ps", "-o", "user=", "-p", pid]).unwrap_or_default();
    let user = if user.trim().is_empty() {
        exec(&ctr, &["stat", "-c", "%U", &format!("/proc/{pid}")])?
    } else {
        user
    };
    ensure!(
        user.trim() == "tg-gateway",
        "runs as {user:?}, not tg-gateway"
    );
    let dir = exec(&ctr, &["stat", "-c", "%a %U", "/var/lib/tg-gateway"])?;
    ensure!(dir.trim() == "700 tg-gateway", "state dir is {dir:?}");
    let session = exec(
        &ctr,
        &[
            "stat",
            "-c",
            "%a %U",
            "/var/lib/tg-gateway/telegram.session",
        ],
    )?;
    ensure!(
        session.trim() == "600 tg-gateway",
        "session file is {session:?}"
    );
    let environ = exec(&ctr, &["cat", &format!("/proc/{pid}/environ")])?;
    let names: Vec<&str> = environ
        .split('\0')
        .filter_map(|kv| kv.split_once('=').map(|(k, _)| k))
        .filter(|k| k.starts_with("TG_"))
        .collect();
    ensure!(
        names.contains(&"TG_REDIS_PASSWORD") && names.contains(&"TG_TELEGRAM_API_HASH"),
        "EnvironmentFile not read: TG_ variables {names:?}"
    );
    let security = exec(
        &ctr,
        &[
            "systemd-analyze",
            "security",
            "--no-pager",
            "tg-gateway.service",
        ],
    )?;
    let exposure = security
        .lines()
        .find_map(|l| {
            l.split("Overall exposure level for tg-gateway.service: ")
                .nth(1)
        })
        .and_then(|rest| rest.split_whitespace().next())
        .ok_or_else(|| anyhow!("no exposure level in: {}", tail(&security, 3)))?;
    log(format!(
        "native: active as tg-gateway, state dir 700, session 600, EnvironmentFile read, security exposure {exposure}"
    ));
    ensure!(
        exposure == SECURITY_EXPOSURE,
        "systemd-analyze security: {exposure}, README states {SECURITY_EXPOSURE}"
    );
    Ok(())
}

/// health.sh: every check green, one line per container and two for the native service
/// (unit active, /health where the model says it listens).
fn stage_health(s: &mut Stack) -> Result<()> {
    let out = output(&mut s.script("health.sh", &[]))?;
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    eprint!("{text}");
    let failed: Vec<&str> = text.lines().filter(|l| !l.starts_with("ok")).collect();
    ensure!(
        out.status.success() && failed.is_empty(),
        "health.sh ({}): {failed:?}\n{}",
        out.status,
        tail(&String::from_utf8_lossy(&out.stderr), 10)
    );
    let expected = s.depends_on.len() + 2;
    let ok = text.lines().count();
    ensure!(
        ok == expected,
        "health.sh checked {ok} things, expected {expected} ({} containers + the native unit and its /health)",
        s.depends_on.len()
    );
    ensure!(
        text.contains("ok    tg-gateway /health"),
        "health.sh did not check the native /health"
    );
    Ok(())
}

/// backup.sh: database, Redis dataset, RabbitMQ definitions and the Telegram session,
/// into a 0700 directory of 0600 files with checksums.
fn stage_backup(s: &mut Stack) -> Result<()> {
    let out = output(&mut s.script("backup.sh", &[]))?;
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    ensure!(
        out.status.success(),
        "backup.sh failed ({}):\n{}",
        out.status,
        tail(&stderr, 30)
    );
    let dest = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
    ensure!(dest.is_dir(), "backup.sh printed {dest:?}, not a directory");
    let mode = std::fs::metadata(&dest)?.permissions().mode() & 0o777;
    ensure!(mode == 0o700, "backup dir mode {mode:o}");
    let mut names = Vec::new();
    for entry in std::fs::read_dir(&dest)? {
        let entry = entry?;
        let mode = entry.metadata()?.permissions().mode() & 0o777;
        let name = entry.file_name().to_string_lossy().into_owned();
        ensure!(mode == 0o600, "{name}: mode {mode:o}");
        ensure!(entry.metadata()?.len() > 0, "{name} is empty");
        names.push(name);
    }
    names.sort();
    ensure!(
        names
            == [
                "SHA256SUMS",
                "postgres.dump",
                "rabbitmq-definitions.json",
                "redis-master.rdb",
                "tg-gateway.session"
            ],
        "backup holds {names:?}"
    );
    run(Command::new("sha256sum")
        .args(["--check", "--quiet", "SHA256SUMS"])
        .current_dir(&dest))?;
    // The dump is a pg_dump archive holding the messages table.
    let list = run(Command::new("pg_restore")
        .arg("--list")
        .arg(dest.join("postgres.dump")))?;
    ensure!(
        list.contains("TABLE DATA telegram messages"),
        "postgres.dump has no data of telegram.messages"
    );
    let rdb = std::fs::read(dest.join("redis-master.rdb"))?;
    ensure!(
        rdb.starts_with(b"REDIS"),
        "redis-master.rdb is not an RDB file"
    );
    let definitions: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dest.join("rabbitmq-definitions.json"))?)
            .context("rabbitmq-definitions.json is not JSON")?;
    let names_of = |key: &str| -> Vec<String> {
        definitions[key]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|v| v["name"].as_str().map(String::from))
                    .collect()
            })
            .unwrap_or_default()
    };
    let queues = names_of("queues");
    ensure!(
        ["telegram.signals", "telegram.archive"]
            .iter()
            .all(|q| queues.iter().any(|n| n == q)),
        "definitions lack the queues: {queues:?}"
    );
    let users = names_of("users");
    ensure!(
        users.iter().any(|u| u == "tg_gateway"),
        "definitions lack the users: {users:?}"
    );
    let session = std::fs::read(dest.join("tg-gateway.session"))?;
    ensure!(
        session.starts_with(b"SQLite format 3"),
        "tg-gateway.session is not the SQLite session"
    );
    log(format!(
        "backup in {}: {} (checksums verified)",
        dest.display(),
        names.join(", ")
    ));
    Ok(())
}

/// Container state and the time it stopped, per compose service.
fn container_states(s: &Stack) -> Result<BTreeMap<String, (String, String)>> {
    let mut states = BTreeMap::new();
    for (service, id) in s.containers()? {
        let out = docker(&[
            "inspect",
            "-f",
            "{{.State.Status}} {{.State.FinishedAt}}",
            &id,
        ])?;
        let (status, finished) = out.trim().split_once(' ').unwrap_or((out.trim(), ""));
        states.insert(service, (status.to_string(), finished.to_string()));
    }
    Ok(states)
}

/// stop.sh: the native unit first, then each container after everything that depends on
/// it (checked on the containers' stop times), every container exited, volumes kept.
fn stage_stop(s: &mut Stack) -> Result<()> {
    let out = output(&mut s.script("stop.sh", &[]))?;
    ensure!(
        out.status.success(),
        "stop.sh failed ({}):\n{}",
        out.status,
        tail(&String::from_utf8_lossy(&out.stderr), 30)
    );
    // The unit stopped on SIGTERM by itself (the gateway stops within 5 s even while its
    // Telegram handshake hangs, as here: the sink never answers), not killed at
    // TimeoutStopSec.
    let systemd = s.systemd.clone().unwrap_or_default();
    let show = exec(
        &systemd,
        &[
            "systemctl",
            "show",
            "-P",
            "ActiveState",
            "tg-gateway.service",
        ],
    )?;
    let result = exec(
        &systemd,
        &["systemctl", "show", "-P", "Result", "tg-gateway.service"],
    )?;
    match (show.trim(), result.trim()) {
        ("inactive", "success") => {}
        (state, result) => bail!("tg-gateway.service after stop.sh: {state} ({result})"),
    }
    let states = container_states(s)?;
    let running: Vec<&String> = states
        .iter()
        .filter(|(_, (status, _))| status != "exited")
        .map(|(service, _)| service)
        .collect();
    ensure!(running.is_empty(), "not stopped: {running:?}");
    let finished = |service: &str| -> Result<(String, u32)> {
        let (_, at) = states
            .get(service)
            .ok_or_else(|| anyhow!("no container for {service}"))?;
        stop_time(at)
    };
    for (service, deps) in &s.depends_on {
        for dep in deps {
            ensure!(
                finished(service)? <= finished(dep)?,
                "{dep} stopped before {service}, which depends on it"
            );
        }
    }
    log(format!(
        "stop.sh: unit stopped, {} containers exited in dependency order",
        states.len()
    ));
    Ok(())
}

/// Docker's RFC 3339 UTC time as (seconds part, nanoseconds), ordered like the time:
/// `2026-11-29T08:40:01.123456789Z` -> ("2026-11-29T08:40:01", 123456789).
fn stop_time(text: &str) -> Result<(String, u32)> {
    let text = text
        .strip_suffix('Z')
        .ok_or_else(|| anyhow!("not a UTC time: {text:?}"))?;
    let (seconds, fraction) = text.split_once('.').unwrap_or((text, "0"));
    let nanos: u32 = format!("{fraction:0<9}")[..9].parse()?;
    Ok((seconds.to_string(), nanos))
}

/// start.sh from stopped: the same containers and volumes come back healthy, the native
/// unit active, the stored messages still there.
fn stage_start_stopped(s: &mut Stack) -> Result<()> {
    let before: Vec<String> = s.containers()?.into_values().collect();
    let start = Instant::now();
    let out = output(&mut s.script("start.sh", &[]))?;
    ensure!(
        out.status.success(),
        "start.sh from stopped failed ({}):\n{}",
        out.status,
        tail(&String::from_utf8_lossy(&out.stderr), 30)
    );
    s.wait_healthy(Duration::from_secs(30))?;
    let mut after: Vec<String> = s.containers()?.into_values().collect();
    let mut before = before;
    before.sort();
    after.sort();
    ensure!(before == after, "start.sh replaced containers");
    let (status, _) = wait_for(
        "native gateway /health 200 after start.sh",
        Duration::from_secs(60),
        Duration::from_secs(1),
        || {
            let (status, body) = http_get(GATEWAY_NATIVE, "/health")?;
            Ok((status == 200).then_some((status, body)))
        },
    )?;
    ensure!(status == 200, "native /health: {status}");
    let stored = stored_counts(s, 1000, 30)?;
    ensure!(
        stored.len() == 30 && stored.values().all(|n| *n == 1),
        "messages stored before the stop: {stored:?}"
    );
    let took = start.elapsed();
    log(format!(
        "start.sh from stopped -> healthy, native active, data kept: {:.1} s",
        took.as_secs_f64()
    ));
    Ok(())
}

fn stage_prometheus(s: &mut Stack) -> Result<()> {
    let config = std::fs::read_to_string(s.generated.join("prometheus/prometheus.yml"))?;
    let jobs: Vec<String> = config
        .lines()
        .filter_map(|l| l.trim().strip_prefix("- job_name: "))
        .map(|j| j.trim_matches('"').to_string())
        .collect();
    ensure!(
        !jobs.is_empty(),
        "no scrape jobs in the rendered prometheus.yml"
    );
    wait_for(
        "every scrape target up",
        Duration::from_secs(90),
        Duration::from_secs(2),
        || {
            let targets = prometheus("/api/v1/targets")?;
            let active = targets["data"]["activeTargets"]
                .as_array()
                .cloned()
                .unwrap_or_default();
            let mut down = Vec::new();
            for job in &jobs {
                let t: Vec<_> = active
                    .iter()
                    .filter(|t| t["labels"]["job"] == job.as_str())
                    .collect();
                if t.is_empty() || t.iter().any(|t| t["health"] != "up") {
                    down.push(format!(
                        "{job}: {}",
                        t.first()
                            .map(|t| t["lastError"].to_string())
                            .unwrap_or("no target".into())
                    ));
                }
            }
            if down.is_empty() {
                Ok(Some(()))
            } else {
                Err(anyhow!("down: {}", down.join("; ")))
            }
        },
    )?;
    log(format!("every scrape target up: {}", jobs.join(", ")));
    // Steady state: let the rules evaluate a few times, then nothing fires.
    std::thread::sleep(Duration::from_secs(12));
    let alerts = prometheus("/api/v1/alerts")?;
    let firing: Vec<String> = alerts["data"]["alerts"]
        .as_array()
        .cloned()
        .unwrap_or_default()
        .iter()
        .filter(|a| a["state"] == "firing")
        .map(|a| a["labels"]["alertname"].to_string())
        .collect();
    ensure!(
        firing.is_empty(),
        "alerts firing in steady state: {firing:?}"
    );
    log("no alert firing");
    Ok(())
}

fn alert_state(name: &str) -> Result<Option<String>> {
    let alerts = prometheus("/api/v1/alerts")?;
    Ok(alerts["data"]["alerts"]
        .as_array()
        .cloned()
        .unwrap_or_default()
        .iter()
        .find(|a| a["labels"]["alertname"] == name)
        .and_then(|a| a["state"].as_str().map(String::from)))
}

fn sentinel_master(s: &Stack) -> Result<String> {
    let out = exec(
        &s.container("sentinel-1")?,
        &[
            "redis-cli",
            "-p",
            "26379",
            "sentinel",
            "get-master-addr-by-name",
            "mymaster",
        ],
    )?;
    Ok(out.lines().next().unwrap_or_default().trim().to_string())
}

fn stage_failover(s: &mut Stack) -> Result<()> {
    let model = std::fs::read_to_string(s.generated.join("model/stack.toml"))?;
    let millis = |key: &str| -> Result<u64> {
        let line = model
            .lines()
            .find(|l| l.trim_start().starts_with(&format!("{key} =")))
            .ok_or_else(|| anyhow!("{key} not in the effective model"))?;
        let value = line.split('"').nth(1).unwrap_or_default();
        tgstack::model::units::Duration::parse(value)
            .map(|d| d.millis())
            .map_err(|e| anyhow!("{key} = {value:?}: {e}"))
    };
    let budget = Duration::from_millis(millis("down_after")? + millis("failover_timeout")?);
    let before = sentinel_master(s)?;
    ensure!(
        before == "redis-master",
        "sentinels name {before:?} as master"
    );
    let master = s.container("redis-master")?;
    let start = Instant::now();
    docker(&["kill", &master])?;
    let promoted = wait_for(
        "sentinels promote the replica",
        budget + Duration::from_secs(5),
        Duration::from_millis(250),
        || {
            let now = sentinel_master(s)?;
            Ok((now != before && !now.is_empty()).then_some(now))
        },
    )?;
    let failover = start.elapsed();
    s.timings
        .push(("failover: replica promoted".into(), failover));
    log(format!(
        "failover: sentinels promoted {promoted} in {:.1} s (model budget: down-after + failover-timeout = {:.1} s)",
        failover.as_secs_f64(),
        budget.as_secs_f64()
    ));
    ensure!(
        failover <= budget,
        "failover took {failover:?}, over {budget:?}"
    );
    let role = exec(
        &s.container("redis-replica")?,
        &["sh", "-c", "redis-cli -p 6379 role | head -n1"],
    )?;
    ensure!(role.trim() == "master", "the replica's role is {role:?}");
    // The native gateway (systemd unit, reaching Redis and the Sentinels through published
    // ports) asked the Sentinels, mapped the container name they announce to the replica's
    // published port, and its Redis is up again.
    let (_, health) = wait_for(
        "the native gateway's Redis up on the promoted replica",
        Duration::from_secs(20),
        Duration::from_millis(500),
        || {
            let (status, body) = http_get(GATEWAY_NATIVE, "/health")?;
            Ok(body
                .contains(r#""redis":{"up":true"#)
                .then_some((status, body)))
        },
    )?;
    log(format!(
        "native gateway after the failover: {}",
        health.chars().take(200).collect::<String>()
    ));
    // A gateway in a container (service names) stores batch2 with its dedup keys on the
    // promoted replica: messages keep being stored once, duplicates dropped.
    replay_in_container(s, "batch2", &event_lines(2000, 15))?;
    assert_once(s, 2000, 15, Publishers::Two)?;
    let replica = s.container("redis-replica")?;
    let auth = format!("REDISCLI_AUTH={}", s.secret("TG_REDIS_PASSWORD"));
    for id in 2000..2015_i64 {
        let channel = [-1001234567890_i64, -1001234567891, -1001234567892][(id % 3) as usize];
        let key = format!("tg:dedup:{channel}:{id}");
        let found = docker(&[
            "exec",
            "-e",
            &auth,
            &replica,
            "redis-cli",
            "-p",
            "6379",
            "exists",
            &key,
        ])?;
        ensure!(
            found.trim() == "1",
            "dedup key {key} is not on the promoted replica ({found:?})"
        );
    }
    log("the containerised gateway's dedup keys are on the promoted replica");
    // The alert fires after its `for` (not before), and resolves once the old master is
    // back. Bound: `for` + a minute for scrapes and evaluations on a loaded machine.
    let hold = s.redis_down_for;
    wait_for(
        "RedisDown fires",
        hold + Duration::from_secs(60),
        Duration::from_secs(1),
        || Ok((alert_state(REDIS_DOWN)?.as_deref() == Some("firing")).then_some(())),
    )?;
    let fired = start.elapsed();
    log(format!(
        "RedisDown firing {:.1} s after the kill (its `for`: {:.0} s)",
        fired.as_secs_f64(),
        hold.as_secs_f64()
    ));
    ensure!(
        fired >= hold,
        "RedisDown fired {fired:?} after the kill, before its `for` of {hold:?}"
    );
    s.timings.push(("failover: RedisDown firing".into(), fired));
    docker(&["start", &master])?;
    let back = Instant::now();
    wait_for(
        "RedisDown resolves",
        Duration::from_secs(90),
        Duration::from_secs(1),
        || Ok(alert_state(REDIS_DOWN)?.is_none().then_some(())),
    )?;
    log(format!(
        "RedisDown resolved {:.1} s after the restart",
        back.elapsed().as_secs_f64()
    ));
    Ok(())
}

/// The whole-stack tests take the engine one at a time: each loads the 2-core machine
/// alone, and their stacks never meet.
pub(crate) static ENGINE: std::sync::Mutex<()> = std::sync::Mutex::new(());

#[test]
fn whole_stack_end_to_end() {
    let _engine = ENGINE.lock().unwrap_or_else(|e| e.into_inner());
    let total = Instant::now();
    let mut s = prepare();
    s.stage("images", stage_images);
    s.stage("render", stage_render);
    s.stage("start (start.sh from nothing)", stage_start_fresh);
    s.stage("migrate (migrate.sh again)", stage_migrate);
    s.stage("messages", stage_messages);
    s.stage("native", stage_native);
    s.stage("prometheus", stage_prometheus);
    s.stage("failover", stage_failover);
    s.stage("backup (backup.sh)", stage_backup);
    s.stage("stop (stop.sh)", stage_stop);
    s.stage("start (start.sh from stopped)", stage_start_stopped);
    s.stage("health (health.sh)", stage_health);
    for (name, took) in &s.timings {
        log(format!("timing {name}: {:.1} s", took.as_secs_f64()));
    }
    log(format!("total: {:.1} s", total.elapsed().as_secs_f64()));
}

/// The image the model names for the API is the one deploy/gateway-image.sh builds:
/// ghcr.io/tgstack/tg-gateway:<crate version>.
#[test]
fn gateway_image_tag_matches_the_model_and_the_crate() {
    let script = std::fs::read_to_string(root().join("deploy/gateway-image.sh")).unwrap();
    let repository = script
        .lines()
        .find_map(|l| l.strip_prefix("IMAGE_REPOSITORY="))
        .expect("IMAGE_REPOSITORY in deploy/gateway-image.sh");
    let expected = format!("{repository}:{}", env!("CARGO_PKG_VERSION"));
    let model = tgstack::model::load_files(&[root().join("stack.toml")]).expect("stack.toml");
    let images: Vec<&str> = model
        .stack
        .services
        .values()
        .filter(|s| {
            matches!(
                s.kind,
                tgstack::model::Kind::Api | tgstack::model::Kind::Gateway
            )
        })
        .filter_map(|s| s.image.as_deref())
        .collect();
    assert!(!images.is_empty(), "no gateway/api image in stack.toml");
    for image in images {
        assert_eq!(image, expected, "stack.toml names another gateway image");
    }
}

/// The Dockerfile's HEALTHCHECK is the api service's rendered compose healthcheck.
#[test]
fn gateway_dockerfile_healthcheck_matches_the_rendered_one() {
    let dockerfile = std::fs::read_to_string(root().join("gateway/Dockerfile")).unwrap();
    let line = dockerfile
        .lines()
        .find(|l| l.starts_with("HEALTHCHECK "))
        .expect("HEALTHCHECK in gateway/Dockerfile");
    let (options, command) = line["HEALTHCHECK ".len()..].split_once(" CMD ").unwrap();
    let options: BTreeMap<&str, &str> = options
        .split_whitespace()
        .filter_map(|o| o.trim_start_matches("--").split_once('='))
        .collect();
    let command: Vec<String> = serde_json::from_str(command).expect("exec-form CMD");
    let compose = std::fs::read_to_string(root().join("generated/docker-compose.yml")).unwrap();
    let api = compose
        .split("\n  gateway-api:\n")
        .nth(1)
        .expect("gateway-api in the rendered compose");
    let health = api.split("healthcheck:").nth(1).unwrap();
    let block: Vec<&str> = health
        .lines()
        .skip(1)
        .take_while(|l| l.starts_with("      "))
        .collect();
    let test: Vec<String> = block
        .iter()
        .filter_map(|l| l.trim().strip_prefix("- "))
        .map(|v| v.trim_matches('"').to_string())
        .collect();
    assert_eq!(test[0], "CMD");
    assert_eq!(test[1..], command[..], "HEALTHCHECK command");
    for key in ["interval", "timeout", "retries", "start_period"] {
        let rendered = block
            .iter()
            .find_map(|l| l.trim().strip_prefix(&format!("{key}: ")))
            .unwrap_or_else(|| panic!("{key} in the rendered healthcheck"))
            .trim_matches('"');
        let option = options
            .get(key.replace('_', "-").as_str())
            .unwrap_or_else(|| panic!("--{key} in the Dockerfile HEALTHCHECK"));
        assert_eq!(*option, rendered, "HEALTHCHECK --{key}");
    }
}

/// The scenario runs beside tests that bind port 0 and open connections: a fixed port of
/// the ephemeral range could be taken by one of them when Docker publishes it.
#[test]
fn e2e_ports_are_below_the_ephemeral_range() {
    let range = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range").unwrap();
    let first_ephemeral: u16 = range.split_whitespace().next().unwrap().parse().unwrap();
    let model = tgstack::model::load_files(&[
        root().join("stack.toml"),
        root().join("deploy/e2e/overlay.toml"),
    ])
    .expect("stack.toml + deploy/e2e/overlay.toml");
    let mut ports: Vec<(String, u16)> = model
        .stack
        .published_ports()
        .into_iter()
        .map(|p| (p.path, p.host_port))
        .collect();
    ports.push((
        "services.tg-gateway.port".into(),
        model.stack.services["tg-gateway"].port,
    ));
    for (path, port) in ports {
        assert!(
            port < first_ephemeral,
            "{path} = {port} is in the ephemeral range (from {first_ephemeral})"
        );
    }
}

#[test]
fn e2e_scaffolding_is_executable() {
    for file in [
        "deploy/e2e/images.sh",
        "deploy/e2e/bin/docker",
        "deploy/e2e/bin/systemctl-in-container",
        "deploy/e2e/standins/bin/rabbitmqctl",
        "deploy/gateway-image.sh",
    ] {
        let mode = std::fs::metadata(root().join(file))
            .unwrap()
            .permissions()
            .mode();
        assert!(mode & 0o111 != 0, "{file} is not executable");
    }
}
