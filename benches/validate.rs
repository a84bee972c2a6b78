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

/// The release binary, copied once: the target directory may be shared with other
/// builds, which must not swap the binary between runs.
fn binary() -> &'static Path {
    static COPY: std::sync::OnceLock<(tempfile::TempDir, PathBuf)> = std::sync::OnceLock::new();
    &COPY
        .get_or_init(|| {
            let dir = tempfile::tempdir().unwrap();
            let path = dir.path().join("tgstack");
            std::fs::copy(env!("CARGO_BIN_EXE_tgstack"), &path).unwrap();
            (dir, path)
        })
        .1
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
    let status = Command::new(binary())
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

/// Min, median and p95 of `runs` whole-process runs of `tgstack <command>`.
fn time_process(
    dir: &Path,
    command: &str,
    args: &[String],
    runs: usize,
) -> (Duration, Duration, Duration) {
    let mut samples = Vec::new();
    for _ in 0..runs {
        let start = Instant::now();
        let output = Command::new(binary())
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
        let found = tgstack::check::artifact_findings(&model, &tgstack::check::Files::new(&tree));
        let _ = tgstack::check::finish(&model, model_findings.into_iter().chain(found).collect());
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

/// `now / before`, printed as a growth ratio.
fn ratio(now: Duration, before: Option<Duration>) -> String {
    before
        .map(|b| format!("{:.2}", now.as_secs_f64() / b.as_secs_f64()))
        .unwrap_or_else(|| "-".into())
}

fn main() {
    // `cargo bench` passes `--bench`; any other argument is ignored.
    let runs = 30;
    println!(
        "## Whole process, reference model (median of {runs} runs; min / median / p95 in ms)\n"
    );
    println!("| command | min | median | p95 |\n|---|---|---|---|");
    let (dir, args) = project(None);
    for (command, extra) in [
        ("validate", None),
        ("render", None),
        ("render", Some("--check")),
    ] {
        let mut args = args.clone();
        args.extend(extra.map(String::from));
        let (min, median, p95) = time_process(dir.path(), command, &args, runs);
        let shown = format!("{command} {}", extra.unwrap_or(""));
        println!(
            "| {} | {} | {} | {} |",
            shown.trim(),
            ms(min),
            ms(median),
            ms(p95)
        );
    }

    let base = tgstack::model::load_files(&[root().join("stack.toml")]).unwrap();
    let (channels, services, alerts) = (
        base.stack.channels.len(),
        base.stack.services.len(),
        base.stack.alerts.len(),
    );
    println!(
        "\n## validate by size: whole process (11 runs) and in process by phase \
         (median of 5 runs, each phase on the machine's cores; the last column is the artifact rules over the \
         rendered tree and the findings' suppressions and locations), ms\n"
    );
    println!(
        "xN = the reference plus N x (1,000 channels, 35 services, 200 alerts); growth = this \
         row / the row above (2.00 is linear for a doubling).\n"
    );
    println!(
        "| size | channels | services | alerts | validate min | validate median | growth | load | model rules | render | artifact rules + finish |\n|---|---|---|---|---|---|---|---|---|---|---|"
    );
    let mut before: Option<Duration> = None;
    for factor in [0usize, 1, 2, 4, 8, 16] {
        let overlay = (factor > 0).then(|| large_overlay(1000 * factor, 35 * factor, 200 * factor));
        let (dir, args) = project(overlay.as_deref());
        let (min, median, _) = time_process(dir.path(), "validate", &args, 11);
        let [a, b, c, d] = phases(overlay.as_deref(), 5);
        let label = if factor == 0 {
            "reference".to_string()
        } else {
            format!("x{factor}")
        };
        println!(
            "| {label} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} |",
            channels + 1000 * factor,
            services + 35 * factor,
            alerts + 200 * factor,
            ms(min),
            ms(median),
            // Growth is per doubling, so it starts at x2.
            ratio(median, before.filter(|_| factor > 1)),
            ms(a),
            ms(b),
            ms(c),
            ms(d)
        );
        before = Some(median);
    }
}
