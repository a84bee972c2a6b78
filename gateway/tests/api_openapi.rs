//! gateway/openapi.yaml and the router agree, in both directions: every documented
//! operation is served (and guarded exactly when the document says so), and every route
//! of the router is documented. The router runs for real on a loopback port; its database
//! is unreachable on purpose, which the routes must report as 503, never as 404/405.

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::time::Duration;

use serde_json::Value;
use tg_gateway::api::{self, ApiConfig, ApiKey, ApiState};

const KEY: &str = "conformance-key";

fn document() -> Value {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("openapi.yaml");
    let text = std::fs::read_to_string(&path).expect("gateway/openapi.yaml");
    serde_saphyr::from_str(&text).expect("openapi.yaml is valid YAML")
}

const METHODS: [&str; 8] = [
    "get", "put", "post", "delete", "options", "head", "patch", "trace",
];

/// (METHOD, path) of every operation of the document, with whether it needs the key.
fn documented(doc: &Value) -> BTreeSet<(String, String, bool)> {
    let global_security = doc["security"]
        .as_array()
        .is_some_and(|list| !list.is_empty());
    let mut out = BTreeSet::new();
    for (path, item) in doc["paths"].as_object().expect("paths") {
        for (method, operation) in item.as_object().expect("path item") {
            if !METHODS.contains(&method.as_str()) {
                continue;
            }
            let secured = match operation.get("security") {
                Some(list) => list.as_array().is_some_and(|l| !l.is_empty()),
                None => global_security,
            };
            out.insert((method.to_uppercase(), path.clone(), secured));
        }
    }
    out
}

fn served() -> BTreeSet<(String, String, bool)> {
    api::routes()
        .iter()
        .map(|r| (r.method.to_string(), r.path.to_string(), r.authenticated))
        .collect()
}

#[test]
fn routes_and_document_list_the_same_operations_with_the_same_guard() {
    let doc = document();
    let documented = documented(&doc);
    let served = served();
    let undocumented: Vec<_> = served.difference(&documented).collect();
    let unserved: Vec<_> = documented.difference(&served).collect();
    assert!(
        undocumented.is_empty() && unserved.is_empty(),
        "served but not documented (or guard differs): {undocumented:?}\n\
         documented but not served (or guard differs): {unserved:?}"
    );
    assert_eq!(
        doc["components"]["securitySchemes"]["ApiKey"]["name"], "X-API-Key",
        "the documented key header"
    );
}

#[test]
fn every_path_parameter_is_declared() {
    let doc = document();
    for (path, item) in doc["paths"].as_object().unwrap() {
        let in_template: BTreeSet<&str> = path
            .split('/')
            .filter_map(|s| s.strip_prefix('{').and_then(|s| s.strip_suffix('}')))
            .collect();
        for (method, operation) in item.as_object().unwrap() {
            let declared: BTreeSet<&str> = operation["parameters"]
                .as_array()
                .map(|params| {
                    params
                        .iter()
                        .filter(|p| p["in"] == "path")
                        .filter_map(|p| p["name"].as_str())
                        .collect()
                })
                .unwrap_or_default();
            assert_eq!(declared, in_template, "{method} {path}");
        }
    }
}

/// A raw HTTP/1.1 request; returns (status, body).
fn request(port: u16, method: &str, path: &str, key: Option<&str>) -> (u16, String) {
    let headers: Vec<(&str, &str)> = key.map(|k| ("X-API-Key", k)).into_iter().collect();
    testkit::http_request(port, method, path, &headers, Duration::from_secs(30))
        .unwrap_or_else(|| panic!("no HTTP response from the API to {method} {path}"))
}

#[test]
fn the_running_router_serves_what_the_document_says() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let listener = runtime
        .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
        .unwrap();
    let port = listener.local_addr().unwrap().port();
    let mut database = tokio_postgres::Config::new();
    // Nothing listens on port 1: every database call fails at once.
    database
        .host("127.0.0.1")
        .port(1)
        .user("nobody")
        .dbname("nothing")
        .connect_timeout(Duration::from_secs(2));
    let config = ApiConfig {
        listen: listener.local_addr().unwrap(),
        database,
        schema: "telegram".into(),
        api_key: ApiKey::from_env("K", "api_key", |_| Some(KEY.into())).unwrap(),
        request_timeout: Duration::from_secs(10),
        max_page_size: 50,
        default_page_size: 10,
        pool_size: 2,
        cache: None,
    };
    let _runtime_context = runtime.enter();
    let state = ApiState::new(&config, None).unwrap();
    runtime.spawn(async move {
        axum::serve(listener, api::router(state)).await.unwrap();
    });

    for (method, path, secured) in documented(&document()) {
        let concrete = path
            .replace("{channel}", "-1001234567890")
            .replace("{id}", "7");
        let (status, body) = request(port, &method, &concrete, Some(KEY));
        assert!(
            status != 404 && status != 405,
            "{method} {path} is documented but the router answers {status}: {body}"
        );
        if path.starts_with("/api/") {
            assert_eq!(status, 503, "{method} {path} without a database: {body}");
            assert!(body.contains("database unavailable"), "{body}");
        }
        let (status, body) = request(port, &method, &concrete, None);
        if secured {
            assert_eq!(status, 401, "{method} {path} without a key: {body}");
            let (status, _) = request(port, &method, &concrete, Some("wrong-key"));
            assert_eq!(status, 401, "{method} {path} with a wrong key");
        } else {
            assert_ne!(status, 401, "{method} {path} is open: {body}");
        }
        // A method the document does not list for this path.
        let (status, _) = request(port, "DELETE", &concrete, Some(KEY));
        assert_eq!(status, 405, "DELETE {path}");
    }
    let (status, body) = request(port, "GET", "/health", None);
    assert_eq!(status, 503, "{body}");
    assert!(body.contains("\"postgres\""), "{body}");
    let (status, body) = request(port, "GET", "/api/nothing-here", Some(KEY));
    assert_eq!(
        (status, body.contains("no such route")),
        (404, true),
        "{body}"
    );
    // An undocumented path is 404 even without a key: the key check runs on routes only.
    let (status, _) = request(port, "GET", "/api/nothing-here", None);
    assert_eq!(status, 404);
}
