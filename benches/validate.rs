//! Benchmark (not a test): whole-process `tgstack render` + `tgstack validate` on the
//! reference model and on generated large models, and how time grows with size.
//! Run: `cargo bench --bench validate` (results go into BENCHMARKS.md by hand).

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// An overlay over the reference model: `channels` channels, `extra` more services (Redis
/// caches and their exporters), `alerts` more alerts (custom PromQL on catalog metrics).
fn large_overlay(channels: usize, extra_services: usize, alerts: usize) -> String {
    let mut text = String::new();
    let _ = writeln!(
        text,
        "[host]\ncpus = {}.0\nmemory = \"{}GiB\"\n",
        20 + extra_services,
        16 + extra_services
    );
    for i in 0..channels {
        let _ = writeln!(
            text,
            "[[channels]]\nid = {}\nusername = \"bench_{i}\"\ntitle = \"Bench channel {i}\"\n",
            -1_002_000_000_000i64 - i as i64
        );
    }
    let caches = extra_services.div_ceil(2);
    for i in 0..caches {
        let _ = writeln!(
            text,
            "[services.cache-{i}]\nkind = \"redis\"\nimage = \"redis:7.4.1-alpine\"\nport = 6379\npublish = {}\ncpus = 0.25\nmemory = \"256MiB\"\nnetworks = [\"data\"]\n\n[services.cache-{i}.redis]\npassword = {{ secret = \"redis\" }}\nmaxmemory = \"128MiB\"\npersistence = \"none\"\n",
            30000 + i
        );
        if caches + i < extra_services {
            let _ = writeln!(
                text,
                "[services.cache-{i}-exporter]\nkind = \"redis-exporter\"\nimage = \"oliver006/redis_exporter:v1.66.0\"\nport = 9121\ncpus = 0.1\nmemory = \"64MiB\"\nnetworks = [\"data\", \"monitoring\"]\n\n[services.cache-{i}-exporter.exporter]\ntarget = \"cache-{i}\"\n"
            );
        }
    }
    let metrics = [
        "tg_gateway_messages_failed_total",
        "tg_gateway_messages_received_total",
        "tg_gateway_messages_published_total",
    ];
    for i in 0..alerts {
        let metric = metrics[i % metrics.len()];
        let _ = writeln!(
            text,
            "[[alerts]]\nname = \"BenchAlert{i}\"\nkind = \"custom\"\nseverity = \"warning\"\nfor = \"5m\"\nexpr = \"sum(rate({metric}[5m])) > {i}\"\nsummary = \"bench alert {i}\"\ndescription = \"rate of {metric} above {i} per second\"\n"
        );
    }
    text
}

/// Writes the model (and its rendered tree) into a temp project.
fn project(overlay: Option<&str>) -> (tempfile::TempDir, Vec<String>) {
    let dir = tempfile::tempdir().unwrap();
    std::fs::copy(root().join("stack.toml"), dir.path().join("stack.toml")).unwrap();
    let mut args = vec!["-f".to_string(), "stack.toml".to_string()];
    if let Some(overlay) = overlay {
        std::fs::write(dir.path().join("large.toml"), overlay).unwrap();
        args.extend(["-f".to_string(), "large.toml".to_string()]);
    }
    let status = Command::new(env!("CARGO_BIN_EXE_tgstack"))
        .arg("render")
        .args(&args)
        .current_dir(dir.path())
        .output()
        .unwrap();
    assert!(
        status.status.success(),
        "render failed: {}",
        String::from_utf8_lossy(&status.stderr)
    );
    (dir, args)
}

fn time_process(
    dir: &Path,
    command: &str,
    args: &[String],
    runs: usize,
) -> (Duration, Duration, Duration) {
    let mut samples = Vec::new();
    for _ in 0..runs {
        let start = Instant::now();
        let output = Command::new(env!("CARGO_BIN_EXE_tgstack"))
            .arg(command)
            .args(args)
            .current_dir(dir)
            .output()
            .unwrap();
        samples.push(start.elapsed());
        assert!(
            output.status.code().is_some_and(|c| c <= 1),
            "{command} crashed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
    }
    samples.sort();
    (
        samples[0],
        samples[samples.len() / 2],
        samples[samples.len() * 95 / 100],
    )
}

/// In process: load, model rules, render, artifact rules, separately (median of runs).
fn phases(overlay: Option<&str>, runs: usize) -> [Duration; 4] {
    let base = std::fs::read_to_string(root().join("stack.toml")).unwrap();
    let mut files = vec![(PathBuf::from("stack.toml"), base)];
    if let Some(overlay) = overlay {
        files.push((PathBuf::from("large.toml"), overlay.to_string()));
    }
    let mut samples: Vec<[Duration; 4]> = Vec::new();
    for _ in 0..runs {
        let t0 = Instant::now();
        let model = tgstack::model::load_texts(files.clone())
            .unwrap_or_else(|f| panic!("{}", tgstack::report::human(&f)));
        let t1 = Instant::now();
        let model_findings = tgstack::check::model_findings(&model);
        let t2 = Instant::now();
        let tree = tgstack::render::render(&model, None).unwrap();
        let t3 = Instant::now();
        let _ = tgstack::check::validate(&model, model_findings, &tree, None);
        let t4 = Instant::now();
        samples.push([t1 - t0, t2 - t1, t3 - t2, t4 - t3]);
    }
    let mut out = [Duration::ZERO; 4];
    for (i, slot) in out.iter_mut().enumerate() {
        let mut column: Vec<Duration> = samples.iter().map(|s| s[i]).collect();
        column.sort();
        *slot = column[column.len() / 2];
    }
    out
}

fn ms(d: Duration) -> String {
    format!("{:.1}", d.as_secs_f64() * 1000.0)
}

fn main() {
    // `cargo bench` passes `--bench`; any other argument is ignored.
    let runs = 30;
    println!("## Whole process (median of {runs} runs; min / median / p95 in ms)\n");
    println!("| model | command | min | median | p95 |\n|---|---|---|---|---|");
    let reference = project(None);
    let large_text = large_overlay(1000, 35, 200);
    let large = project(Some(&large_text));
    for (label, (dir, args)) in [
        ("reference", &reference),
        (
            "large (1,000 channels, 200 more alerts, 50 services)",
            &large,
        ),
    ] {
        for command in ["validate", "render"] {
            let (min, median, p95) = time_process(dir.path(), command, args, runs);
            println!(
                "| {label} | {command} | {} | {} | {} |",
                ms(min),
                ms(median),
                ms(p95)
            );
        }
        let mut check_args = args.clone();
        check_args.push("--check".into());
        let (min, median, p95) = time_process(dir.path(), "render", &check_args, runs);
        println!(
            "| {label} | render --check | {} | {} | {} |",
            ms(min),
            ms(median),
            ms(p95)
        );
    }
    println!("\n## In process, by phase and size (median of 10 runs, ms)\n");
    println!(
        "| size | channels | services | alerts | load | model rules | render | artifact rules |\n|---|---|---|---|---|---|---|---|"
    );
    let base = tgstack::model::load_files(&[root().join("stack.toml")]).unwrap();
    let base_services = base.stack.services.len();
    let base_alerts = base.stack.alerts.len();
    let base_channels = base.stack.channels.len();
    let [a, b, c, d] = phases(None, 10);
    println!(
        "| reference | {base_channels} | {base_services} | {base_alerts} | {} | {} | {} | {} |",
        ms(a),
        ms(b),
        ms(c),
        ms(d)
    );
    for factor in [1usize, 2, 4] {
        let overlay = large_overlay(1000 * factor, 35 * factor, 200 * factor);
        let [a, b, c, d] = phases(Some(&overlay), 10);
        println!(
            "| x{factor} | {} | {} | {} | {} | {} | {} | {} |",
            base_channels + 1000 * factor,
            base_services + 35 * factor,
            base_alerts + 200 * factor,
            ms(a),
            ms(b),
            ms(c),
            ms(d)
        );
    }
}
