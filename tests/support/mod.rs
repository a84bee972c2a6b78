//! Shared helpers of the integration tests: render a model with an overlay into a temp
//! dir, start real daemons on free loopback ports (killed on drop), wait for them.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use tgstack::model::{self, Model};
use tgstack::render;

pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// A port nothing listens on right now (the OS picks it).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("bind an ephemeral port")
}

/// `n` distinct free ports.
pub fn free_ports(n: usize) -> Vec<u16> {
    let listeners: Vec<TcpListener> = (0..n)
        .map(|_| TcpListener::bind("127.0.0.1:0").expect("bind an ephemeral port"))
        .collect();
    listeners
        .iter()
        .map(|l| l.local_addr().unwrap().port())
        .collect()
}

/// The first of `n` consecutive free ports.
pub fn free_port_run(n: u16) -> u16 {
    for _ in 0..200 {
        let base = free_port();
        if base > u16::MAX - n {
            continue;
        }
        let held: Result<Vec<TcpListener>, _> = (base..base + n)
            .map(|p| TcpListener::bind(("127.0.0.1", p)))
            .collect();
        if held.is_ok() {
            return base;
        }
    }
    panic!("no run of {n} free ports found")
}

/// Loads the root stack.toml with `overlay` merged over it.
pub fn load_with_overlay(overlay: &str) -> Model {
    let base = root().join("stack.toml");
    let text = std::fs::read_to_string(&base).expect("read stack.toml");
    match model::load_texts(vec![
        (base, text),
        (PathBuf::from("overlay.toml"), overlay.to_string()),
    ]) {
        Ok(model) => model,
        Err(findings) => panic!(
            "overlay does not load:\n{}",
            tgstack::report::human(&findings)
        ),
    }
}

/// Renders the model into `dir` (as `tgstack render --out dir` would).
pub fn render_into(model: &Model, dir: &Path) {
    let rendered = tgstack::render(model, None)
        .unwrap_or_else(|f| panic!("render failed:\n{}", tgstack::report::human(&f)));
    render::write::write_tree(&rendered.tree, dir).expect("write rendered tree");
}

/// Test values for every secret of the model, and the deploy-time files made from them.
pub fn write_secrets(model: &Model) -> BTreeMap<String, String> {
    let values: BTreeMap<String, String> = model
        .stack
        .secrets
        .keys()
        .map(|id| (id.clone(), format!("test-{id}-pw \"q'")))
        .collect();
    let files = render::secrets::files(model, &values);
    render::secrets::write(Path::new(&model.stack.deploy.secrets_dir), &files)
        .expect("write secrets");
    values
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

/// Starts `program args` with output to `log`, optionally as another user (runuser).
pub fn spawn(name: &str, program: &str, args: &[&str], log: &Path, user: Option<&str>) -> Daemon {
    require_program(program);
    let log_file = std::fs::File::create(log).expect("create log");
    let mut command = match user {
        Some(user) => {
            let mut c = Command::new("runuser");
            c.args(["-u", user, "--", program]);
            c
        }
        None => Command::new(program),
    };
    command
        .args(args)
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
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// Runs a command to completion; returns (success, stdout+stderr).
pub fn run(program: &str, args: &[&str], env: &[(&str, &str)]) -> (bool, String) {
    require_program(program);
    let output = Command::new(program)
        .args(args)
        .envs(env.iter().copied())
        .output()
        .unwrap_or_else(|e| panic!("cannot run {program}: {e}"));
    let mut text = String::from_utf8_lossy(&output.stdout).into_owned();
    text.push_str(&String::from_utf8_lossy(&output.stderr));
    (output.status.success(), text)
}

/// Runs a command with `input` on its standard input; returns (success, stdout+stderr).
pub fn run_with_stdin(program: &str, args: &[&str], input: &[u8]) -> (bool, String) {
    use std::io::Write as _;
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

/// Runs SQL on the shared PostgreSQL as postgres (trust auth).
pub fn psql(database: &str, sql: &str) -> String {
    let (ok, out) = run(
        "psql",
        &[
            "-h",
            "127.0.0.1",
            "-p",
            "5432",
            "-U",
            "postgres",
            "-d",
            database,
            "-v",
            "ON_ERROR_STOP=1",
            "-X",
            "-q",
            "-t",
            "-A",
            "-c",
            sql,
        ],
        &[],
    );
    assert!(ok, "psql failed on {database}: {sql}\n{out}");
    out.trim().to_string()
}

/// A database and roles owned by one test on the shared PostgreSQL, dropped on drop.
pub struct Scratch {
    pub database: String,
    pub roles: Vec<String>,
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
        for statement in statements {
            let _ = Command::new("psql")
                .args([
                    "-h",
                    "127.0.0.1",
                    "-U",
                    "postgres",
                    "-d",
                    "postgres",
                    "-X",
                    "-q",
                    "-c",
                ])
                .arg(statement)
                .output();
        }
    }
}
