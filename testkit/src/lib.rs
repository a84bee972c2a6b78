//! What the integration tests of every crate of the workspace share: real daemons started
//! on free loopback ports (killed on drop), waiting for them, running programs, the shared
//! PostgreSQL and RabbitMQ of `scripts/test-env.sh`, and a TCP proxy that simulates
//! outages. Nothing here knows the stack model: that stays with each crate's tests.

pub mod catalogs;

use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU16, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// A name no other test run uses right now: `prefix`, the process id and the time.
pub fn unique(prefix: &str) -> String {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    format!("{prefix}_{}_{nanos}", std::process::id())
}

/// The test value of the secret `id`. Roles on the shared PostgreSQL are cluster-wide, so
/// every test of every crate sets their passwords to this same value. The quotes make
/// every consumer prove its escaping.
pub fn secret_value(id: &str) -> String {
    format!("test-{id}-pw \"q'")
}

/// A temp dir that daemons running as another user (postgres) can reach below.
pub fn daemon_temp_dir(prefix: &str) -> tempfile::TempDir {
    let dir = tempfile::Builder::new()
        .prefix(prefix)
        .tempdir()
        .expect("tempdir");
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755))
        .expect("chmod temp dir");
    dir
}

/// The entries of `dir`, sorted by path; panics naming the directory when it cannot be read.
pub fn sorted_entries(dir: &Path) -> Vec<PathBuf> {
    let mut entries: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .flatten()
        .map(|e| e.path())
        .collect();
    entries.sort();
    entries
}

/// Test ports come from below the kernel's ephemeral range (32768-60999 here), so an
/// outgoing connection's source port can never take a port between the moment a test
/// picks it and the moment its daemon binds it (an OS-picked port could: a gateway or
/// PgBouncer then failed to start under a busy suite). The range also stays clear of the
/// fixed ports tests and overlays publish (15432, 16432, 26379, the 28xxx of the
/// end-to-end stack).
const TEST_PORTS: std::ops::Range<u16> = 17000..26000;

/// Where this process takes its next test port: a start that differs per process, then
/// each port once, so two tests of one process never pick the same port.
static NEXT_PORT: AtomicU16 = AtomicU16::new(0);

/// The first of `n` consecutive ports of [`TEST_PORTS`] nothing listens on right now.
fn take_ports(n: u16) -> u16 {
    let span = TEST_PORTS.end - TEST_PORTS.start;
    let _ = NEXT_PORT.compare_exchange(0, process_seed(span), Ordering::SeqCst, Ordering::SeqCst);
    for _ in 0..span {
        let offset = NEXT_PORT.fetch_add(n, Ordering::SeqCst) % span;
        let base = TEST_PORTS.start + offset;
        if base + n > TEST_PORTS.end {
            continue;
        }
        let held: Result<Vec<TcpListener>, _> = (base..base + n)
            .map(|p| TcpListener::bind(("127.0.0.1", p)))
            .collect();
        if held.is_ok() {
            return base;
        }
    }
    panic!("no run of {n} free ports in {TEST_PORTS:?}")
}

/// A start in `1..span` that differs between processes run one after another.
fn process_seed(span: u16) -> u16 {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    let mixed = (u64::from(std::process::id()) * 7919 + u64::from(nanos)) % u64::from(span - 1);
    mixed as u16 + 1
}

/// A port nothing listens on right now.
pub fn free_port() -> u16 {
    take_ports(1)
}

/// `n` distinct free ports.
pub fn free_ports(n: usize) -> Vec<u16> {
    (0..n).map(|_| free_port()).collect()
}

/// The first of `n` consecutive free ports.
pub fn free_port_run(n: u16) -> u16 {
    take_ports(n)
}

/// A child process killed (SIGKILL) and reaped when dropped.
pub struct Daemon {
    pub name: String,
    pub child: Child,
    pub log: PathBuf,
}

impl Daemon {
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Starts `program args` with `env` added and output to `log`, optionally as another user
/// (runuser).
pub fn spawn(
    name: &str,
    program: &str,
    args: &[&str],
    env: &[(String, String)],
    log: &Path,
    user: Option<&str>,
) -> Daemon {
    require_program(program);
    let log_file = std::fs::File::create(log).expect("create log");
    let mut command = Command::new(program);
    if let Some(user) = user {
        // The program itself runs as `user` (not under runuser, which would be the child
        // we kill, leaving the daemon behind).
        let (uid, gid) = user_ids(user);
        command.uid(uid).gid(gid);
    }
    command
        .args(args)
        .envs(env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
        .stdin(Stdio::null())
        .stdout(log_file.try_clone().unwrap())
        .stderr(log_file);
    let child = command
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {program}: {e}"));
    Daemon {
        name: name.into(),
        child,
        log: log.to_path_buf(),
    }
}

/// Starts one Sentinel as deployed: Sentinel rewrites its config at run time, so it runs
/// from a writable copy of the `rendered` file with the deploy-time `auth` lines appended;
/// waits until it listens on `port`.
pub fn start_sentinel(
    name: &str,
    rendered: &Path,
    auth: &Path,
    writable: &Path,
    port: u16,
    log: &Path,
) -> Daemon {
    let text = std::fs::read_to_string(rendered).expect("read the rendered sentinel config");
    let auth = std::fs::read_to_string(auth).expect("read the sentinel auth file");
    std::fs::create_dir_all(writable.parent().expect("a directory")).unwrap();
    std::fs::write(writable, format!("{text}{auth}")).unwrap();
    let mut daemon = spawn(
        name,
        "redis-sentinel",
        &[writable.to_str().unwrap()],
        &[],
        log,
        None,
    );
    wait_for_port(&mut daemon, port, Duration::from_secs(10));
    daemon
}

/// The user and group ids of `user`, from the system's account database.
fn user_ids(user: &str) -> (u32, u32) {
    let id = |flag: &str| {
        let out = Command::new("id")
            .args([flag, user])
            .output()
            .unwrap_or_else(|e| panic!("cannot run id: {e}"));
        assert!(out.status.success(), "no user `{user}` on this machine");
        String::from_utf8_lossy(&out.stdout)
            .trim()
            .parse::<u32>()
            .expect("id prints a number")
    };
    (id("-u"), id("-g"))
}

/// Fails (never skips) with how to install a missing program.
pub fn require_program(program: &str) {
    let found = Command::new("sh")
        .args(["-c", &format!("command -v {program}")])
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false);
    assert!(
        found,
        "{program} is not installed: run `bash scripts/test-env.sh`"
    );
}

/// Waits until something accepts TCP connections on 127.0.0.1:port.
pub fn wait_for_port(daemon: &mut Daemon, port: u16, timeout: Duration) {
    let start = Instant::now();
    while start.elapsed() < timeout {
        if TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return;
        }
        if let Ok(Some(status)) = daemon.child.try_wait() {
            panic!(
                "{} exited early ({status}):\n{}",
                daemon.name,
                daemon.log_text()
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!(
        "{} did not listen on {port} within {timeout:?}:\n{}",
        daemon.name,
        daemon.log_text()
    );
}

/// Polls `check` until it returns Some or the time runs out.
pub fn eventually<T>(what: &str, timeout: Duration, mut check: impl FnMut() -> Option<T>) -> T {
    let start = Instant::now();
    loop {
        if let Some(value) = check() {
            return value;
        }
        assert!(
            start.elapsed() < timeout,
            "timed out after {timeout:?} waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Runs a command with `env` added, to completion; returns (success, stdout+stderr).
pub fn run(program: &str, args: &[&str], env: &[(String, String)]) -> (bool, String) {
    require_program(program);
    let output = Command::new(program)
        .args(args)
        .envs(env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
        .output()
        .unwrap_or_else(|e| panic!("cannot run {program}: {e}"));
    let mut text = String::from_utf8_lossy(&output.stdout).into_owned();
    text.push_str(&String::from_utf8_lossy(&output.stderr));
    (output.status.success(), text)
}

/// Runs a command with `input` on its standard input; returns (success, stdout+stderr).
pub fn run_with_stdin(program: &str, args: &[&str], input: &[u8]) -> (bool, String) {
    require_program(program);
    let mut child = Command::new(program)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run {program}: {e}"));
    child
        .stdin
        .take()
        .expect("piped stdin")
        .write_all(input)
        .expect("write stdin");
    let output = child.wait_with_output().expect("wait");
    let mut text = String::from_utf8_lossy(&output.stdout).into_owned();
    text.push_str(&String::from_utf8_lossy(&output.stderr));
    (output.status.success(), text)
}

/// The shared PostgreSQL must be up; fail with the fix otherwise.
pub fn require_local_postgres() {
    let (ok, out) = run("pg_isready", &["-h", "127.0.0.1", "-p", "5432"], &[]);
    assert!(
        ok,
        "PostgreSQL is not running on 127.0.0.1:5432 ({out}): run `bash scripts/test-env.sh`"
    );
}

/// The shared RabbitMQ must be up; fail with the fix otherwise.
pub fn require_local_rabbitmq() {
    let (ok, out) = run("rabbitmqctl", &["-q", "status"], &[]);
    assert!(
        ok,
        "RabbitMQ is not running ({out}): run `bash scripts/test-env.sh`"
    );
}

/// Runs `sql` on the shared PostgreSQL as postgres (trust auth on loopback); returns its
/// unaligned, tuples-only output.
pub fn psql(database: &str, sql: &str) -> String {
    psql_args(database, &["-c", sql])
}

/// Runs psql with `args` (`-c SQL`, `-f FILE`, `--single-transaction`, ...) on the shared
/// PostgreSQL as postgres, stopping at the first error; returns its unaligned, tuples-only
/// output (notices on stderr are left out).
pub fn psql_args(database: &str, args: &[&str]) -> String {
    require_program("psql");
    let output = Command::new("psql")
        .args([
            "-h",
            "127.0.0.1",
            "-p",
            "5432",
            "-U",
            "postgres",
            "-d",
            database,
        ])
        .args(["-X", "-q", "-At", "-v", "ON_ERROR_STOP=1"])
        .args(args)
        .output()
        .expect("psql runs");
    assert!(
        output.status.success(),
        "psql on {database} {args:?} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).trim().to_string()
}

/// A database and roles owned by one test on the shared PostgreSQL, dropped on drop.
pub struct Scratch {
    pub database: String,
    pub roles: Vec<String>,
}

impl Scratch {
    /// Creates the database and the roles (NOLOGIN).
    pub fn create(database: String, roles: Vec<String>) -> Scratch {
        let scratch = Scratch { database, roles };
        psql(
            "postgres",
            &format!("CREATE DATABASE \"{}\"", scratch.database),
        );
        for role in &scratch.roles {
            psql("postgres", &format!("CREATE ROLE \"{role}\" NOLOGIN"));
        }
        scratch
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let mut statements = vec![format!(
            "DROP DATABASE IF EXISTS \"{}\" WITH (FORCE)",
            self.database
        )];
        statements.extend(
            self.roles
                .iter()
                .map(|r| format!("DROP ROLE IF EXISTS \"{r}\"")),
        );
        // Best effort, and no panic while a failed test is already unwinding.
        for statement in statements {
            let _ = Command::new("psql")
                .args(["-h", "127.0.0.1", "-U", "postgres", "-d", "postgres"])
                .args(["-X", "-q", "-c", &statement])
                .output();
        }
    }
}

/// One HTTP/1.1 request to 127.0.0.1:`port` with `headers` added, on a connection closed
/// after it: (status, body), or None when no whole response comes back within `timeout`.
pub fn http_request(
    port: u16,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    timeout: Duration,
) -> Option<(u16, String)> {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).ok()?;
    stream.set_read_timeout(Some(timeout)).ok()?;
    let mut head = format!("{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n");
    for (name, value) in headers {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    // An empty body is announced only where a method may carry one.
    if !matches!(method, "GET" | "HEAD") {
        head.push_str("Content-Length: 0\r\n");
    }
    head.push_str("Connection: close\r\n\r\n");
    stream.write_all(head.as_bytes()).ok()?;
    let mut text = String::new();
    stream.read_to_string(&mut text).ok()?;
    let status = text.split_whitespace().nth(1)?.parse().ok()?;
    let body = text
        .split("\r\n\r\n")
        .nth(1)
        .unwrap_or_default()
        .to_string();
    Some((status, body))
}

/// A TCP proxy on a free loopback port; `cut` closes every connection and refuses new
/// ones until `restore`; `freeze` keeps connections open and forwards nothing (a server
/// that hangs) until `restore`.
pub struct Proxy {
    pub port: u16,
    cut: Arc<AtomicBool>,
    frozen: Arc<AtomicBool>,
    stop: Arc<AtomicBool>,
    connections: Arc<Mutex<Vec<TcpStream>>>,
}

impl Proxy {
    pub fn start(target: u16) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind proxy");
        listener.set_nonblocking(true).unwrap();
        let port = listener.local_addr().unwrap().port();
        let cut = Arc::new(AtomicBool::new(false));
        let frozen = Arc::new(AtomicBool::new(false));
        let stop = Arc::new(AtomicBool::new(false));
        let connections: Arc<Mutex<Vec<TcpStream>>> = Arc::default();
        let (cut2, stop2, conns2) = (cut.clone(), stop.clone(), connections.clone());
        let frozen2 = frozen.clone();
        std::thread::spawn(move || {
            while !stop2.load(Ordering::SeqCst) {
                match listener.accept() {
                    Ok((client, _)) => {
                        if cut2.load(Ordering::SeqCst) {
                            let _ = client.shutdown(Shutdown::Both);
                            continue;
                        }
                        let _ = client.set_nonblocking(false);
                        let Ok(server) = TcpStream::connect(("127.0.0.1", target)) else {
                            let _ = client.shutdown(Shutdown::Both);
                            continue;
                        };
                        let _ = client.set_nodelay(true);
                        let _ = server.set_nodelay(true);
                        {
                            let mut held = conns2.lock().unwrap();
                            held.push(client.try_clone().unwrap());
                            held.push(server.try_clone().unwrap());
                        }
                        pump(
                            client.try_clone().unwrap(),
                            server.try_clone().unwrap(),
                            frozen2.clone(),
                        );
                        pump(server, client, frozen2.clone());
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(10)),
                }
            }
        });
        Proxy {
            port,
            cut,
            frozen,
            stop,
            connections,
        }
    }

    /// Connections stay open; nothing is forwarded either way until `restore`.
    pub fn freeze(&self) {
        self.frozen.store(true, Ordering::SeqCst);
    }

    pub fn cut(&self) {
        self.cut.store(true, Ordering::SeqCst);
        for stream in self.connections.lock().unwrap().drain(..) {
            let _ = stream.shutdown(Shutdown::Both);
        }
    }

    pub fn restore(&self) {
        self.cut.store(false, Ordering::SeqCst);
        self.frozen.store(false, Ordering::SeqCst);
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        self.frozen.store(false, Ordering::SeqCst);
        self.cut();
    }
}

fn pump(mut from: TcpStream, mut to: TcpStream, frozen: Arc<AtomicBool>) {
    std::thread::spawn(move || {
        let mut buf = [0u8; 16 * 1024];
        loop {
            match from.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    // Frozen: what was read is held back (bounded by the test's own wait).
                    while frozen.load(Ordering::SeqCst) {
                        std::thread::sleep(Duration::from_millis(10));
                    }
                    if to.write_all(&buf[..n]).is_err() {
                        break;
                    }
                }
            }
        }
        let _ = to.shutdown(Shutdown::Both);
        let _ = from.shutdown(Shutdown::Both);
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A daemon started as another user is the program itself: dropping it leaves no
    /// process behind.
    #[test]
    fn a_daemon_run_as_another_user_is_gone_after_drop() {
        let dir = daemon_temp_dir("testkit-daemon-");
        let marker = dir.path().join("marker");
        let daemon = spawn("sleeper", "sleep", &["300"], &[], &marker, Some("nobody"));
        let pid = daemon.pid();
        let cmdline = std::fs::read_to_string(format!("/proc/{pid}/cmdline")).unwrap();
        assert!(cmdline.starts_with("sleep"), "the child is {cmdline:?}");
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
        let nobody = user_ids("nobody").0.to_string();
        assert!(
            status
                .lines()
                .any(|l| l.starts_with("Uid:")
                    && l.split_whitespace().nth(1) == Some(nobody.as_str())),
            "{status}"
        );
        drop(daemon);
        assert!(
            !Path::new(&format!("/proc/{pid}")).exists(),
            "sleep {pid} outlived its Daemon"
        );
    }
}
