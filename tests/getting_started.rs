//! docs/getting-started.md, followed verbatim by a newcomer in a fresh container: a bare
//! Debian (the local base image of deploy/e2e/images.sh) with a C linker, the host's Rust
//! toolchain mounted read-only and a copy of the host's crate cache (no network: the
//! container runs with `--network none`, so every crate comes from that copy). Every `$`
//! line of the guide's console blocks runs in order in one shell, `cargo install`
//! included, from a fresh copy of this checkout; the lines under a command are output it
//! must print.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::support::root;

/// Where the guide's `/path/to/tgstack` (the reader's checkout) is inside the container.
const CHECKOUT: &str = "/src/tgstack";

/// The console steps of the guide: each command with the output fragments under it.
fn guide_steps(doc: &str) -> Vec<(String, Vec<String>)> {
    let mut steps: Vec<(String, Vec<String>)> = Vec::new();
    let mut in_console = false;
    for line in doc.lines() {
        match line.trim_end() {
            "```console" => in_console = true,
            "```" => in_console = false,
            text if in_console => match text.strip_prefix("$ ") {
                Some(command) => steps.push((command.to_string(), Vec::new())),
                None if !text.is_empty() => {
                    let (_, expected) = steps.last_mut().expect("output after a command");
                    expected.push(text.to_string());
                }
                None => {}
            },
            _ => {}
        }
    }
    steps
}

/// One shell script of every step, each announced by `@@ N` so its output can be cut
/// out, stopping at the first that fails.
fn guide_script(steps: &[(String, Vec<String>)]) -> String {
    let mut script = String::from("set -u\n");
    for (index, (command, _)) in steps.iter().enumerate() {
        let command = command.replace("/path/to/tgstack", CHECKOUT);
        script.push_str(&format!(
            "echo '@@ {index}'\n{command} 2>&1 || {{ echo \"@@ failed {index}\"; exit 1; }}\n"
        ));
    }
    script
}

/// A container removed by its ID when the test ends, passed or not.
struct Container(String);

impl Drop for Container {
    fn drop(&mut self) {
        let _ = Command::new("docker")
            .args(["rm", "-f", "-v", &self.0])
            .output();
    }
}

fn run_ok(command: &mut Command) -> String {
    let output = command
        .output()
        .unwrap_or_else(|e| panic!("{command:?}: {e}"));
    let text = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(
        output.status.success(),
        "{command:?} failed:\n{text}{}",
        String::from_utf8_lossy(&output.stderr)
    );
    text
}

/// The image of a newcomer's machine (built once per machine by images.sh).
fn newcomer_image() -> String {
    let out = run_ok(
        Command::new("bash")
            .arg(root().join("deploy/e2e/images.sh"))
            .arg("--newcomer"),
    );
    out.lines()
        .find_map(|l| l.strip_prefix("newcomer="))
        .unwrap_or_else(|| panic!("images.sh printed no newcomer image:\n{out}"))
        .to_string()
}

/// The checkout as a reader has it: the files git knows (tracked or not ignored), so
/// nothing of `target/` comes along.
fn copy_checkout(to: &Path) {
    let listing = run_ok(Command::new("git").current_dir(root()).args([
        "ls-files",
        "-z",
        "--cached",
        "--others",
        "--exclude-standard",
    ]));
    for name in listing.split('\0').filter(|n| !n.is_empty()) {
        let from = root().join(name);
        if !from.is_file() {
            continue; // deleted in the work tree but still in the index
        }
        let target = to.join(name);
        std::fs::create_dir_all(target.parent().unwrap()).unwrap();
        std::fs::copy(&from, &target).unwrap_or_else(|e| panic!("{name}: {e}"));
    }
}

/// The host's Cargo home: where `cargo build` of this workspace left the crates.
fn cargo_home() -> PathBuf {
    std::env::var_os("CARGO_HOME")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(std::env::var_os("HOME").unwrap()).join(".cargo"))
}

/// The registry index and crate archives (not the unpacked sources) of the host, which
/// the building of this workspace has filled with every crate the lock file names.
fn copy_crate_cache(to: &Path) {
    let registry = cargo_home().join("registry");
    for part in ["index", "cache"] {
        let from = registry.join(part);
        assert!(
            from.is_dir(),
            "{} is missing: build the workspace first (scripts/test.sh does)",
            from.display()
        );
        std::fs::create_dir_all(to.join("registry")).unwrap();
        run_ok(
            Command::new("cp")
                .arg("-a")
                .arg(&from)
                .arg(to.join("registry")),
        );
    }
}

/// The active toolchain's root (bin/cargo, bin/rustc, lib/), as rustup installed it.
fn toolchain() -> PathBuf {
    let sysroot = run_ok(Command::new("rustc").args(["--print", "sysroot"]));
    PathBuf::from(sysroot.trim())
}

#[test]
fn getting_started_runs_verbatim_in_a_fresh_container() {
    let doc = std::fs::read_to_string(root().join("docs/getting-started.md")).unwrap();
    let steps = guide_steps(&doc);
    assert!(steps.len() > 10, "{steps:?}");
    assert!(
        steps[0].0.starts_with("cargo install"),
        "the guide starts by installing tgstack: {:?}",
        steps[0]
    );
    let image = newcomer_image();
    let scratch = tempfile::tempdir().unwrap();
    let checkout = scratch.path().join("checkout");
    let cargo = scratch.path().join("cargo-home");
    copy_checkout(&checkout);
    copy_crate_cache(&cargo);
    std::fs::write(scratch.path().join("guide.sh"), guide_script(&steps)).unwrap();
    let mount = |from: &Path, to: &str, mode: &str| format!("{}:{to}:{mode}", from.display());
    let id = run_ok(Command::new("docker").args([
        "create",
        "--network",
        "none",
        "--label",
        "tgstack-test=getting-started",
        "-v",
        &mount(&toolchain(), "/opt/rust", "ro"),
        "-v",
        &mount(&checkout, CHECKOUT, "rw"),
        "-v",
        &mount(&cargo, "/root/.cargo", "rw"),
        "-v",
        &mount(&scratch.path().join("guide.sh"), "/guide.sh", "ro"),
        "-e",
        "PATH=/root/.cargo/bin:/opt/rust/bin:/usr/local/bin:/usr/bin:/bin",
        "-e",
        "CARGO_NET_OFFLINE=true",
        "-w",
        "/root",
        &image,
        "bash",
        "/guide.sh",
    ]));
    let container = Container(id.trim().to_string());
    // Bounded: a release build of tgstack takes a few minutes on two cores.
    let output = Command::new("timeout")
        .args(["1500", "docker", "start", "--attach", &container.0])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&output.stdout).into_owned();
    let tail: String = {
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(60)..].join("\n")
    };
    assert!(output.status.success(), "a step failed:\n{tail}");
    let segments: Vec<&str> = text.split("@@ ").skip(1).collect();
    assert_eq!(segments.len(), steps.len(), "{tail}");
    for ((command, expected), segment) in steps.iter().zip(segments) {
        for fragment in expected {
            assert!(
                segment.contains(fragment.as_str()),
                "`{command}` did not print `{fragment}`:\n{segment}"
            );
        }
    }
    // The reader's own machine: tgstack came from `cargo install`, not from this build.
    let installed = cargo.join("bin/tgstack");
    assert!(
        installed.is_file(),
        "cargo install put no tgstack in ~/.cargo/bin"
    );
}
