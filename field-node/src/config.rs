//! `site.toml` and the site daemon.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context;
use mizugiwa_command::auth::UserConfig;
use mizugiwa_command::runtime::{HttpSection, Location, Runtime, RuntimeConfig, SyncSection};
use mizugiwa_command::web::Mode;
use serde::Deserialize;

use std::sync::Arc;

use crate::bus::{BusConfig, DroneRecorder, SiteBus};
use crate::drones::DroneStation;
use crate::gate::{self, GateApi, GateSection, GateService};
use crate::heartbeat::HeartbeatMonitor;
use crate::pipeline::{self, SourceConfig};

/// A site's config file (documented example: `docs/site.toml`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SiteConfig {
    /// Site name; must match its certificate.
    pub node: String,
    /// Folder of the replica database, the audit log and the default inbox.
    pub data_dir: PathBuf,
    /// Folder holding `ca.crt`, `NODE.crt` and `NODE.key`.
    pub pki_dir: PathBuf,
    /// What and where the site is.
    pub location: Location,
    /// Seconds between status records (default 5).
    #[serde(default = "default_status_secs")]
    pub status_interval_secs: u64,
    /// Sync settings: list the command center and neighbouring sites as peers.
    pub sync: SyncSection,
    /// The site-mode dashboard and API.
    pub http: HttpSection,
    /// Officers.
    #[serde(default)]
    pub users: Vec<UserConfig>,
    /// The site's pipeline sources.
    #[serde(default)]
    pub sources: Vec<SourceConfig>,
    /// How observations are turned into records.
    #[serde(default)]
    pub records: pipeline::RecordPolicy,
    /// What the site's AIS sources share: `[ais.behaviour]`, the thresholds of the behaviour
    /// rules (all defaulted).
    #[serde(default)]
    pub ais: crate::ais::AisSection,
    /// The site bus for live data; no bus when absent.
    pub bus: Option<BusConfig>,
    /// E-gates served by this site (airports); none when absent.
    #[serde(default)]
    pub gates: Option<GateSection>,
    /// The drone ground station (coastal sites); none when absent.
    #[serde(default)]
    pub drones: Option<crate::drones::DronesConfig>,
}

fn default_status_secs() -> u64 {
    5
}

impl SiteConfig {
    /// Reads a config file. Relative paths are taken from the file's folder.
    pub fn load(path: &Path) -> anyhow::Result<SiteConfig> {
        let text =
            std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
        let mut cfg: SiteConfig =
            toml::from_str(&text).with_context(|| format!("parsing {}", path.display()))?;
        // Checked before anything runs, so a bad threshold is a clear error at start.
        cfg.ais
            .behaviour
            .validate()
            .map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
        let base = path.parent().unwrap_or(Path::new("."));
        cfg.data_dir = base.join(&cfg.data_dir);
        cfg.pki_dir = base.join(&cfg.pki_dir);
        for s in &mut cfg.sources {
            s.resolve_paths(base);
        }
        if let Some(p) = cfg.gates.as_mut().and_then(|g| g.policy.as_mut()) {
            *p = base.join(&*p);
        }
        Ok(cfg)
    }

    /// The daemon core this config describes.
    pub fn runtime(&self) -> RuntimeConfig {
        RuntimeConfig {
            node: self.node.clone(),
            data_dir: self.data_dir.clone(),
            pki_dir: self.pki_dir.clone(),
            sync: self.sync.clone(),
            http: self.http.clone(),
            users: self.users.clone(),
            mode: Mode::Site {
                site: self.node.clone(),
            },
            location: self.location.clone(),
            status_interval: Duration::from_secs(self.status_interval_secs.max(1)),
        }
    }
}

/// Runs the site until `shutdown` resolves.
pub async fn run(
    cfg: SiteConfig,
    shutdown: impl std::future::Future<Output = ()>,
) -> anyhow::Result<()> {
    let mut gates = None;
    let mut gate_service = None;
    let runtime = Runtime::start_with(cfg.runtime(), |ext| {
        let Some(section) = &cfg.gates else {
            return Ok(axum::Router::new());
        };
        let identity = gate::JournalIdentity::load(&cfg.pki_dir, &cfg.node)?;
        let svc = Arc::new(GateService::new(
            ext.store.clone(),
            &cfg.node,
            section,
            &identity,
        )?);
        tracing::info!(
            gates = section.devices.len(),
            "e-gate API at /api/gate/decide"
        );
        gates = Some(tokio::spawn(gate::watch(svc.clone(), ext.stopped.clone())));
        gate_service = Some(svc.clone());
        Ok(gate::routes(GateApi::start(svc)?))
    })
    .await?;
    let pipeline = pipeline::start(&cfg, &runtime).await?;
    // Drones need the bus (their telemetry is live data); without a [bus] section the node
    // opens a private one with no endpoints, so nothing leaves the machine.
    let bus_cfg = cfg
        .bus
        .clone()
        .or_else(|| cfg.drones.as_ref().map(|_| BusConfig::private()));
    let bus = match &bus_cfg {
        Some(b) => {
            let bus = Arc::new(SiteBus::open(&cfg.node, b).await?);
            let recorder = DroneRecorder::start(&bus, runtime.store.clone(), b).await?;
            let heartbeats = match (&gate_service, &cfg.gates) {
                (Some(svc), Some(section)) => Some(
                    HeartbeatMonitor::start(
                        &bus,
                        runtime.store.clone(),
                        svc.links.clone(),
                        svc.gate_ids().to_vec(),
                        Duration::from_secs(section.heartbeat_timeout_secs.max(1)),
                    )
                    .await?,
                ),
                _ => None,
            };
            let drones = match &cfg.drones {
                Some(d) => {
                    let station = d.station(&cfg.data_dir, &cfg.pki_dir)?;
                    Some(DroneStation::start(d, station, bus.clone(), runtime.store.clone()).await?)
                }
                None => None,
            };
            Some((bus, recorder, heartbeats, drones))
        }
        None => None,
    };
    println!(
        "site {} up: dashboard http://{}  sync {}",
        cfg.node,
        runtime.http_addr(),
        runtime.sync_addr()
    );
    shutdown.await;
    tracing::info!("shutting down");
    pipeline.shutdown().await;
    if let Some((bus, recorder, heartbeats, drones)) = bus {
        if let Some(d) = drones {
            d.shutdown().await;
        }
        recorder.shutdown().await;
        if let Some(h) = heartbeats {
            h.shutdown().await;
        }
        if let Ok(bus) = Arc::try_unwrap(bus) {
            bus.close().await;
        }
    }
    runtime.shutdown().await;
    if let Some(g) = gates {
        let _ = g.await;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_documented_site_config_parses() {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/site.toml");
        let cfg = super::SiteConfig::load(&path).unwrap();
        assert_eq!(cfg.node, "tsushima");
        assert_eq!(cfg.sync.peers.len(), 2);
        assert_eq!(cfg.sources.len(), 1);
        assert_eq!(cfg.records.vessel_interval_secs, 10);
        let drones = cfg.drones.expect("the [drones] example");
        assert_eq!(drones.comm_lost_secs, 3.5);
        assert!(drones
            .link
            .parse::<mizugiwa_drone::gcs::station::LinkSpec>()
            .is_ok());
        assert_eq!(
            cfg.ais.behaviour,
            mizugiwa_satellite::ais::BehaviourConfig::default()
        );
    }

    /// Every commented `[[sources]]` example of docs/site.toml, uncommented: both the `# ` and
    /// the indented `#   ` style, with their `[sources.*]` sub-tables; prose between examples
    /// and other commented sections (e.g. `[gates]`) end an example.
    fn documented_source_examples() -> Vec<crate::pipeline::SourceConfig> {
        let doc = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/site.toml");
        let text = std::fs::read_to_string(doc).unwrap();
        // A table header is a whole line (`[sources.detect] and ...` is prose).
        let header = |l: &str| {
            let l = l.split(" #").next().unwrap_or(l).trim_end();
            l.starts_with('[') && l.ends_with(']') && !l.contains(' ')
        };
        let mut in_source = false;
        let examples: String = text
            .lines()
            .filter_map(|l| l.strip_prefix("#   ").or_else(|| l.strip_prefix("# ")))
            .filter(|l| {
                if l.starts_with('[') {
                    in_source = header(l)
                        && (l.starts_with("[[sources]]")
                            || (in_source && l.starts_with("[sources.")));
                }
                in_source
            })
            .filter(|l| {
                header(l)
                    || l.split_once(" = ").is_some_and(|(k, _)| {
                        !k.is_empty() && k.chars().all(|c| c.is_ascii_lowercase() || c == '_')
                    })
            })
            .map(|l| format!("{l}\n"))
            .collect();
        #[derive(serde::Deserialize)]
        struct Doc {
            sources: Vec<crate::pipeline::SourceConfig>,
        }
        toml::from_str::<Doc>(&examples)
            .unwrap_or_else(|e| panic!("{e}\nin the examples:\n{examples}"))
            .sources
    }

    #[test]
    fn every_documented_source_example_parses() {
        use crate::pipeline::SourceConfig;
        let sources = documented_source_examples();
        assert!(
            matches!(
                &sources[..],
                [
                    SourceConfig::AisTcp { reconnect_secs: 5, .. },
                    SourceConfig::AisUdp { .. },
                    SourceConfig::SarInbox { land: Some(_), detect, correlation, .. },
                    SourceConfig::XrayInbox { model: Some(_), alert_threshold: Some(t), .. },
                    SourceConfig::NqrInbox { pfa, .. },
                    SourceConfig::DroneVideoInbox { every: 5, .. },
                ] if detect.cfar.pfa == 3.16e-7
                    && correlation.gate_m == 1000.0
                    && *t == 0.5
                    && *pfa == 1e-3
            ),
            "{sources:#?}"
        );
    }

    #[test]
    fn bad_behaviour_thresholds_are_refused_at_load_with_the_field_named() {
        let doc = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/site.toml");
        let text = std::fs::read_to_string(doc).unwrap();
        assert!(
            text.contains("\ngap_minutes = 30\n"),
            "the example sets gap_minutes"
        );
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("site.toml");
        for (from, to, why) in [
            (
                "\ngap_minutes = 30\n",
                "\ngap_minutes = 0\n",
                "ais.behaviour.gap_minutes: must be at least 1 minute",
            ),
            (
                "\nencounter_distance_m = 500.0\n",
                "\nencounter_distance_m = 5.0\n",
                "ais.behaviour.encounter_distance_m",
            ),
            (
                "\ngap_minutes = 30\n",
                "\ngap_minute = 30\n",
                "unknown field `gap_minute`",
            ),
        ] {
            std::fs::write(&path, text.replace(from, to)).unwrap();
            let err = format!("{:#}", super::SiteConfig::load(&path).unwrap_err());
            assert!(err.contains(why) && err.contains("site.toml"), "{err}");
        }
    }
}
