//! `mizugiwa drill`: BCP drills against real processes of this binary.

use std::path::PathBuf;

use anyhow::Context;
use clap::Subcommand;

#[derive(Debug, Subcommand)]
pub enum DrillCommand {
    /// Run a scenario: start the deployment, inject its faults, check the invariants and
    /// write report.json and report.html. Exits non-zero if any invariant is violated.
    Run {
        /// The scenario file (see drills/scenarios/).
        scenario: PathBuf,
        /// Where the report goes (default: drill-report/<scenario name>).
        #[arg(long)]
        report: Option<PathBuf>,
        /// Working folder for the deployment's files (default: a fresh temporary folder,
        /// deleted afterwards unless --keep).
        #[arg(long)]
        work_dir: Option<PathBuf>,
        /// Keep the working folder (configs, replicas, logs) for inspection.
        #[arg(long)]
        keep: bool,
        /// Run NODE with another build of the daemons: NODE=PATH (repeatable). For testing
        /// the checker with a deliberately broken replica.
        #[arg(long = "replica-bin", value_parser = parse_replica_bin)]
        replica_bins: Vec<(String, PathBuf)>,
    },
}

fn parse_replica_bin(s: &str) -> Result<(String, PathBuf), String> {
    let (node, path) = s.split_once('=').ok_or("expected NODE=PATH")?;
    Ok((node.to_owned(), PathBuf::from(path)))
}

/// The drill's verdict as an error, so that the process exits non-zero.
pub fn run(cmd: DrillCommand) -> anyhow::Result<()> {
    match cmd {
        DrillCommand::Run {
            scenario,
            report,
            work_dir,
            keep,
            replica_bins,
        } => {
            let parsed = mizugiwa_drills::Scenario::load(&scenario)?;
            let report = report.unwrap_or_else(|| PathBuf::from("drill-report").join(&parsed.name));
            let temp = match &work_dir {
                Some(_) => None,
                None => Some(
                    tempfile::Builder::new()
                        .prefix(&format!("mizugiwa-drill-{}-", parsed.name))
                        .tempdir()?,
                ),
            };
            let dir = work_dir
                .or_else(|| temp.as_ref().map(|t| t.path().to_owned()))
                .context("no working folder")?;
            let opts = mizugiwa_drills::RunOptions {
                bin: std::env::current_exe().context("finding this binary")?,
                work_dir: dir.clone(),
                replica_bins: replica_bins.into_iter().collect(),
            };
            println!("drill {}: {}", parsed.name, parsed.summary);
            println!("  working folder {}", dir.display());
            let rt = tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .build()?;
            let result = rt.block_on(mizugiwa_drills::run(&parsed, &opts));
            if keep {
                if let Some(t) = temp {
                    println!("  kept {}", t.keep().display());
                }
            }
            let (observed, verdicts) = result?;
            mizugiwa_drills::report::write(&report, &observed, &verdicts)?;
            for v in &verdicts.0 {
                println!(
                    "  {:<5} {:<28} {}",
                    if v.passed { "ok" } else { "FAIL" },
                    v.name,
                    v.checked
                );
                for e in &v.evidence {
                    println!("          {e}");
                }
            }
            println!("  report {}", report.join("report.html").display());
            if verdicts.passed() {
                println!("drill {} PASSED", parsed.name);
                Ok(())
            } else {
                anyhow::bail!(
                    "drill {} FAILED: invariants violated (see the report)",
                    parsed.name
                )
            }
        }
    }
}
