//! SIGTERM, as systemd and Docker send it: the gateway exits 0 within 5 s whatever it is
//! doing (reading a replay, waiting for an unreachable broker, connecting to a Telegram
//! that never answers), and what it had received is stored or comes again.

use std::net::{Ipv4Addr, Ipv6Addr, SocketAddrV4, SocketAddrV6, TcpListener};
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use grammers_session::Session as _;
use grammers_session::storages::SqliteSession;
use grammers_session::types::DcOption;
use testkit::{Daemon, eventually};

use crate::pipeline::{ARCHIVE, assert_stored_once};
use crate::support::*;

/// What the rendered unit and compose file allow a stop (`STOP_DRAIN` and the graces
/// of `tg-gateway` fit inside).
const STOP_BUDGET: Duration = Duration::from_secs(5);

/// Sends SIGTERM to the gateway and waits for it: its exit status and how long it took.
fn terminate(gateway: &mut Daemon) -> (std::process::ExitStatus, Duration) {
    let sent = Command::new("kill")
        .args(["-TERM", &gateway.pid().to_string()])
        .status()
        .expect("run kill");
    assert!(sent.success(), "kill -TERM failed");
    let start = Instant::now();
    while start.elapsed() < Duration::from_secs(20) {
        if let Some(status) = gateway.child.try_wait().expect("wait for the gateway") {
            return (status, start.elapsed());
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    panic!(
        "the gateway ignored SIGTERM for 20 s:\n{}",
        gateway.log_text()
    );
}

fn assert_quick_clean_exit(gateway: &mut Daemon) {
    let (status, took) = terminate(gateway);
    assert!(
        status.success(),
        "exit {status} after SIGTERM:\n{}",
        gateway.log_text()
    );
    assert!(
        took < STOP_BUDGET,
        "stopping took {took:?}, over {STOP_BUDGET:?}:\n{}",
        gateway.log_text()
    );
}

#[test]
fn sigterm_mid_replay_stops_within_the_budget_and_a_rerun_completes_exactly_once() {
    let stack = TestStack::start("term", Wiring::default());
    let per_channel = 20_000;
    let (file, total) = stack.replay_file("big.jsonl", per_channel, 0);

    let mut gateway = stack.spawn_gateway(&["replay", file.to_str().unwrap()], "first.log");
    stack.wait_stored_over(&mut gateway, 1000);
    assert_quick_clean_exit(&mut gateway);
    let stored = stack.count("SELECT count(*) FROM telegram.messages");
    assert!(
        stored < total,
        "the replay finished before SIGTERM; make the file bigger"
    );

    let (ok, out) = stack.gateway(&["replay", "--drain-timeout", "60s", file.to_str().unwrap()]);
    assert!(ok, "replay after SIGTERM failed: {out}");
    assert_stored_once(&stack, total);
    let delivered = stack.drain_queue(ARCHIVE);
    let counts = tally(&delivered);
    assert_eq!(counts.len() as i64, total, "every message published");
    let repeats = delivered.len() as i64 - total;
    assert!(
        repeats <= stack.batch_size(),
        "{repeats} messages published twice across a clean stop (at most one batch)"
    );
}

#[test]
fn sigterm_while_the_broker_is_unreachable_keeps_the_outbox_for_the_next_start() {
    let stack = TestStack::start(
        "termrabbit",
        Wiring {
            rabbitmq_proxy: true,
            ..Wiring::default()
        },
    );
    let proxy = stack.rabbitmq_proxy.as_ref().unwrap();
    proxy.cut();
    let per_channel = 1_000;
    let (file, total) = stack.replay_file("replay.jsonl", per_channel, 0);

    let mut gateway = stack.spawn_replay(&file, "120s", false);
    eventually("every message stored", Duration::from_secs(60), || {
        (stack.count("SELECT count(*) FROM telegram.messages") == total).then_some(())
    });
    assert_quick_clean_exit(&mut gateway);
    assert_eq!(
        stack.count("SELECT count(*) FROM telegram.outbox WHERE published_at IS NULL"),
        total,
        "the unpublished rows stay in the outbox"
    );

    proxy.restore();
    let (ok, out) = stack.gateway(&["replay", "--drain-timeout", "60s", file.to_str().unwrap()]);
    assert!(ok, "the next start failed: {out}");
    assert_stored_once(&stack, total);
    let delivered = stack.drain_queue(ARCHIVE);
    assert_eq!(delivered.len() as i64, total, "each published once");
    assert_eq!(tally(&delivered).len() as i64, total);
}

/// A session whose data centres are all `127.0.0.1:port`, made before the gateway opens it.
fn session_pointing_at(file: &Path, port: u16) {
    std::fs::create_dir_all(file.parent().unwrap()).unwrap();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let session = SqliteSession::open(file).await.expect("create the session");
        for id in 1..=5 {
            let option = DcOption {
                id,
                ipv4: SocketAddrV4::new(Ipv4Addr::LOCALHOST, port),
                ipv6: SocketAddrV6::new(Ipv6Addr::LOCALHOST, port, 0, 0),
                auth_key: None,
            };
            session.set_dc_option(&option).await.expect("set a DC");
        }
        session.set_home_dc_id(2).await.expect("set the home DC");
    });
}

#[test]
fn run_with_a_telegram_that_never_answers_reports_it_and_stops_on_sigterm() {
    // The unit wants the session below /var/lib: a directory of this test's own there.
    let state = tempfile::Builder::new()
        .prefix("tg-gateway-test-")
        .tempdir_in("/var/lib")
        .expect("a state directory below /var/lib");
    let session = state.path().join("telegram.session");
    let stack = TestStack::start(
        "termtg",
        Wiring {
            session_file: Some(session.clone()),
            rabbitmq_proxy: true,
            ..Wiring::default()
        },
    );
    // Accepts connections and never answers: a Telegram data centre gone silent.
    let silent = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = silent.local_addr().unwrap().port();
    session_pointing_at(&session, port);

    let mut gateway = stack.spawn_gateway(&["run"], "run.log");
    let (_, health) = eventually(
        "/health reporting Telegram down while connecting",
        Duration::from_secs(10),
        || {
            stack.http_get("/health").filter(|(_, body)| {
                body.contains(r#""telegram":{"up":false,"detail":"connecting to Telegram""#)
            })
        },
    );
    assert!(
        !health.contains(r#""telegram":{"up":false,"detail":"not checked yet""#),
        "{health}"
    );
    // The broker is checked without anything to publish.
    stack.wait_health(
        "/health with the broker checked",
        r#""rabbitmq":{"up":true"#,
        Duration::from_secs(5),
    );
    // The connection really went to the silent listener (nowhere else).
    silent.set_nonblocking(true).unwrap();
    let (_held, _) = eventually(
        "the gateway connected to the silent DC",
        Duration::from_secs(10),
        || silent.accept().ok(),
    );
    // Nothing to publish, and the broker freezes with the connection open: the idle
    // probe notices. Then SIGTERM with both Telegram and the broker silent.
    let noticed = freeze_and_time_until_down(&stack, stack.rabbitmq_proxy.as_ref().unwrap());
    assert!(
        noticed < STOP_BUDGET,
        "an idle frozen broker was reported down after {noticed:?}"
    );
    assert_quick_clean_exit(&mut gateway);
}

/// Freezes the broker's proxy (connections stay open, nothing passes) and returns how
/// long /health took to report RabbitMQ down; checks /metrics says so too.
fn freeze_and_time_until_down(stack: &TestStack, proxy: &testkit::Proxy) -> Duration {
    proxy.freeze();
    let frozen_at = Instant::now();
    stack.wait_health(
        "/health reporting rabbitmq down",
        r#""rabbitmq":{"up":false"#,
        Duration::from_secs(30),
    );
    let noticed = frozen_at.elapsed();
    eprintln!("frozen broker reported down after {noticed:?}");
    let metrics = stack.http_get("/metrics").expect("metrics").1;
    assert!(
        metrics.contains(r#"tg_gateway_dependency_up{dependency="rabbitmq"} 0"#),
        "{metrics}"
    );
    noticed
}

#[test]
fn a_frozen_broker_mid_publish_is_reported_down_within_five_seconds_and_nothing_is_lost() {
    let stack = TestStack::start(
        "frozenmq",
        Wiring {
            rabbitmq_proxy: true,
            ..Wiring::default()
        },
    );
    let per_channel = 15_000;
    let (file, total) = stack.replay_file("big.jsonl", per_channel, 0);
    let mut gateway = stack.spawn_replay(&file, "120s", true);
    stack.wait_published_over(&mut gateway, 1000);
    let proxy = stack.rabbitmq_proxy.as_ref().unwrap();
    let noticed = freeze_and_time_until_down(&stack, proxy);
    assert!(
        stack.count("SELECT count(*) FROM telegram.outbox WHERE published_at IS NULL") > 0,
        "everything was published before the freeze; make the file bigger"
    );
    proxy.restore();
    assert!(
        noticed < STOP_BUDGET,
        "a broker frozen mid-publish was reported down after {noticed:?}"
    );
    let status = gateway.child.wait().unwrap();
    assert!(status.success(), "replay failed:\n{}", gateway.log_text());
    assert_stored_once(&stack, total);
    assert_eq!(
        stack.count("SELECT count(*) FROM telegram.outbox WHERE published_at IS NULL"),
        0,
        "the outbox drained once the broker answered again"
    );
    let delivered = stack.drain_queue(ARCHIVE);
    assert_eq!(
        tally(&delivered).len() as i64,
        total,
        "every message published"
    );
    let repeats = delivered.len() as i64 - total;
    assert!(
        repeats <= stack.batch_size(),
        "{repeats} messages published twice after one freeze (at most one batch)"
    );
}

#[test]
fn a_frozen_database_is_reported_down_within_five_seconds_and_nothing_is_lost() {
    let stack = TestStack::start(
        "frozenpg",
        Wiring {
            postgres_proxy: true,
            ..Wiring::default()
        },
    );
    let proxy = stack.postgres_proxy.as_ref().unwrap();
    let per_channel = 15_000;
    let (file, total) = stack.replay_file("big.jsonl", per_channel, 0);
    let mut gateway = stack.spawn_replay(&file, "60s", true);
    stack.wait_stored_over(&mut gateway, 1000);
    proxy.freeze();
    let frozen_at = Instant::now();
    stack.wait_health(
        "/health reporting postgres down",
        r#""postgres":{"up":false"#,
        Duration::from_secs(20),
    );
    let noticed = frozen_at.elapsed();
    let metrics = stack.http_get("/metrics").expect("metrics").1;
    assert!(
        metrics.contains(r#"tg_gateway_dependency_up{dependency="postgres"} 0"#),
        "{metrics}"
    );
    proxy.restore();
    assert!(
        noticed < STOP_BUDGET,
        "a frozen database was reported down after {noticed:?}"
    );
    let status = gateway.child.wait().unwrap();
    assert!(status.success(), "replay failed:\n{}", gateway.log_text());
    assert_stored_once(&stack, total);
}
