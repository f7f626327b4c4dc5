//! `command-bench`: the command center's benchmarks (issue: "Benchmark, results in
//! `command/BENCHMARKS.md`"), each with its anchor or target measured and judged in the same run.
//!
//! 1. Record ingest at HQ with 50 live dashboards (`ingest.rs`).
//! 2. CoT ingest from pytak through taky, against taky's own relay rate (`cotbench.rs`).
//! 3. 1,000 sites reconnecting after an outage (`reconnect.rs`).
//!
//! `command-bench [--quick] [--out command/BENCHMARKS.md] [--only ingest,cot,reconnect] ...`;
//! see `usage()` for every option. Child processes are this binary with `--role`.

mod common;
mod cotbench;
mod ingest;
mod reconnect;
mod report;

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use mizugiwa_sync::Durability;

fn usage() -> &'static str {
    "command-bench [options]
  --out PATH              write the Markdown report there (it is printed too)
  --quick                 smoke run: 20 s ingest, 10 s CoT phases, fleets of 50 and 200
  --only LIST             scenarios to run: ingest,capacity,cot,reconnect (default all)
  --duration SECS         ingest window (default 300; --quick 20)
  --warmup SECS           ingest warm-up before the memory baseline (default 30; --quick 5)
  --sites N               ingest: simulated sites (default 20)
  --rate N                ingest: offered records/s over all sites, 0 = unpaced (default 20000)
  --threads N             ingest: writer threads at the sites (default 4)
  --clients N             ingest: dashboard SSE clients (default 50)
  --site-durability D     ingest: normal or full for the site replicas (default normal)
  --backlog N             capacity: records written per site before connecting (default 200000; --quick 50000)
  --backlog-sites N       capacity: sites (default 1)
  --cot-secs SECS         CoT: seconds of pytak load per phase (default 60; --quick 10)
  --cot-connections N     CoT: pytak connections (default 1)
  --fleet LIST            reconnect: fleet sizes (default 200,500,1000; --quick 50,200)
  --per-process N         reconnect: sites per child process (default 250)
  --settle SECS           reconnect: time between first contact and the outage (default 30)
  --timeout SECS          reconnect: longest wait for convergence (default 180)
  --site-interest I       what the simulated sites hold: shared (their own records and the
                          shared collections, default) or everything (every site's records)"
}

struct Args(Vec<String>);

impl Args {
    fn get(&self, name: &str) -> Option<String> {
        self.0
            .iter()
            .position(|a| a == name)
            .and_then(|i| self.0.get(i + 1))
            .cloned()
    }
    fn has(&self, name: &str) -> bool {
        self.0.iter().any(|a| a == name)
    }
    fn num<T: std::str::FromStr>(&self, name: &str, default: T) -> anyhow::Result<T> {
        match self.get(name) {
            None => Ok(default),
            Some(v) => v
                .parse()
                .map_err(|_| anyhow::anyhow!("{name}: not a number: {v}")),
        }
    }
    fn path(&self, name: &str) -> anyhow::Result<PathBuf> {
        self.get(name)
            .map(PathBuf::from)
            .with_context(|| format!("{name} is required"))
    }
}

fn durability(s: &str) -> anyhow::Result<Durability> {
    match s {
        "normal" => Ok(Durability::Normal),
        "full" => Ok(Durability::Full),
        other => anyhow::bail!("durability must be normal or full, not {other}"),
    }
}

fn main() -> anyhow::Result<()> {
    let args = Args(std::env::args().skip(1).collect());
    if args.has("--help") || args.has("-h") {
        println!("{}", usage());
        return Ok(());
    }
    let _ = tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "warn".into()),
        )
        .with_writer(std::io::stderr)
        .try_init();
    if let Some(name) = args.get("--site-interest") {
        let interest = mizugiwa_sync::Interest::from_name(&name)
            .with_context(|| format!("--site-interest must be shared or everything, not {name}"))?;
        common::set_site_interest(interest);
    }
    match args.get("--role").as_deref() {
        Some("sites") => {
            return ingest::role_sites(ingest::SitesArgs {
                hq_addr: args.path("--hq-addr")?.to_string_lossy().parse()?,
                pki: args.path("--pki")?,
                data: args.path("--data")?,
                sites: args.num("--sites", 20)?,
                rate: args.num("--rate", 20_000)?,
                duration: Duration::from_secs_f64(args.num("--duration", 300.0)?),
                threads: args.num("--threads", 4)?,
                durability: durability(&args.get("--durability").unwrap_or("normal".into()))?,
                backlog: args.num("--backlog", 0)?,
            })
        }
        Some("browsers") => {
            let users = args
                .get("--users")
                .context("--users is required")?
                .split(',')
                .filter_map(|u| u.split_once(':'))
                .map(|(u, p)| (u.to_owned(), p.to_owned()))
                .collect();
            return ingest::role_browsers(ingest::BrowsersArgs {
                http: args.get("--http").context("--http is required")?,
                clients: args.num("--clients", 50)?,
                users,
                window: Duration::from_secs(5),
            });
        }
        Some("fleet") => {
            return reconnect::role_fleet(reconnect::FleetArgs {
                hq_addr: args.path("--hq-addr")?.to_string_lossy().parse()?,
                pki: args.path("--pki")?,
                data: args.path("--data")?,
                first: args.num("--first", 0)?,
                count: args.num("--count", 1)?,
                restart: args.has("--restart"),
            })
        }
        Some(other) => anyhow::bail!("unknown role {other}"),
        None => {}
    }

    let quick = args.has("--quick");
    let only: Vec<String> = args
        .get("--only")
        .unwrap_or("ingest,capacity,cot,reconnect".into())
        .split(',')
        .map(str::to_owned)
        .collect();
    let ingest_opts = ingest::IngestOpts {
        duration: Duration::from_secs_f64(
            args.num("--duration", if quick { 20.0 } else { 300.0 })?,
        ),
        warmup: Duration::from_secs_f64(args.num("--warmup", if quick { 5.0 } else { 30.0 })?),
        sites: args.num("--sites", 20)?,
        rate: args.num("--rate", 20_000)?,
        writer_threads: args.num("--threads", 4)?,
        clients: args.num("--clients", 50)?,
        users: 5,
        durability: durability(&args.get("--site-durability").unwrap_or("normal".into()))?,
        drain_max: Duration::from_secs(if quick { 60 } else { 300 }),
    };
    let backlog_opts = ingest::BacklogOpts {
        sites: args.num("--backlog-sites", 1)?,
        per_site: args.num("--backlog", if quick { 50_000 } else { 200_000 })?,
        clients: ingest_opts.clients,
        users: 5,
        max: Duration::from_secs(600),
    };
    let workspace = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..");
    let venv = std::env::var_os("MIZUGIWA_VENV")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace.join(".venv"));
    let cot_opts = cotbench::CotOpts {
        duration: Duration::from_secs_f64(args.num("--cot-secs", if quick { 10.0 } else { 60.0 })?),
        connections: args.num("--cot-connections", 1)?,
        uids: 500,
        script: PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("pytak_load.py"),
        venv,
    };
    let sizes: Vec<usize> = args
        .get("--fleet")
        .unwrap_or(if quick {
            "50,200".into()
        } else {
            "200,500,1000".into()
        })
        .split(',')
        .map(|s| s.trim().parse())
        .collect::<Result<_, _>>()
        .context("--fleet: a comma-separated list of numbers")?;
    let reconnect_opts = reconnect::ReconnectOpts {
        sizes,
        per_process: args.num("--per-process", 250)?,
        settle: Duration::from_secs_f64(args.num("--settle", if quick { 10.0 } else { 30.0 })?),
        timeout: Duration::from_secs_f64(args.num("--timeout", 180.0)?),
    };

    let dir = tempfile::Builder::new().prefix("cmdbench").tempdir()?;
    let mut rep = report::Report::new(quick, dir.path(), std::env::args().collect());
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    if only.iter().any(|o| o == "ingest") {
        common::fresh_memory_baseline();
        eprintln!("== ingest: {ingest_opts:?}");
        match rt.block_on(ingest::run(&ingest_opts, dir.path().join("ingest"))) {
            Ok(r) => rep.ingest(&r),
            Err(e) => rep.failed("1. Record ingest at HQ", &e),
        }
        let _ = std::fs::remove_dir_all(dir.path().join("ingest"));
    }
    if only.iter().any(|o| o == "capacity") {
        common::fresh_memory_baseline();
        eprintln!("== capacity: {backlog_opts:?}");
        let mut runs = Vec::new();
        for clients in [0, backlog_opts.clients] {
            let opts = ingest::BacklogOpts {
                clients,
                ..backlog_opts.clone()
            };
            let d = dir.path().join(format!("capacity{clients}"));
            runs.push(
                rt.block_on(ingest::run_backlog(&opts, d.clone()))
                    .map_err(|e| format!("{e:#}")),
            );
            let _ = std::fs::remove_dir_all(d);
        }
        rep.backlog(&runs);
    }
    if only.iter().any(|o| o == "cot") {
        common::fresh_memory_baseline();
        eprintln!("== cot: {cot_opts:?}");
        match rt.block_on(cotbench::run(&cot_opts, dir.path().join("cot"))) {
            Ok(r) => rep.cot(&r),
            Err(e) => rep.failed("2. CoT ingest (pytak → taky → gateway)", &e),
        }
    }
    if only.iter().any(|o| o == "reconnect") {
        common::fresh_memory_baseline();
        eprintln!("== reconnect: {reconnect_opts:?}");
        let r = rt.block_on(reconnect::run(
            &reconnect_opts,
            dir.path().join("reconnect"),
        ));
        rep.reconnect(&reconnect_opts, &r);
    }
    let text = rep.finish();
    print!("{text}");
    if let Some(p) = args.get("--out") {
        std::fs::write(&p, &text).with_context(|| format!("writing {p}"))?;
        eprintln!("wrote {p}");
    }
    Ok(())
}
