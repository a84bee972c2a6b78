//! What the benchmarks share: percentiles and the CPU time of the stack's processes.

/// The `p` quantile (0..1) of sorted samples; NaN when there are none.
pub fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let index = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[index.min(sorted.len() - 1)]
}

/// In a list of CPU users, the benchmark's own process instead of a `comm` prefix.
pub const THIS_PROCESS: &str = "";

/// CPU seconds (user + system) used so far by each of `users` (name, `comm` prefix),
/// summed over their processes.
pub fn cpu_seconds(users: &[(&str, &str)]) -> Vec<f64> {
    let ticks = 100.0; // USER_HZ on Linux
    let own = std::process::id().to_string();
    let mut totals = vec![0.0; users.len()];
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return totals;
    };
    for entry in entries.flatten() {
        let pid = entry.file_name().to_string_lossy().into_owned();
        let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else {
            continue;
        };
        // pid (comm) state ... utime stime: comm may hold spaces, so split at ')'.
        let (Some(open), Some(close)) = (stat.find('('), stat.rfind(')')) else {
            continue;
        };
        let comm = &stat[open + 1..close];
        let fields: Vec<&str> = stat[close + 2..].split_whitespace().collect();
        let used = |i: usize| {
            fields
                .get(i)
                .and_then(|v| v.parse::<f64>().ok())
                .unwrap_or(0.0)
        };
        let seconds = (used(11) + used(12)) / ticks;
        for (slot, (_, prefix)) in totals.iter_mut().zip(users) {
            let matches = if *prefix == THIS_PROCESS {
                pid == own
            } else {
                comm.starts_with(prefix)
            };
            if matches {
                *slot += seconds;
            }
        }
    }
    totals
}

/// "rabbitmq 9.1s, postgres 5.2s, ..." between two readings.
pub fn cpu_used(users: &[(&str, &str)], before: &[f64], after: &[f64]) -> String {
    users
        .iter()
        .zip(before.iter().zip(after))
        .map(|((name, _), (a, b))| format!("{name} {:.1}s", b - a))
        .collect::<Vec<_>>()
        .join(", ")
}
