//! The `nginx` kind: a reverse proxy in front of the REST API, the one door clients use.
//! It limits request rate and body size per client and waits longer than the API does.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::units::{ByteSize, Duration};

/// Settings of an `nginx` reverse proxy.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct NginxSettings {
    /// The `api` service requests are passed to.
    #[schemars(pattern(crate::model::text::NAME))]
    pub upstream: String,
    /// Requests per second one client address may send. Default 50.
    #[serde(default = "default_rate_limit")]
    pub rate_limit: u32,
    /// Requests above the rate a client may send at once before getting 429. Default 100.
    #[serde(default = "default_burst")]
    pub burst: u32,
    /// Largest request body; larger ones get 413. Default `1MiB`.
    #[serde(default = "default_max_body")]
    pub max_body_size: ByteSize,
    /// How long the proxy waits for the API's answer; must exceed the API's
    /// `request_timeout`. Default `35s`.
    #[serde(default = "default_read_timeout")]
    pub read_timeout: Duration,
    /// Connections one worker holds at once. Default 1024.
    #[serde(default = "default_worker_connections")]
    pub worker_connections: u32,
}

fn default_rate_limit() -> u32 {
    50
}
fn default_burst() -> u32 {
    100
}
fn default_max_body() -> ByteSize {
    ByteSize(1 << 20)
}
fn default_read_timeout() -> Duration {
    Duration(35_000)
}
fn default_worker_connections() -> u32 {
    1024
}

/// Where the container image reads its configuration.
pub const CONTAINER_CONFIG: &str = "/etc/nginx/nginx.conf";
/// The path the proxy answers itself, for healthchecks.
pub const HEALTH_PATH: &str = "/healthz";
/// Docker's embedded DNS server: a proxy that names its upstream by container name
/// resolves it at request time, so a recreated API container (new address) is found.
pub const DOCKER_DNS: &str = "127.0.0.11";
