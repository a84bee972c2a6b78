//! The whole rendered stack on a real three-node Docker Swarm: the host's dockerd and two
//! dockerd daemons in network namespaces of the test's own (deploy/swarm/nodes.sh). Stages,
//! named in the output:
//!
//! images -> swarm (3 nodes, images copied) -> render (with secrets) -> deploy (deploy.sh:
//! secrets, stack deploy, migrations job, RabbitMQ cluster job; every task healthy; the
//! PostgreSQL standby streaming) -> messages (replay jobs ->
//! stored once -> published once -> consumed; on the standby too) -> host agents
//! (node-exporter on every node, each task scraped) -> redeploy (deploy.sh again: migrations
//! first, nothing changes, every service converges) -> node loss (the Redis master's node
//! stopped, with a RabbitMQ member and the PostgreSQL primary: the failover script promotes
//! the standby and repoints PgBouncer, the Sentinels promote the replica, nothing stored is
//! lost, the two RabbitMQ members left hand out every queued message, the pipeline goes
//! on) -> rejoin (the node comes back Ready, the old master returns as a replica, the
//! RabbitMQ member rejoins its cluster) -> rebuild (the model names the promoted
//! PostgreSQL, deploy.sh rebuilds the former primary as its standby) -> remove
//! (swarm/remove.sh leaves nothing of the stack but its volumes). The same deploy, messages
//! and remove on a swarm of one node are the baseline of the deploy time.
//!
//! The model is `stack.toml + examples/swarm.toml + deploy/swarm/overlay.toml + a run
//! overlay` naming the real nodes. The test reads PostgreSQL (through PgBouncer) and
//! RabbitMQ (the member on node 1) at the ports they publish on node 1 (the host), on
//! 127.0.0.1, and reaches tasks
//! with `docker exec` on their node's daemon. A Drop guard removes the stack, the test's
//! jobs, configs and secrets, the stack's volumes on every node, and the nodes themselves,
//! by ID and by the run's names, also on failure.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, bail, ensure};

use crate::e2e_stack::{
    ENGINE, consumed_counts_at, docker, event_lines, list, log, output, random_secret, root, run,
    stored_counts_at, wait_for,
};

const BINARY: &str = env!("CARGO_BIN_EXE_tg-gateway");
/// Published by deploy/swarm/overlay.toml on the node that runs them: node 1, the host.
const PGBOUNCER: u16 = 29434;
/// The first RabbitMQ member's published port (deploy/swarm/overlay.toml); member `i`
/// publishes this + i - 1 on its node.
const RABBITMQ: u16 = 29672;
/// Prometheus's port in the reference stack.toml (read inside its task, not published).
const PROMETHEUS: u16 = 9090;

/// One node of the test swarm: its swarm host name and its daemon's socket.
#[derive(Clone)]
struct Node {
    hostname: String,
    sock: String,
}

/// Everything of one run; dropping it removes what the run created.
struct Swarm {
    /// Nodes of the swarm: 3 (the scenario with a node lost), or 1 (the baseline).
    size: usize,
    run_id: String,
    project: String,
    dir: PathBuf,
    generated: PathBuf,
    secrets: PathBuf,
    nodes: Vec<Node>,
    images: BTreeMap<String, String>,
    secret_values: BTreeMap<String, String>,
    /// Configs and secrets the test itself created (replay inputs), by ID.
    own_objects: Vec<(&'static str, String)>,
    /// The RabbitMQ members (one, `rabbitmq`, on one node; `rabbitmq-1..3` spread over
    /// three), the one on node 1 and the port it publishes there.
    rabbit_members: Vec<String>,
    host_member: String,
    rabbit_port: u16,
    /// PostgreSQL with its standby (three nodes): the instance that serves as the primary
    /// (put on node 2, which the node-loss stage stops) and the standby (on node 1), and
    /// the model's `promoted` that puts them so.
    pg: Option<PgPair>,
    /// The run's overlay subnets (data, monitoring), taken once: every render of the run
    /// must give the networks Swarm already made, and pg_hba the addresses on them.
    subnets: Option<(String, String)>,
    jobs: usize,
    timings: Vec<(String, Duration)>,
    _tmp: tempfile::TempDir,
}

/// The two instances of the database, by role.
#[derive(Clone)]
struct PgPair {
    primary: String,
    standby: String,
    promoted: bool,
}

fn nodes_sh(args: &[&str]) -> Result<String> {
    run(Command::new("bash")
        .arg(root().join("deploy/swarm/nodes.sh"))
        .args(args))
}

impl Drop for Swarm {
    fn drop(&mut self) {
        let project = self.project.clone();
        let quiet = |args: &[&str]| {
            let _ = output(Command::new("docker").args(args));
        };
        // The jobs first: a job still attached keeps the stack's networks from going.
        for job in 0..self.jobs {
            quiet(&["service", "rm", &format!("{project}_replay-{job}")]);
        }
        quiet(&["service", "rm", &format!("{project}_migrate")]);
        quiet(&["stack", "rm", &project]);
        // Tasks release their configs, secrets and volumes once they are gone (bounded).
        let label = format!("label=com.docker.stack.namespace={project}");
        for _ in 0..60 {
            if list(&["service", "ls", "-q", "--filter", &label]).is_empty() {
                break;
            }
            std::thread::sleep(Duration::from_secs(1));
        }
        for (kind, id) in self.own_objects.drain(..) {
            quiet(&[kind, "rm", &id]);
        }
        for id in list(&[
            "secret",
            "ls",
            "-q",
            "--filter",
            &format!("label=tgstack.stack={project}"),
        ]) {
            quiet(&["secret", "rm", &id]);
        }
        for filter in [label.clone(), format!("label=tgstack.stack={project}")] {
            for id in list(&["config", "ls", "-q", "--filter", &filter]) {
                quiet(&["config", "rm", &id]);
            }
        }
        for node in &self.nodes {
            for _ in 0..30 {
                let containers = list(&["-H", &node.sock, "ps", "-aq", "--filter", &label]);
                if containers.is_empty() {
                    break;
                }
                for id in containers {
                    quiet(&["-H", &node.sock, "rm", "-f", &id]);
                }
                std::thread::sleep(Duration::from_secs(1));
            }
            for volume in list(&["-H", &node.sock, "volume", "ls", "-q", "--filter", &label]) {
                quiet(&["-H", &node.sock, "volume", "rm", "-f", &volume]);
            }
        }
        // The stack's overlay networks gone before the swarm is left (bounded): leaving
        // first can keep their address pools claimed in the host's daemon.
        for _ in 0..30 {
            if list(&["network", "ls", "-q", "--filter", &label]).is_empty() {
                break;
            }
            std::thread::sleep(Duration::from_secs(1));
        }
        if let Err(error) = nodes_sh(&["down", &self.run_id]) {
            log(format!("teardown: nodes.sh down: {error:#}"));
        }
        log(format!(
            "teardown: removed stack {project} and swarm {}",
            self.run_id
        ));
    }
}

impl Swarm {
    fn stage(&mut self, name: &str, body: impl FnOnce(&mut Swarm) -> Result<()>) {
        log(format!("== swarm stage {name}"));
        let start = Instant::now();
        if let Err(error) = body(self) {
            self.dump();
            panic!("swarm stage {name} failed: {error:#}");
        }
        let took = start.elapsed();
        log(format!(
            "== swarm stage {name}: ok ({:.1} s)",
            took.as_secs_f64()
        ));
        self.timings.push((name.to_string(), took));
    }

    fn secret(&self, var: &str) -> &str {
        self.secret_values
            .get(var)
            .map(String::as_str)
            .unwrap_or("")
    }

    fn service(&self, name: &str) -> String {
        format!("{}_{name}", self.project)
    }

    fn node(&self, hostname: &str) -> Result<&Node> {
        self.nodes
            .iter()
            .find(|n| n.hostname == hostname)
            .ok_or_else(|| anyhow!("no test node named {hostname}"))
    }

    /// The nodes of a service's tasks that should be running.
    fn task_nodes(&self, service: &str) -> Result<Vec<String>> {
        let out = docker(&[
            "service",
            "ps",
            "--filter",
            "desired-state=running",
            "--format",
            "{{.Node}}",
            &self.service(service),
        ])?;
        Ok(out.lines().map(|l| l.trim().to_string()).collect())
    }

    /// The running container of a one-task service, on its node's daemon.
    fn task_container(&self, service: &str) -> Result<(Node, String)> {
        let full = self.service(service);
        let nodes = self.task_nodes(service)?;
        let node = self
            .node(nodes.first().map(String::as_str).unwrap_or_default())?
            .clone();
        let label = format!("label=com.docker.swarm.service.name={full}");
        let ids = list(&["-H", &node.sock, "ps", "-q", "--filter", &label]);
        let id = ids
            .first()
            .cloned()
            .ok_or_else(|| anyhow!("no running container of {full} on {}", node.hostname))?;
        Ok((node, id))
    }

    fn exec(&self, service: &str, env: &[(&str, &str)], args: &[&str]) -> Result<String> {
        let (node, id) = self.task_container(service)?;
        let mut command = Command::new("docker");
        command.args(["-H", &node.sock, "exec"]);
        // Values through docker's own environment, never on its command line (which a
        // failure message prints).
        for (key, value) in env {
            command.args(["-e", key]).env(key, value);
        }
        command.arg(&id).args(args);
        run(&mut command)
    }

    /// Services of the stack and their `running/desired` tasks.
    fn replicas(&self) -> Result<BTreeMap<String, String>> {
        let label = format!("label=com.docker.stack.namespace={}", self.project);
        let out = docker(&[
            "service",
            "ls",
            "--filter",
            &label,
            "--format",
            "{{.Name}} {{.Replicas}}",
        ])?;
        Ok(out
            .lines()
            .filter_map(|l| l.split_once(' '))
            .map(|(name, replicas)| (name.to_string(), replicas.to_string()))
            .collect())
    }

    /// Every service of the stack has all its tasks running (healthy, for those with a
    /// healthcheck: Swarm runs a task only once its healthcheck passes).
    fn wait_healthy(&self, limit: Duration, except: &[&str]) -> Result<()> {
        wait_for(
            "every service running",
            limit,
            Duration::from_secs(2),
            || {
                let replicas = self.replicas()?;
                let waiting: Vec<String> = replicas
                    .iter()
                    .filter(|(name, _)| !except.iter().any(|e| **name == self.service(e)))
                    .filter(|(_, r)| {
                        let (running, desired) = r.split_once('/').unwrap_or(("0", "1"));
                        running != desired.split_whitespace().next().unwrap_or("")
                    })
                    .map(|(name, r)| format!("{name} {r}"))
                    .collect();
                if replicas.is_empty() {
                    bail!("no service of {} yet", self.project);
                }
                if waiting.is_empty() {
                    return Ok(Some(()));
                }
                bail!("waiting for {}", waiting.join(", "))
            },
        )
    }

    fn dump(&self) {
        log(format!(
            "services: {:?}",
            self.replicas().unwrap_or_default()
        ));
        for (name, _) in self.replicas().unwrap_or_default() {
            if let Ok(out) = docker(&[
                "service",
                "ps",
                "--no-trunc",
                "--format",
                "{{.Name}} {{.Node}} {{.CurrentState}} {{.Error}}",
                &name,
            ]) {
                log(format!("{name}:\n{}", out.trim_end()));
            }
            if let Ok(out) = output(
                Command::new("docker").args(["service", "logs", "--raw", "--tail", "15", &name]),
            ) {
                let text = String::from_utf8_lossy(&out.stdout).into_owned()
                    + &String::from_utf8_lossy(&out.stderr);
                log(format!("{name} logs:\n{}", text.trim_end()));
            }
        }
    }
}

fn prepare(size: usize) -> Swarm {
    let (tmp, suffix) = crate::e2e_stack::run_scratch("tgstack-swarm-");
    let dir = tmp.path().to_path_buf();
    Swarm {
        size,
        project: format!("tgsw{suffix}"),
        run_id: format!("s{suffix}"),
        generated: dir.join("generated"),
        secrets: dir.join("secrets"),
        dir,
        nodes: Vec::new(),
        images: BTreeMap::new(),
        secret_values: BTreeMap::new(),
        own_objects: Vec::new(),
        rabbit_members: Vec::new(),
        host_member: String::new(),
        rabbit_port: RABBITMQ,
        pg: None,
        subnets: None,
        jobs: 0,
        timings: Vec::new(),
        _tmp: tmp,
    }
}

fn stage_images(s: &mut Swarm) -> Result<()> {
    let binary = s.dir.join("tg-gateway");
    std::fs::copy(BINARY, &binary).context("copy the tg-gateway binary")?;
    let out = run(Command::new("bash")
        .arg(root().join("deploy/e2e/images.sh"))
        .arg("--gateway-binary")
        .arg(&binary))?;
    for line in out.lines() {
        if let Some((name, image)) = line.split_once('=') {
            s.images.insert(name.to_string(), image.to_string());
        }
    }
    ensure!(s.images.contains_key("tg-gateway"), "images.sh: {out}");
    Ok(())
}

/// The stand-in image of each service of the swarm model: the end-to-end test's.
const SERVICES: &[(&str, &str)] = crate::e2e_stack::STANDIN_IMAGES;

fn stage_swarm(s: &mut Swarm) -> Result<()> {
    let start = Instant::now();
    let size = s.size;
    let out = nodes_sh(&["up", &s.run_id, &size.to_string()])?;
    let value = |key: &str| {
        out.lines()
            .find_map(|l| l.strip_prefix(&format!("{key}=")))
            .map(str::to_string)
            .ok_or_else(|| anyhow!("nodes.sh up printed no {key}: {out}"))
    };
    for k in 1..=size {
        s.nodes.push(Node {
            hostname: value(&format!("node-{k}"))?,
            sock: value(&format!("sock-{k}"))?,
        });
    }
    s.timings
        .push((format!("swarm up ({size} nodes)"), start.elapsed()));
    let start = Instant::now();
    let mut images: Vec<&str> = SERVICES
        .iter()
        .map(|(_, i)| s.images[*i].as_str())
        .collect();
    images.sort();
    images.dedup();
    let mut args = vec!["load", s.run_id.as_str()];
    args.extend(images);
    nodes_sh(&args)?;
    s.timings
        .push(("images copied to the nodes".into(), start.elapsed()));
    let ready = docker(&["node", "ls", "--format", "{{.Hostname}} {{.Status}}"])?;
    ensure!(
        ready.lines().filter(|l| l.ends_with(" Ready")).count() >= size,
        "nodes: {ready}"
    );
    Ok(())
}

/// Two /24s of 172.29.0.0/16 for the run's overlay networks, none of an existing network
/// and none an earlier run used (a machine-wide sequence under the ENGINE lock). A swarm
/// left right after its stack was removed can leave an overlay's address pool claimed in
/// the host daemon, invisible to `docker network ls`: a later network on that subnet
/// then has every task rejected ("Pool overlaps with other one on this address space").
fn fresh_subnets() -> (String, String) {
    let in_use: Vec<String> = list(&["network", "ls", "-q"])
        .iter()
        .filter_map(|id| {
            docker(&[
                "network",
                "inspect",
                "--format",
                "{{range .IPAM.Config}}{{.Subnet}} {{end}}",
                id,
            ])
            .ok()
        })
        .flat_map(|subnets| {
            subnets
                .split_whitespace()
                .map(String::from)
                .collect::<Vec<_>>()
        })
        .collect();
    let sequence = std::env::temp_dir().join("tgstack-swarm-subnet-sequence");
    let mut n: u32 = std::fs::read_to_string(&sequence)
        .ok()
        .and_then(|t| t.trim().parse().ok())
        .unwrap_or(0);
    for _ in 0..120 {
        let third = 2 * (n % 120) + 10;
        n += 1;
        let pair = (
            format!("172.29.{third}.0/24"),
            format!("172.29.{}.0/24", third + 1),
        );
        if !in_use.contains(&pair.0) && !in_use.contains(&pair.1) {
            let _ = std::fs::write(&sequence, n.to_string());
            return pair;
        }
    }
    panic!("every /24 pair of 172.29.0.0/16 the test uses is taken: {in_use:?}");
}

/// The run overlay: the real nodes, a unique stack name, the secrets dir and the stand-in
/// images. Three nodes: node 1 (the host, whose ports the test reads on 127.0.0.1) holds
/// PostgreSQL, PgBouncer and RabbitMQ, node 2 the Redis master, node 3 the replica and
/// Prometheus. One node holds everything, with nothing spread and smaller limits (Swarm
/// reserves them, and the node has 2 CPUs).
fn run_overlay(s: &Swarm) -> String {
    let nodes: Vec<&str> = s.nodes.iter().map(|n| n.hostname.as_str()).collect();
    let node = |i: usize| nodes[i.min(nodes.len() - 1)];
    let spread = s.size > 1;
    // One node holds no standby: the primary and its standby would share it.
    let unset = if spread {
        "\"hosts\""
    } else {
        "\"hosts\", \"services.timescaledb.postgres.standby\""
    };
    let mut text = format!(
        "name = \"{}\"\nunset = [{unset}]\n\n[deploy]\nsecrets_dir = \"{}\"\n",
        s.project,
        s.secrets.display()
    );
    let (data, monitoring) = s.subnets.clone().unwrap_or_default();
    text.push_str(&format!(
        "\n[networks.data]\nsubnet = \"{data}\"\n\n[networks.monitoring]\nsubnet = \"{monitoring}\"\n"
    ));
    let roles = ["data", "data", "monitoring"];
    for (i, name) in nodes.iter().enumerate() {
        text.push_str(&format!(
            "\n[hosts.\"{name}\"]\ncpus = 2.0\nmemory = \"12GiB\"\nlabels = {{ role = \"{}\" }}\n",
            roles[i]
        ));
    }
    // RabbitMQ: three members spread over three nodes; one node runs one.
    if !spread {
        text.push_str("\n[services.rabbitmq.rabbitmq]\nmembers = 1\n");
        text.push_str(&format!(
            "\n[services.timescaledb.placement]\nhost = \"{}\"\n",
            node(0)
        ));
    }
    // The database spreads over the two data nodes (examples/swarm.toml); `promoted`
    // chooses which instance serves.
    if let Some(pg) = &s.pg {
        text.push_str(&format!(
            "\n[services.timescaledb.postgres.standby]\npromoted = {}\n",
            pg.promoted
        ));
    }
    for (service, i) in [
        ("pgbouncer", 0),
        ("redis-master", 1),
        ("redis-replica", 2),
        ("prometheus", 2),
    ] {
        text.push_str(&format!(
            "\n[services.{service}.placement]\nhost = \"{}\"\n",
            node(i)
        ));
    }
    for service in ["sentinel", "rabbitmq", "gateway-api"] {
        text.push_str(&format!(
            "\n[services.{service}.placement]\nspread = {spread}\n"
        ));
    }
    let small = [
        "pgbouncer",
        "gateway-api",
        "prometheus",
        "postgres-exporter",
        "redis-exporter",
        "pgbouncer-exporter",
        "node-exporter",
    ];
    for (service, image) in SERVICES {
        text.push_str(&format!(
            "\n[services.{service}]\nimage = \"{}\"\n",
            s.images[*image]
        ));
        if !spread && small.contains(service) {
            text.push_str("cpus = 0.05\n");
        }
    }
    text
}

fn stage_render(s: &mut Swarm) -> Result<()> {
    s.subnets = Some(fresh_subnets());
    let model = load_model(s)?;
    // The primary goes on node 2, which the node-loss stage stops: the plan puts the
    // instances on the data nodes by name, and `promoted` says which one serves.
    if s.size > 1 {
        let plan = model.stack.swarm_plan();
        let on_node_2 = plan
            .of("timescaledb")
            .find(|t| t.node.as_deref() == Some(s.nodes[1].hostname.as_str()))
            .map(|t| t.instance.clone())
            .ok_or_else(|| anyhow!("the plan puts no database instance on node 2"))?;
        let promoted = on_node_2 != "timescaledb";
        let other = if promoted {
            "timescaledb"
        } else {
            "timescaledb-2"
        };
        s.pg = Some(PgPair {
            primary: on_node_2,
            standby: other.to_string(),
            promoted,
        });
    }
    render_model(s)
}

/// The model of the run: the reference, examples/swarm.toml, the test's overlay and
/// the run's own (nodes, images, subnets, the database's `promoted`).
fn load_model(s: &Swarm) -> Result<tgstack::model::Model> {
    let overlay = s.dir.join("run-overlay.toml");
    std::fs::write(&overlay, run_overlay(s))?;
    let files = vec![
        root().join("stack.toml"),
        root().join("examples/swarm.toml"),
        root().join("deploy/swarm/overlay.toml"),
        overlay,
    ];
    tgstack::model::load_files(&files).map_err(|f| anyhow!("model: {}", tgstack::report::human(&f)))
}

/// Validates and renders the run's model into the run's tree, with its secret files
/// (the same values on every render of the run).
fn render_model(s: &mut Swarm) -> Result<()> {
    let model = load_model(s)?;
    rabbit_members(s, &model.stack)?;
    let report = tgstack::validate(&model, None, tgstack::Against::Rendered);
    ensure!(
        !report.fails(false),
        "the swarm model does not validate:\n{}",
        tgstack::report::human(&report.findings)
    );
    // This checkout's templates (a shared target dir may embed another checkout's).
    let templates = root().join("templates");
    let rendered = tgstack::render(&model, Some(&templates))
        .map_err(|f| anyhow!("render: {}", tgstack::report::human(&f)))?;
    for secret in model.stack.secrets.values() {
        s.secret_values
            .entry(secret.env.clone())
            .or_insert_with(random_secret);
    }
    s.secret_values
        .entry("TG_TELEGRAM_API_HASH".into())
        .or_insert_with(random_secret);
    let values = s.secret_values.clone();
    let lookup = move |var: &str| values.get(var).cloned();
    let resolved = tgstack::render::secrets::resolve(&model.stack, &lookup)
        .map_err(|f| anyhow!("secrets: {}", tgstack::report::human(&f)))?;
    let files = tgstack::render::secrets::files(&model, &resolved);
    tgstack::render::secrets::write(&s.secrets, &files)?;
    tgstack::render::write::write_tree(&rendered.tree, &s.generated)?;
    log(format!(
        "rendered {} files, {} secret files",
        rendered.tree.len(),
        files.len()
    ));
    Ok(())
}

/// The RabbitMQ members, and which of them the plan puts on node 1 (the host), where
/// the test reaches it on its published port.
fn rabbit_members(s: &mut Swarm, stack: &tgstack::model::Stack) -> Result<()> {
    let service = stack
        .service("rabbitmq")
        .ok_or_else(|| anyhow!("no rabbitmq in the model"))?;
    let instances = stack.instances("rabbitmq", service);
    let plan = stack.swarm_plan();
    let host = &s.nodes[0].hostname;
    let on_host = plan
        .of("rabbitmq")
        .find(|t| t.node.as_deref() == Some(host.as_str()))
        .ok_or_else(|| anyhow!("the plan puts no RabbitMQ member on {host}"))?;
    let member = instances
        .iter()
        .find(|i| i.name == on_host.instance)
        .ok_or_else(|| anyhow!("no instance {}", on_host.instance))?;
    s.rabbit_port = member
        .publish
        .ok_or_else(|| anyhow!("{} publishes no port", member.name))?;
    s.host_member = member.name.clone();
    s.rabbit_members = instances.into_iter().map(|i| i.name).collect();
    Ok(())
}

/// swarm/deploy.sh of the rendered tree; its log (stderr), which it writes with no value.
fn deploy(s: &Swarm) -> Result<String> {
    let out = deploy_run(s)?;
    let log_text = String::from_utf8_lossy(&out.stderr).into_owned();
    ensure!(out.status.success(), "deploy.sh failed:\n{log_text}");
    Ok(log_text)
}

/// swarm/deploy.sh of the rendered tree, as it ended.
fn deploy_run(s: &Swarm) -> Result<std::process::Output> {
    output(
        Command::new("bash")
            .arg(s.generated.join("swarm/deploy.sh"))
            .env("TGSTACK_DIR", &s.generated)
            .env("TGSTACK_SECRETS_DIR", &s.secrets)
            .env("TGSTACK_WAIT_SECONDS", "300")
            // The images are on the nodes already (nodes.sh load); no registry is reachable.
            .env("TGSTACK_RESOLVE_IMAGE", "never"),
    )
}

fn stage_deploy(s: &mut Swarm) -> Result<()> {
    let start = Instant::now();
    let log_text = deploy(s)?;
    ensure!(
        log_text.contains("migrations applied"),
        "deploy.sh applied no migrations:\n{log_text}"
    );
    s.wait_healthy(Duration::from_secs(420), &[])?;
    let took = start.elapsed();
    s.timings
        .push((format!("deploy to healthy ({} nodes)", s.size), took));
    log(format!(
        "deploy to healthy on {} nodes: {:.1} s",
        s.size,
        took.as_secs_f64()
    ));
    // The placement the model asked for is where Swarm put the tasks.
    let (master, replica) = if s.size == 1 { (0, 0) } else { (1, 2) };
    let database = match &s.pg {
        Some(pg) => vec![(pg.primary.as_str(), 1), (pg.standby.as_str(), 0)],
        None => vec![("timescaledb", 0)],
    };
    for (service, node) in database
        .into_iter()
        .chain([("redis-master", master), ("redis-replica", replica)])
    {
        let (on, _) = s.task_container(service)?;
        ensure!(
            on.hostname == s.nodes[node].hostname,
            "{service} runs on {}, not {}",
            on.hostname,
            s.nodes[node].hostname
        );
    }
    let sentinel_nodes: std::collections::BTreeSet<String> = (1..=3)
        .map(|i| {
            s.task_container(&format!("sentinel-{i}"))
                .map(|(n, _)| n.hostname)
        })
        .collect::<Result<_>>()?;
    ensure!(
        sentinel_nodes.len() == s.size,
        "the Sentinels share a node: {sentinel_nodes:?}"
    );
    let (on, _) = s.task_container(&s.host_member)?;
    ensure!(
        on.hostname == s.nodes[0].hostname,
        "{} runs on {}, not on node 1",
        s.host_member,
        on.hostname
    );
    if s.rabbit_members.len() > 1 {
        let member_nodes: std::collections::BTreeSet<String> = s
            .rabbit_members
            .iter()
            .map(|m| s.task_container(m).map(|(n, _)| n.hostname))
            .collect::<Result<_>>()?;
        ensure!(
            member_nodes.len() == s.size,
            "the RabbitMQ members share a node: {member_nodes:?}"
        );
        ensure!(
            log_text.contains("members in one cluster, each on every quorum queue"),
            "deploy.sh did not check the RabbitMQ cluster:\n{log_text}"
        );
        // A member that booted before its peers were in the DNS formed a cluster of its
        // own; the deploy's cluster job joined it (the job's log reaches deploy.sh's).
        for line in log_text
            .lines()
            .filter(|l| l.contains("joining it to the cluster"))
        {
            log(format!("RabbitMQ cluster job: {line}"));
        }
        for queue in [
            "telegram.signals",
            "telegram.archive",
            "telegram.dead-letter",
        ] {
            let members = quorum_members(s, queue)?;
            ensure!(
                members.len() == s.rabbit_members.len(),
                "{queue} is on {members:?}, not on every member"
            );
        }
        log(format!(
            "RabbitMQ: {} in one cluster, every queue a quorum queue on each",
            s.rabbit_members.join(", ")
        ));
    }
    if let Some(pg) = s.pg.clone() {
        // The standby copied the primary once the migrations made its role, and streams.
        wait_streaming(s, &pg, Duration::from_secs(300))?;
        s.timings
            .push(("deploy: the standby streaming".into(), start.elapsed()));
        log(format!(
            "PostgreSQL: {} serves on node 2, {} streams from it on node 1",
            pg.primary, pg.standby
        ));
    }
    Ok(())
}

/// One value of `sql`, run by psql as the superuser inside `instance`'s task.
fn pg_value(s: &Swarm, instance: &str, sql: &str) -> Result<String> {
    let password = s.secret("TG_POSTGRES_PASSWORD").to_string();
    let out = s.exec(
        instance,
        &[("PGPASSWORD", &password)],
        &[
            "psql",
            "-X",
            "-A",
            "-t",
            "-h",
            "127.0.0.1",
            "-U",
            "postgres",
            "-d",
            "telegram",
            "-c",
            sql,
        ],
    )?;
    Ok(out.trim().to_string())
}

/// The standby is in recovery and the primary sends it the WAL.
fn wait_streaming(s: &Swarm, pg: &PgPair, limit: Duration) -> Result<()> {
    wait_for(
        "the standby streaming from the primary",
        limit,
        Duration::from_secs(2),
        || {
            let streaming = pg_value(
                s,
                &pg.primary,
                "SELECT count(*) FROM pg_stat_replication WHERE state = 'streaming'",
            )?;
            let recovery = pg_value(s, &pg.standby, "SELECT pg_is_in_recovery()")?;
            Ok((streaming == "1" && recovery == "t").then_some(()))
        },
    )
}

/// The standby has replayed messages `first..first + count`, each once.
fn wait_on_standby(s: &Swarm, pg: &PgPair, first: i64, count: i64) -> Result<()> {
    let sql = format!(
        "SELECT count(*) FILTER (WHERE n = 1) || ' ' || count(*) FROM (SELECT count(*) AS n \
         FROM telegram.messages WHERE message_id >= {first} AND message_id < {} \
         GROUP BY channel_id, message_id) AS m",
        first + count
    );
    let want = format!("{count} {count}");
    wait_for(
        "the standby holds the batch",
        Duration::from_secs(60),
        Duration::from_secs(1),
        || Ok((pg_value(s, &pg.standby, &sql)? == want).then_some(())),
    )
}

/// The members of quorum queue `queue` (`rabbit@<member>` with their Raft state), as the
/// member on node 1 reports them.
fn quorum_members(s: &Swarm, queue: &str) -> Result<Vec<String>> {
    let status = s.exec(
        &s.host_member,
        &[],
        &[
            "rabbitmq-queues",
            "-q",
            "quorum_status",
            queue,
            "--vhost",
            "telegram",
            "--formatter",
            "json",
        ],
    )?;
    let rows: serde_json::Value =
        serde_json::from_str(&status).with_context(|| format!("quorum_status: {status}"))?;
    Ok(rows
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|row| {
            let node = row["Node Name"].as_str()?;
            let state = row["Raft State"].as_str().unwrap_or("?");
            Some(format!("{node} ({state})"))
        })
        .collect())
}

/// The members the RabbitMQ member on node 1 sees running in its cluster.
fn running_members(s: &Swarm) -> Result<Vec<String>> {
    let status = s.exec(
        &s.host_member,
        &[],
        &["rabbitmqctl", "-q", "cluster_status", "--formatter", "json"],
    )?;
    let status: serde_json::Value =
        serde_json::from_str(&status).with_context(|| format!("cluster_status: {status}"))?;
    Ok(status["running_nodes"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|n| n.as_str().map(String::from))
        .collect())
}

/// The overlay the replay jobs read on top of the effective model: tg-gateway as a
/// container of the data network (the swarm model leaves it out: no Telegram here).
const REPLAY_OVERLAY: &str = r#"
[secrets.telegram_api_hash]
env = "TG_TELEGRAM_API_HASH"

[services.tg-gateway]
kind = "gateway"
image = "tg-gateway"
port = 4007
cpus = 0.1
memory = "300MiB"
networks = ["data"]

[services.tg-gateway.gateway]
api_id = 1234567
api_hash = { secret = "telegram_api_hash" }
database = "pgbouncer"
db_role = "tg_app"
redis = "redis-master"
broker = "rabbitmq"
broker_user = "tg_gateway"
"#;

/// The secret deploy.sh made for model secret `id` (`<project>_env-<id>_<hash>`), or, for
/// a credential only the replay's gateway reads (no service of the swarm model does), one
/// the test makes from the variable's value (once; removed by the Drop guard).
fn secret_for(s: &mut Swarm, id: &str, var: &str) -> Result<String> {
    let prefix = format!("{}_env-{id}_", s.project);
    if let Some(name) = list(&["secret", "ls", "--format", "{{.Name}}"])
        .into_iter()
        .find(|name| name.starts_with(&prefix))
    {
        return Ok(name);
    }
    let name = s.service(&format!("test-{id}"));
    if docker(&["secret", "inspect", &name]).is_err() {
        let value = s.secret(var).to_string();
        ensure!(!value.is_empty(), "no value for {var}");
        create_object(s, "secret", &name, &value)?;
    }
    Ok(name)
}

fn create_object(s: &mut Swarm, kind: &'static str, name: &str, content: &str) -> Result<()> {
    let mut child = Command::new("docker")
        .args([kind, "create", name, "-"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()?;
    {
        use std::io::Write as _;
        child.stdin.take().unwrap().write_all(content.as_bytes())?;
    }
    let out = child.wait_with_output()?;
    ensure!(
        out.status.success(),
        "docker {kind} create {name}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    s.own_objects.push((
        kind,
        String::from_utf8_lossy(&out.stdout).trim().to_string(),
    ));
    Ok(())
}

/// `tg-gateway replay` of `lines` as a one-off Swarm job of the gateway image on the data
/// network, reading its credentials from secrets as the services do.
fn replay_job(s: &mut Swarm, lines: &str) -> Result<String> {
    let job = s.jobs;
    s.jobs += 1;
    let name = s.service(&format!("replay-{job}"));
    if job == 0 {
        create_object(s, "config", &s.service("replay-overlay"), REPLAY_OVERLAY)?;
        let hash = s.secret("TG_TELEGRAM_API_HASH").to_string();
        create_object(s, "secret", &s.service("test-api-hash"), &hash)?;
    }
    create_object(s, "config", &format!("{name}-events"), lines)?;
    let stack_yml = std::fs::read_to_string(s.generated.join("swarm/stack.yml"))?;
    let model_config = stack_yml
        .lines()
        .skip_while(|l| !l.starts_with("  model-stack-toml:"))
        .find_map(|l| l.trim().strip_prefix("name: "))
        .map(|n| n.trim_matches('"').to_string())
        .ok_or_else(|| anyhow!("no model config in swarm/stack.yml"))?;
    let mut command = Command::new("docker");
    command.args([
        "service",
        "create",
        "--detach",
        "--quiet",
        "--name",
        &name,
        "--mode",
        "replicated-job",
        "--endpoint-mode",
        "dnsrr",
        "--no-resolve-image",
        "--restart-condition",
        "none",
        "--network",
    ]);
    command.arg(s.service("data"));
    // On node 1, the host's daemon, which no stage stops: a job task the managers hand to
    // a node that has just stopped (before they mark it down) is never run nor replaced.
    command.args([
        "--constraint",
        &format!("node.hostname=={}", s.nodes[0].hostname),
    ]);
    command.args([
        "--config",
        &format!("source={model_config},target=/etc/tgstack/stack.toml"),
    ]);
    command.args([
        "--config",
        &format!(
            "source={},target=/etc/tgstack/replay.toml",
            s.service("replay-overlay")
        ),
    ]);
    command.args([
        "--config",
        &format!("source={name}-events,target=/tmp/events.jsonl"),
    ]);
    command.args([
        "--secret",
        &format!(
            "source={},target=/run/secrets/telegram_api_hash",
            s.service("test-api-hash")
        ),
        "--env",
        "TG_TELEGRAM_API_HASH_FILE=/run/secrets/telegram_api_hash",
    ]);
    for (id, var) in [
        ("db-app", "TG_DB_APP_PASSWORD"),
        ("redis", "TG_REDIS_PASSWORD"),
        ("rabbitmq-gateway", "TG_RABBITMQ_GATEWAY_PASSWORD"),
    ] {
        command.args([
            "--secret",
            &format!(
                "source={},target=/run/secrets/{id}",
                secret_for(s, id, var)?
            ),
            "--env",
            &format!("{var}_FILE=/run/secrets/{id}"),
        ]);
    }
    command.args([
        "--env",
        "TGSTACK_MODEL=/etc/tgstack/stack.toml,/etc/tgstack/replay.toml",
        "--env",
        "TGSTACK_SERVICE=tg-gateway",
        &s.images["tg-gateway"],
        "tg-gateway",
        "replay",
        "/tmp/events.jsonl",
    ]);
    run(&mut command)?;
    let state = wait_for(
        "the replay job ends",
        Duration::from_secs(180),
        Duration::from_secs(1),
        || {
            let state = docker(&[
                "service",
                "ps",
                "--format",
                "{{.CurrentState}} {{.Error}}",
                &name,
            ])?;
            let first = state.lines().next().unwrap_or_default().to_string();
            Ok((first.starts_with("Complete")
                || first.starts_with("Failed")
                || first.starts_with("Rejected"))
            .then_some(first))
        },
    )?;
    let logs = output(Command::new("docker").args(["service", "logs", "--raw", &name]))?;
    let logs =
        String::from_utf8_lossy(&logs.stdout).into_owned() + &String::from_utf8_lossy(&logs.stderr);
    let _ = output(Command::new("docker").args(["service", "rm", &name]));
    ensure!(
        state.starts_with("Complete"),
        "replay job {name}: {state}\n{logs}"
    );
    ensure!(
        logs.contains("0 events left in the outbox"),
        "replay left events in the outbox: {logs}"
    );
    Ok(logs)
}

fn assert_once(s: &Swarm, first: i64, count: i64) -> Result<()> {
    let password = s.secret("TG_DB_APP_PASSWORD").to_string();
    let stored = wait_for(
        "rows stored",
        Duration::from_secs(30),
        Duration::from_secs(1),
        || {
            let stored = stored_counts_at(PGBOUNCER, &password, first, count)?;
            Ok((stored.len() as i64 == count).then_some(stored))
        },
    )?;
    ensure!(
        stored.values().all(|n| *n == 1),
        "a message stored more than once: {stored:?}"
    );
    for queue in ["telegram.signals", "telegram.archive"] {
        let consumed =
            consumed_counts_at(s.rabbit_port, s.secret("TG_RABBITMQ_ADMIN_PASSWORD"), queue)?;
        let ours: BTreeMap<_, _> = consumed
            .iter()
            .filter(|((_, m), _)| *m >= first && *m < first + count)
            .collect();
        ensure!(
            ours.len() as i64 == count && ours.values().all(|n| **n == 1),
            "{queue}: {} of {count} messages consumed, each once: {ours:?}",
            ours.len()
        );
    }
    log(format!(
        "{count} messages (each sent twice) stored once and published once to both queues"
    ));
    Ok(())
}

/// node-exporter runs once on every node (a global service), and Prometheus scrapes each
/// of those tasks (DNS service discovery of the name), not one of them.
fn stage_host_agents(s: &mut Swarm) -> Result<()> {
    let start = Instant::now();
    let nodes: std::collections::BTreeSet<String> =
        s.task_nodes("node-exporter")?.into_iter().collect();
    let all: std::collections::BTreeSet<String> =
        s.nodes.iter().map(|n| n.hostname.clone()).collect();
    ensure!(
        nodes == all,
        "node-exporter runs on {nodes:?}, not on every node {all:?}"
    );
    let url = format!("http://127.0.0.1:{PROMETHEUS}/api/v1/targets?state=active");
    let up = wait_for(
        "Prometheus scrapes node-exporter on every node",
        Duration::from_secs(120),
        Duration::from_secs(3),
        || {
            let body = s.exec("prometheus", &[], &["wget", "-qO-", &url])?;
            let targets: serde_json::Value = serde_json::from_str(&body)?;
            let up: Vec<String> = targets["data"]["activeTargets"]
                .as_array()
                .into_iter()
                .flatten()
                .filter(|t| t["labels"]["job"] == "node-exporter" && t["health"] == "up")
                .filter_map(|t| t["labels"]["instance"].as_str().map(String::from))
                .collect();
            Ok((up.len() == s.size).then_some(up))
        },
    )?;
    log(format!(
        "Prometheus scrapes node-exporter at {}",
        up.join(", ")
    ));
    s.timings
        .push(("host agents: every node scraped".into(), start.elapsed()));
    Ok(())
}

fn stage_messages(s: &mut Swarm) -> Result<()> {
    let lines = event_lines(1000, 30);
    let out = replay_job(s, &lines)?;
    log(out.lines().last().unwrap_or_default());
    replay_job(s, &lines)?;
    assert_once(s, 1000, 30)?;
    if let Some(pg) = s.pg.clone() {
        wait_on_standby(s, &pg, 1000, 30)?;
        log("the standby holds the 30 messages, each once");
    }
    Ok(())
}

/// deploy.sh again on the running stack: the migrations run first (the database is up),
/// nothing changes, every service converges, the stored messages stay once.
fn stage_redeploy(s: &mut Swarm) -> Result<()> {
    let start = Instant::now();
    // node-exporter as an earlier render deployed it, one replicated task: Swarm does not
    // change a mode in place, so deploy.sh must replace it.
    let agent = s.service("node-exporter");
    let image = docker(&[
        "service",
        "inspect",
        "--format",
        "{{.Spec.TaskTemplate.ContainerSpec.Image}}",
        &agent,
    ])?;
    run(Command::new("docker").args(["service", "rm", &agent]))?;
    run(Command::new("docker").args([
        "service",
        "create",
        "--detach",
        "--quiet",
        "--name",
        &agent,
        "--label",
        &format!("com.docker.stack.namespace={}", s.project),
        "--replicas",
        "1",
        "--no-resolve-image",
        image.trim(),
        "sleep",
        "infinity",
    ]))?;
    let log_text = deploy(s)?;
    ensure!(
        log_text.contains(&format!("removed {agent}, a replicated service")),
        "deploy.sh did not replace the replicated node-exporter:\n{log_text}"
    );
    let mode = docker(&[
        "service",
        "inspect",
        "--format",
        "{{if .Spec.Mode.Global}}global{{end}}",
        &agent,
    ])?;
    ensure!(mode.trim() == "global", "node-exporter's mode: {mode:?}");
    // The database runs: deploy.sh applies the migrations before the stack deploy.
    let migrated = log_text.find("migrations applied");
    let deployed = log_text.find(" deployed ");
    ensure!(
        matches!((migrated, deployed), (Some(m), Some(d)) if m < d),
        "deploy.sh did not migrate before deploying:\n{log_text}"
    );
    s.wait_healthy(Duration::from_secs(180), &[])?;
    s.timings.push(("redeploy".into(), start.elapsed()));
    let password = s.secret("TG_DB_APP_PASSWORD").to_string();
    let stored = stored_counts_at(PGBOUNCER, &password, 1000, 30)?;
    ensure!(
        stored.len() == 30 && stored.values().all(|n| *n == 1),
        "after the redeploy: {stored:?}"
    );
    Ok(())
}

fn sentinel_master(s: &Swarm, sentinel: &str) -> Result<String> {
    let out = s.exec(
        sentinel,
        &[],
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

/// The Sentinel on node 1 (the host's daemon, never stopped).
fn host_sentinel(s: &Swarm) -> Result<String> {
    for i in 1..=3 {
        let name = format!("sentinel-{i}");
        if s.task_container(&name)?.0.hostname == s.nodes[0].hostname {
            return Ok(name);
        }
    }
    bail!("no Sentinel on {}", s.nodes[0].hostname)
}

fn stage_node_loss(s: &mut Swarm) -> Result<()> {
    let sentinel = host_sentinel(s)?;
    let before = sentinel_master(s, &sentinel)?;
    ensure!(
        before == "redis-master",
        "the Sentinels name {before:?} as master"
    );
    // A batch published and left in the quorum queues: after the loss of a member they
    // still hold every message.
    replay_job(s, &event_lines(3000, 20))?;
    let pg =
        s.pg.clone()
            .ok_or_else(|| anyhow!("no standby in the three-node model"))?;
    // Asynchronous replication: what the standby has when the node goes is what is kept.
    wait_on_standby(s, &pg, 3000, 20)?;
    let lost_member = s
        .rabbit_members
        .iter()
        .find(|m| {
            s.task_container(m)
                .is_ok_and(|(node, _)| node.hostname == s.nodes[1].hostname)
        })
        .cloned()
        .unwrap_or_default();
    log(format!(
        "before the loss, telegram.signals is on {}; node 2 runs {lost_member}",
        quorum_members(s, "telegram.signals")?.join(", ")
    ));
    let start = Instant::now();
    nodes_sh(&["stop", &s.run_id, "2"])?;
    // The stop returns once the node's dockerd has stopped its containers and exited.
    s.timings
        .push(("node loss: node 2's daemon stopped".into(), start.elapsed()));
    let node = s.nodes[1].hostname.clone();
    wait_for(
        "the managers mark the node down",
        Duration::from_secs(90),
        Duration::from_millis(500),
        || {
            let status = docker(&["node", "inspect", &node, "--format", "{{.Status.State}}"])?;
            Ok((status.trim() == "down").then_some(()))
        },
    )?;
    s.timings
        .push(("node loss: node marked down".into(), start.elapsed()));
    // The primary went with node 2: the failover script promotes the standby on node 1
    // and points PgBouncer and the exporter at it.
    let script = Instant::now();
    let out = output(
        Command::new("bash")
            .arg(s.generated.join("swarm/timescaledb-failover.sh"))
            .env("TGSTACK_DIR", &s.generated)
            .env("TGSTACK_SECRETS_DIR", &s.secrets)
            .env("TGSTACK_WAIT_SECONDS", "120"),
    )?;
    let failover_log = String::from_utf8_lossy(&out.stderr).into_owned();
    ensure!(
        out.status.success(),
        "the failover script failed:\n{failover_log}"
    );
    ensure!(
        failover_log.contains(&format!("{} serves as the primary", pg.standby)),
        "the failover script said:\n{failover_log}"
    );
    let serving = pg_value(s, &pg.standby, "SELECT pg_is_in_recovery()")?;
    ensure!(serving == "f", "{} is still in recovery", pg.standby);
    s.timings
        .push(("node loss: failover script".into(), script.elapsed()));
    s.timings.push((
        "node loss: PostgreSQL standby serving".into(),
        start.elapsed(),
    ));
    let promoted = wait_for(
        "the Sentinels promote the replica",
        Duration::from_secs(90),
        Duration::from_millis(500),
        || {
            let now = sentinel_master(s, &sentinel)?;
            Ok((now != before && !now.is_empty()).then_some(now))
        },
    )?;
    let failover = start.elapsed();
    s.timings
        .push(("node loss: replica promoted".into(), failover));
    log(format!(
        "node {} stopped: the Sentinels promoted {promoted} in {:.1} s",
        s.nodes[1].hostname,
        failover.as_secs_f64()
    ));
    let auth = s.secret("TG_REDIS_PASSWORD").to_string();
    let role = s.exec(
        "redis-replica",
        &[("REDISCLI_AUTH", &auth)],
        &["redis-cli", "-p", "6379", "role"],
    )?;
    ensure!(role.starts_with("master"), "the replica's role is {role:?}");
    // Nothing stored is lost, and the pipeline goes on with the promoted replica.
    let password = s.secret("TG_DB_APP_PASSWORD").to_string();
    // Through PgBouncer, which now reaches the promoted standby.
    let kept = wait_for(
        "PgBouncer answers from the promoted standby",
        Duration::from_secs(60),
        Duration::from_secs(1),
        || stored_counts_at(PGBOUNCER, &password, 1000, 30).map(Some),
    )?;
    ensure!(
        kept.len() == 30,
        "{} of 30 stored messages left",
        kept.len()
    );
    // The two members left are a majority: the queued batch is all there, once.
    let running = running_members(s)?;
    ensure!(
        running.len() == 2,
        "RabbitMQ members running after the loss: {running:?}"
    );
    assert_once(s, 3000, 20)?;
    s.timings.push((
        "node loss: the queued batch consumed from the members left".into(),
        start.elapsed(),
    ));
    replay_job(s, &event_lines(2000, 15))?;
    assert_once(s, 2000, 15)?;
    let resumed = start.elapsed();
    s.timings
        .push(("node loss: next batch stored and published".into(), resumed));
    for id in 2000..2015_i64 {
        let channel = [-1001234567890_i64, -1001234567891, -1001234567892][(id % 3) as usize];
        let key = format!("tg:dedup:{channel}:{id}");
        let found = s.exec(
            "redis-replica",
            &[("REDISCLI_AUTH", &auth)],
            &["redis-cli", "-p", "6379", "exists", &key],
        )?;
        ensure!(
            found.trim() == "1",
            "dedup key {key} is not on the promoted replica"
        );
    }
    Ok(())
}

fn stage_rejoin(s: &mut Swarm) -> Result<()> {
    let start = Instant::now();
    nodes_sh(&["start", &s.run_id, "2"])?;
    let node = s.nodes[1].hostname.clone();
    wait_for(
        "the node Ready again",
        Duration::from_secs(90),
        Duration::from_secs(1),
        || {
            let status = docker(&["node", "inspect", &node, "--format", "{{.Status.State}}"])?;
            Ok((status.trim() == "ready").then_some(()))
        },
    )?;
    s.timings
        .push(("rejoin: node ready".into(), start.elapsed()));
    // The old master's task starts again on its node and follows the promoted replica.
    let auth = s.secret("TG_REDIS_PASSWORD").to_string();
    wait_for(
        "the old master back as a replica",
        Duration::from_secs(180),
        Duration::from_secs(2),
        || {
            let role = s.exec(
                "redis-master",
                &[("REDISCLI_AUTH", &auth)],
                &["redis-cli", "-p", "6379", "role"],
            )?;
            Ok(role.starts_with("slave").then_some(()))
        },
    )?;
    s.wait_healthy(Duration::from_secs(180), &[])?;
    s.timings
        .push(("rejoin: every service running".into(), start.elapsed()));
    // The member of node 2 is back in its cluster, and on every quorum queue again.
    let all = s.rabbit_members.len();
    wait_for(
        "the RabbitMQ member back in its cluster",
        Duration::from_secs(120),
        Duration::from_secs(2),
        || Ok((running_members(s)?.len() == all).then_some(())),
    )?;
    let members = quorum_members(s, "telegram.signals")?;
    ensure!(
        members.len() == all && members.iter().all(|m| !m.contains("noproc")),
        "telegram.signals after the rejoin: {members:?}"
    );
    s.timings
        .push(("rejoin: RabbitMQ cluster whole".into(), start.elapsed()));
    Ok(())
}

/// The model names the promoted instance (`promoted` flipped, as the failover script
/// said), and deploy.sh starts the former primary again: its entrypoint keeps its files
/// aside and copies the new primary. Then the pipeline stores through it, and the
/// rebuilt standby holds what it stored.
fn stage_rebuild(s: &mut Swarm) -> Result<()> {
    let start = Instant::now();
    let before =
        s.pg.clone()
            .ok_or_else(|| anyhow!("no standby in the three-node model"))?;
    let after = PgPair {
        primary: before.standby.clone(),
        standby: before.primary.clone(),
        promoted: !before.promoted,
    };
    // The model that still names the former primary: deploy.sh refuses it before it
    // changes anything (it would demote the promoted instance).
    let refused = deploy_run(s)?;
    let said = String::from_utf8_lossy(&refused.stderr);
    ensure!(
        !refused.status.success()
            && said.contains(&format!(
                "{} serves as the primary of timescaledb since a failover",
                before.standby
            ))
            && !said.contains(" deployed "),
        "deploy.sh with the model before the failover:\n{said}"
    );
    s.pg = Some(after.clone());
    render_model(s)?;
    deploy(s)?;
    s.wait_healthy(Duration::from_secs(300), &[])?;
    wait_streaming(s, &after, Duration::from_secs(300))?;
    let rebuilt = start.elapsed();
    s.timings
        .push(("rebuild: the former primary streaming".into(), rebuilt));
    let files = s.exec(&after.standby, &[], &["ls", "/var/lib/postgresql/data"])?;
    ensure!(
        files.lines().any(|l| l.starts_with("superseded-")),
        "the former primary's files were not kept aside: {files}"
    );
    wait_on_standby(s, &after, 3000, 20)?;
    replay_job(s, &event_lines(4000, 10))?;
    assert_once(s, 4000, 10)?;
    wait_on_standby(s, &after, 4000, 10)?;
    log(format!(
        "{} rebuilt as the standby of {} in {:.1} s; it holds the batches stored since",
        after.standby,
        after.primary,
        rebuilt.as_secs_f64()
    ));
    Ok(())
}

/// `swarm/remove.sh` takes the whole stack away: services, their containers on every node,
/// the stack's networks, configs and secrets; the volumes stay, holding the data.
fn stage_remove(s: &mut Swarm) -> Result<()> {
    let start = Instant::now();
    let out = output(
        Command::new("bash")
            .arg(s.generated.join("swarm/remove.sh"))
            .env("TGSTACK_DIR", &s.generated),
    )?;
    ensure!(
        out.status.success(),
        "remove.sh failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let namespace = format!("label=com.docker.stack.namespace={}", s.project);
    let ours = format!("label=tgstack.stack={}", s.project);
    let db_node = s.nodes[0].sock.clone();
    wait_for(
        "nothing of the stack left",
        Duration::from_secs(120),
        Duration::from_secs(1),
        || {
            let mut left: Vec<String> = Vec::new();
            for (what, args) in [
                (
                    "service",
                    vec!["service", "ls", "-q", "--filter", &namespace],
                ),
                (
                    "network",
                    vec!["network", "ls", "-q", "--filter", &namespace],
                ),
                ("config", vec!["config", "ls", "-q", "--filter", &namespace]),
                ("config", vec!["config", "ls", "-q", "--filter", &ours]),
                ("secret", vec!["secret", "ls", "-q", "--filter", &ours]),
            ] {
                left.extend(list(&args).into_iter().map(|id| format!("{what} {id}")));
            }
            for node in &s.nodes {
                let containers = list(&["-H", &node.sock, "ps", "-aq", "--filter", &namespace]);
                left.extend(
                    containers
                        .into_iter()
                        .map(|id| format!("container {id} on {}", node.hostname)),
                );
            }
            if left.is_empty() {
                return Ok(Some(()));
            }
            bail!("left: {}", left.join(", "))
        },
    )?;
    let volumes = list(&["-H", &db_node, "volume", "ls", "-q", "--filter", &namespace]);
    ensure!(
        volumes.iter().any(|v| v.contains("timescaledb")),
        "the database's volume is gone after remove.sh: {volumes:?}"
    );
    s.timings
        .push(("remove.sh: nothing left".into(), start.elapsed()));
    Ok(())
}

fn scenario(size: usize) {
    let _engine = ENGINE.lock().unwrap_or_else(|e| e.into_inner());
    crate::e2e_stack::docker_ready();
    let total = Instant::now();
    let mut s = prepare(size);
    s.stage("images", stage_images);
    s.stage("swarm", stage_swarm);
    s.stage("render", stage_render);
    s.stage("deploy", stage_deploy);
    s.stage("messages", stage_messages);
    s.stage("host agents", stage_host_agents);
    if size > 1 {
        s.stage("redeploy", stage_redeploy);
        s.stage("node loss", stage_node_loss);
        s.stage("rejoin", stage_rejoin);
        s.stage("rebuild", stage_rebuild);
    }
    s.stage("remove", stage_remove);
    for (name, took) in &s.timings {
        log(format!("swarm timing {name}: {:.1} s", took.as_secs_f64()));
    }
    log(format!(
        "swarm total ({size} nodes): {:.1} s",
        total.elapsed().as_secs_f64()
    ));
}

#[test]
fn whole_stack_on_a_three_node_swarm() {
    scenario(3);
}

/// The same deploy on a swarm of one node: the single-node swarm proven, and the baseline
/// of the three-node deploy time.
#[test]
fn whole_stack_on_a_one_node_swarm() {
    scenario(1);
}
