//! What the compose file(s) of an audited directory deploy: services, their images, ports,
//! limits, environment, and the bind mounts that put each audited file into a container.

use std::collections::BTreeMap;
use std::path::{Component, Path, PathBuf};

use serde_json::Value;

use super::{Audited, FileKind};
use crate::check::dialect::{Mount, PortSpec, mount, port_spec, with_defaults};

/// One compose service.
pub struct ComposeService {
    pub name: String,
    /// The compose file declaring it.
    pub file: String,
    pub image: Option<String>,
    /// The file builds the image (`build:`), so its tag is the file's own.
    pub builds: bool,
    pub ports: Vec<PortSpec>,
    pub expose: Vec<String>,
    pub healthcheck: bool,
    /// (service, condition) of `depends_on`.
    pub depends_on: Vec<(String, Option<String>)>,
    pub memory_limit: Option<u64>,
    pub environment: Vec<(String, String)>,
    /// Host names of `extra_hosts` (`host.docker.internal:host-gateway`).
    pub extra_hosts: Vec<String>,
    /// Mounts with the host source resolved relative to the audited directory.
    pub mounts: Vec<(Mount, Option<String>)>,
}

pub struct Deployment<'a> {
    pub services: BTreeMap<String, ComposeService>,
    files: &'a [Audited],
}

impl<'a> Deployment<'a> {
    pub fn new(dir: &Path, files: &'a [Audited]) -> Self {
        let root = std::path::absolute(dir).unwrap_or_else(|_| dir.to_path_buf());
        let mut services = BTreeMap::new();
        for file in files.iter().filter(|f| f.kind == FileKind::Compose) {
            let Some(Ok(document)) = &file.yaml else {
                continue;
            };
            let base = Path::new(&file.rel).parent().unwrap_or(Path::new(""));
            for (name, service) in document["services"].as_object().into_iter().flatten() {
                services
                    .entry(name.clone())
                    .or_insert_with(|| read_service(name, &file.rel, service, &root, base));
            }
        }
        Deployment { services, files }
    }

    /// Services that mount the audited file `rel` (itself or a directory above it), the
    /// most specific mount first: a file mounted by name before a directory mounted whole.
    pub fn services_reading(&self, rel: &str) -> Vec<&ComposeService> {
        let mut reading: Vec<(usize, &ComposeService)> = self
            .services
            .values()
            .filter_map(|s| {
                let depth = s
                    .mounts
                    .iter()
                    .filter_map(|(_, host)| host.as_deref().filter(|h| covers(h, rel)))
                    .map(str::len)
                    .max()?;
                Some((depth, s))
            })
            .collect();
        reading.sort_by(|a, b| b.0.cmp(&a.0).then_with(|| a.1.name.cmp(&b.1.name)));
        reading.into_iter().map(|(_, s)| s).collect()
    }

    /// The image of the service that mounts `rel` most specifically.
    pub fn image_reading(&self, rel: &str) -> Option<&str> {
        self.services_reading(rel)
            .into_iter()
            .find_map(|s| s.image.as_deref())
    }

    /// The audited file a service sees at `container_path`, through its bind mounts (the
    /// deepest mount wins, as in the container).
    pub fn host_file(&self, service: &ComposeService, container_path: &str) -> Option<String> {
        let mut best: Option<(usize, String)> = None;
        for (m, host) in &service.mounts {
            let Some(host) = host.as_deref() else {
                continue;
            };
            let target = m.target.trim_end_matches('/');
            let Some(rest) = container_path.strip_prefix(target) else {
                continue;
            };
            let file = match rest.strip_prefix('/') {
                None if rest.is_empty() => host.to_owned(),
                None => continue,
                Some(rest) if host.is_empty() => rest.to_owned(),
                Some(rest) => format!("{host}/{rest}"),
            };
            if best.as_ref().is_none_or(|(len, _)| target.len() > *len) {
                best = Some((target.len(), file));
            }
        }
        best.map(|(_, file)| file)
    }

    /// The audited files of `kind` mounted into `service`.
    pub fn files_in(&self, service: &ComposeService, kind: FileKind) -> Vec<&'a Audited> {
        self.files
            .iter()
            .filter(|f| f.kind == kind)
            .filter(|f| {
                service
                    .mounts
                    .iter()
                    .any(|(_, h)| h.as_deref().is_some_and(|h| covers(h, &f.rel)))
            })
            .collect()
    }

    /// "did you mean" among the compose services, for a host that names none.
    pub fn nearest_service(&self, host: &str) -> String {
        crate::suggest::did_you_mean(host, self.services.keys().map(String::as_str))
    }

    /// Whether a service publishes `port` on the host.
    pub fn published(&self, port: &str) -> bool {
        self.services
            .values()
            .any(|s| s.ports.iter().any(|p| p.published == port))
    }
}

/// `dir_or_file` is `rel` itself or a directory holding it. A mount of the whole audited
/// directory (`.:/app`) ships the project, not a config: it ties no file to the service.
fn covers(dir_or_file: &str, rel: &str) -> bool {
    !dir_or_file.is_empty()
        && (rel == dir_or_file
            || rel
                .strip_prefix(dir_or_file)
                .is_some_and(|rest| rest.starts_with('/')))
}

fn read_service(
    name: &str,
    file: &str,
    service: &Value,
    root: &Path,
    base: &Path,
) -> ComposeService {
    let depends_on = match &service["depends_on"] {
        Value::Array(items) => items
            .iter()
            .filter_map(Value::as_str)
            .map(|n| (n.to_owned(), None))
            .collect(),
        Value::Object(map) => map
            .iter()
            .map(|(n, v)| (n.clone(), v["condition"].as_str().map(String::from)))
            .collect(),
        _ => Vec::new(),
    };
    let healthcheck = service
        .get("healthcheck")
        .is_some_and(|h| h["disable"] != Value::Bool(true));
    let memory_limit = service["deploy"]["resources"]["limits"]["memory"]
        .as_str()
        .or_else(|| service["mem_limit"].as_str())
        .and_then(compose_bytes)
        .or_else(|| service["mem_limit"].as_u64());
    let mounts = service["volumes"]
        .as_array()
        .into_iter()
        .flatten()
        .map(mount)
        .map(|m| {
            let host = (m.kind == "bind")
                .then(|| host_path(&m.source, root, base))
                .flatten();
            (m, host)
        })
        .collect();
    ComposeService {
        name: name.to_owned(),
        file: file.to_owned(),
        image: service["image"].as_str().map(String::from),
        builds: service.get("build").is_some(),
        ports: service["ports"]
            .as_array()
            .into_iter()
            .flatten()
            .map(port_spec)
            .collect(),
        expose: string_items(&service["expose"])
            .iter()
            .map(|e| with_defaults(e))
            .collect(),
        healthcheck,
        depends_on,
        memory_limit,
        environment: environment(&service["environment"]),
        extra_hosts: environment(&service["extra_hosts"])
            .into_iter()
            .map(|(name, _)| name.split(':').next().unwrap_or("").to_string())
            .collect(),
        mounts,
    }
}

/// `environment:` as a map or a list of `KEY=value`.
pub fn environment(value: &Value) -> Vec<(String, String)> {
    match value {
        Value::Object(map) => map
            .iter()
            .map(|(k, v)| {
                (
                    k.clone(),
                    v.as_str().map(String::from).unwrap_or_else(|| match v {
                        Value::Null => String::new(),
                        other => other.to_string(),
                    }),
                )
            })
            .collect(),
        Value::Array(items) => items
            .iter()
            .filter_map(Value::as_str)
            .map(|item| match item.split_once('=') {
                Some((k, v)) => (k.to_owned(), v.to_owned()),
                None => (item.to_owned(), String::new()),
            })
            .collect(),
        _ => Vec::new(),
    }
}

/// A bind source relative to the audited directory (`./config/x` of a compose file in
/// `deploy/` -> `deploy/config/x`); None outside it.
fn host_path(source: &str, root: &Path, base: &Path) -> Option<String> {
    let joined: PathBuf = if Path::new(source).is_absolute() {
        PathBuf::from(source).strip_prefix(root).ok()?.to_path_buf()
    } else {
        base.join(source)
    };
    let mut parts: Vec<String> = Vec::new();
    for component in joined.components() {
        match component {
            Component::Normal(part) => parts.push(part.to_string_lossy().into_owned()),
            Component::ParentDir => {
                parts.pop()?;
            }
            _ => {}
        }
    }
    Some(parts.join("/"))
}

/// Compose byte values: `512M`, `1g`, `256mb`, `1073741824`.
pub fn compose_bytes(text: &str) -> Option<u64> {
    let text = text.trim().to_ascii_lowercase();
    let digits: String = text
        .chars()
        .take_while(|c| c.is_ascii_digit() || *c == '.')
        .collect();
    let number: f64 = digits.parse().ok()?;
    let factor = match text[digits.len()..].trim_end_matches(['b', 'i']) {
        "" => 1.0,
        "k" => 1024.0,
        "m" => 1048576.0,
        "g" => 1073741824.0,
        _ => return None,
    };
    Some((number * factor) as u64)
}

/// The items of a YAML list as strings (numbers as written); anything else is no list.
pub fn string_items(value: &Value) -> Vec<String> {
    match value {
        Value::Array(items) => items
            .iter()
            .map(|i| {
                i.as_str()
                    .map(String::from)
                    .unwrap_or_else(|| i.to_string())
            })
            .collect(),
        _ => Vec::new(),
    }
}
