//! Decode throughput on one core: every line of an NMEA file through one [`Decoder`], repeated
//! for at least the given number of seconds. Prints one JSON object.
//!
//! ```text
//! cargo run --release -p mizugiwa-satellite --example ais_bench -- FILE [SECONDS]
//! ```
//! `bench/ais_vs_pyais.sh` runs it beside pyais on the same file and writes BENCHMARKS.md.

use std::time::{Duration, Instant};

use mizugiwa_satellite::ais::Decoder;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let path = args.next().ok_or("usage: ais_bench FILE [SECONDS]")?;
    let seconds: f64 = args.next().map_or(Ok(3.0), |s| s.parse())?;
    let text = std::fs::read_to_string(&path)?;
    let lines: Vec<&str> = text.lines().collect();

    let mut decoder = Decoder::new();
    let cpu0 = cpu_seconds();
    let (mut passes, mut messages, mut refused) = (0u64, 0u64, 0u64);
    let budget = Duration::from_secs_f64(seconds);
    let start = Instant::now();
    while start.elapsed() < budget {
        for line in &lines {
            match decoder.feed_line(line, 0) {
                Ok(Some(report)) => {
                    messages += 1;
                    std::hint::black_box(&report);
                }
                Ok(None) => {}
                Err(_) => refused += 1,
            }
        }
        passes += 1;
    }
    let elapsed = start.elapsed().as_secs_f64();
    // On a shared machine wall time also counts other processes' turns; CPU time does not.
    let cpu = cpu_seconds()
        .zip(cpu0)
        .map_or(elapsed, |(end, begin)| end - begin);
    let lines_total = passes * lines.len() as u64;
    println!(
        "{{\"decoder\": \"mizugiwa\", \"file\": {path:?}, \"passes\": {passes}, \"lines\": {lines_total}, \
         \"messages\": {messages}, \"refused\": {refused}, \"seconds\": {elapsed:.3}, \
         \"cpu_seconds\": {cpu:.3}, \"lines_per_s\": {:.0}, \"messages_per_s\": {:.0}, \
         \"messages_per_cpu_s\": {:.0}}}",
        lines_total as f64 / elapsed,
        messages as f64 / elapsed,
        messages as f64 / cpu,
    );
    Ok(())
}

/// CPU time of this thread in seconds, from the scheduler's statistics (Linux).
fn cpu_seconds() -> Option<f64> {
    let stat = std::fs::read_to_string("/proc/thread-self/schedstat").ok()?;
    let ns: u64 = stat.split_whitespace().next()?.parse().ok()?;
    Some(ns as f64 / 1e9)
}
