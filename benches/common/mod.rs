//! What every bench prints: a spread over rounds, never one side's best.

pub mod floor;
pub mod sink;

/// "min / median / max" of the values, with `digits` decimals.
pub fn spread(values: &[f64], digits: usize) -> String {
    let mut v = values.to_vec();
    v.sort_by(|a, b| a.total_cmp(b));
    if v.is_empty() {
        return "no rounds".into();
    }
    let median = if v.len() % 2 == 1 {
        v[v.len() / 2]
    } else {
        (v[v.len() / 2 - 1] + v[v.len() / 2]) / 2.0
    };
    format!(
        "{:.digits$} / {:.digits$} / {:.digits$}",
        v[0],
        median,
        v[v.len() - 1]
    )
}

/// The number of rounds: the first numeric argument after `--`, or
/// `default` (never fewer than 5).
#[allow(dead_code)]
pub fn rounds(default: usize) -> usize {
    std::env::args()
        .skip(1)
        .find_map(|a| a.strip_prefix("--rounds=").and_then(|n| n.parse().ok()))
        .unwrap_or(default)
        .max(5)
}

/// Runs `f(i)` for i in 0..n on `threads` threads; returns the wall time.
#[allow(dead_code)]
pub fn parallel(
    threads: usize,
    n: usize,
    f: std::sync::Arc<dyn Fn(usize) + Send + Sync>,
) -> std::time::Duration {
    let start = std::time::Instant::now();
    let running: Vec<_> = (0..threads)
        .map(|t| {
            let f = f.clone();
            std::thread::spawn(move || {
                for i in (t..n).step_by(threads) {
                    f(i);
                }
            })
        })
        .collect();
    for t in running {
        t.join().unwrap();
    }
    start.elapsed()
}
