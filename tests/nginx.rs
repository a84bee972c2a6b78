//! The `nginx` reverse proxy as the real nginx runs it, from the rendered nginx.conf: it
//! answers its health path, passes requests (API key and forwarding headers kept) to the
//! API the model names at the address the topology gives, answers 413 above the model's
//! body limit and 429 above its rate.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use testkit::{free_ports, require_program, run, spawn, wait_for_port};

use crate::support::load;

fn overlay(proxy_port: u16, api_port: u16) -> String {
    format!(
        r#"
[host]
cpus = 12.0

[services.gateway-api]
publish = {api_port}

[services.api-proxy]
kind = "nginx"
deploy = "native"
port = {proxy_port}
cpus = 0.25
memory = "64MiB"

[services.api-proxy.nginx]
upstream = "gateway-api"
rate_limit = 1
burst = 5
max_body_size = "1KiB"
"#
    )
}

/// A stand-in for the API on its published port: answers 200 and keeps each request head.
struct Upstream {
    heads: Arc<Mutex<Vec<String>>>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Upstream {
    fn start(port: u16) -> Self {
        let listener = TcpListener::bind(("127.0.0.1", port)).expect("bind the API port");
        listener.set_nonblocking(true).unwrap();
        let heads = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let (seen, stopped) = (heads.clone(), stop.clone());
        let thread = std::thread::spawn(move || {
            while !stopped.load(Ordering::Relaxed) {
                match listener.accept() {
                    Ok((mut stream, _)) => {
                        stream.set_nonblocking(false).unwrap();
                        let head = read_head(&mut stream);
                        seen.lock().unwrap().push(head);
                        let _ = stream.write_all(
                            b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nup",
                        );
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(10)),
                }
            }
        });
        Upstream {
            heads,
            stop,
            thread: Some(thread),
        }
    }
}

impl Drop for Upstream {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// Reads up to the end of the request head (bounded by a read timeout).
fn read_head(stream: &mut TcpStream) -> String {
    stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") && head.len() < 16_384 {
        match stream.read(&mut byte) {
            Ok(1) => head.push(byte[0]),
            _ => break,
        }
    }
    String::from_utf8_lossy(&head).to_ascii_lowercase()
}

/// Sends one request through the proxy; returns the status code.
fn request(port: u16, method: &str, path: &str, body: &[u8]) -> u16 {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).expect("connect to the proxy");
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let head = format!(
        "{method} {path} HTTP/1.1\r\nHost: proxy\r\nX-API-Key: test-key\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    stream.write_all(head.as_bytes()).unwrap();
    let _ = stream.write_all(body);
    let mut response = String::new();
    let _ = stream.read_to_string(&mut response);
    response
        .split_whitespace()
        .nth(1)
        .and_then(|code| code.parse().ok())
        .unwrap_or_else(|| panic!("no HTTP status in {response:?}"))
}

#[test]
fn rendered_proxy_passes_limits_and_answers_health() {
    require_program("nginx");
    let ports = free_ports(2);
    let (proxy_port, api_port) = (ports[0], ports[1]);
    let model = load(&overlay(proxy_port, api_port));
    let report = tgstack::validate(&model, None, tgstack::Against::Rendered);
    assert!(
        !report.fails(true),
        "{}",
        tgstack::report::human(&report.findings)
    );
    let tree = tgstack::render(&model, None).expect("renders").tree;
    let dir = tempfile::tempdir().unwrap();
    let conf = dir.path().join("nginx.conf");
    std::fs::write(&conf, &tree["api-proxy/nginx.conf"]).unwrap();
    let conf = conf.to_str().unwrap().to_string();
    let globals = format!("pid {}/nginx.pid;", dir.path().display());
    let (ok, output) = run(
        "nginx",
        &["-t", "-c", &conf, "-e", "stderr", "-g", &globals],
        &[],
    );
    assert!(ok, "nginx -t refuses the rendered config:\n{output}");

    let upstream = Upstream::start(api_port);
    let globals = format!("daemon off; {globals}");
    let log = dir.path().join("nginx.log");
    let mut nginx = spawn(
        "nginx",
        "nginx",
        &["-c", &conf, "-e", "stderr", "-g", &globals],
        &[],
        &log,
        None,
    );
    wait_for_port(&mut nginx, proxy_port, Duration::from_secs(10));

    assert_eq!(request(proxy_port, "GET", "/healthz", b""), 200);
    assert!(
        upstream.heads.lock().unwrap().is_empty(),
        "the health path is answered by the proxy itself"
    );
    let too_large = vec![b'x'; 4096];
    assert_eq!(request(proxy_port, "POST", "/v1/messages", &too_large), 413);

    // Rate 1/s with a burst of 5: a quick series gets 200s, then 429.
    let start = Instant::now();
    let codes: Vec<u16> = (0..12)
        .map(|_| request(proxy_port, "GET", "/v1/messages?limit=1", b""))
        .collect();
    assert!(start.elapsed() < Duration::from_secs(3), "series too slow");
    assert!(
        codes[..5].iter().all(|c| *c == 200) && codes.contains(&429),
        "statuses {codes:?}"
    );
    let heads = upstream.heads.lock().unwrap().clone();
    let head = heads.first().expect("a request reached the API");
    for expected in [
        "get /v1/messages?limit=1 http/1.0",
        "x-api-key: test-key",
        "x-forwarded-for: 127.0.0.1",
        "x-request-id: ",
    ] {
        assert!(head.contains(expected), "{expected:?} not in {head}");
    }
    nginx.kill();
}
