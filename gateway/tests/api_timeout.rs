//! A request that outlives the model's `request_timeout` is answered 503 "request timed
//! out". The database here is a test-owned TCP listener that accepts connections and never
//! answers, as a hung PgBouncer would.

use std::io::{Read as _, Write as _};
use std::net::{TcpListener, TcpStream};
use std::time::Duration;

use tg_gateway::api::{self, ApiConfig, ApiKey, ApiState};

#[test]
fn a_request_outliving_the_timeout_gets_503() {
    let silent = TcpListener::bind("127.0.0.1:0").unwrap();
    let silent_port = silent.local_addr().unwrap().port();
    let held = std::thread::spawn(move || {
        // Keep the first few connections open without a byte of answer.
        let mut open = Vec::new();
        for stream in silent.incoming().take(4) {
            open.push(stream);
        }
        std::thread::sleep(Duration::from_secs(5));
    });

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let _context = runtime.enter();
    let listener = runtime
        .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
        .unwrap();
    let port = listener.local_addr().unwrap().port();
    let mut database = tokio_postgres::Config::new();
    database
        .host("127.0.0.1")
        .port(silent_port)
        .user("tg_app")
        .dbname("telegram")
        .connect_timeout(Duration::from_secs(120));
    let config = ApiConfig {
        listen: listener.local_addr().unwrap(),
        database,
        schema: "telegram".into(),
        api_key: ApiKey::from_env("K", "api_key", |_| Some("k".into())).unwrap(),
        request_timeout: Duration::from_millis(500),
        max_page_size: 10,
        default_page_size: 5,
        pool_size: 2,
        cache: None,
    };
    let state = ApiState::new(&config, None).unwrap();
    runtime.spawn(async move {
        axum::serve(listener, api::router(state)).await.unwrap();
    });

    for path in ["/api/channels", "/api/messages", "/health"] {
        let mut stream = TcpStream::connect(("127.0.0.1", port)).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(60)))
            .unwrap();
        write!(
            stream,
            "GET {path} HTTP/1.1\r\nHost: x\r\nX-API-Key: k\r\nConnection: close\r\n\r\n"
        )
        .unwrap();
        let mut text = String::new();
        stream.read_to_string(&mut text).unwrap();
        assert!(text.starts_with("HTTP/1.1 503"), "{path}: {text}");
        assert!(text.contains("request timed out"), "{path}: {text}");
    }
    drop(held);
}
