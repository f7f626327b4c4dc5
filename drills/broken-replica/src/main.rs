//! `mizugiwa-broken-replica node|command --config FILE`: the site and command daemons built
//! with the `drill-fault-drop-write` fault, which acknowledges the fifth alert raised through
//! the API without writing it. The drills' own test runs a drill with one node on this binary
//! and expects the checker to fail, naming that alert. Never deploy it.

fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_writer(std::io::stderr)
        .init();
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (role, config) = match args.as_slice() {
        [role, flag, config] if flag == "--config" => {
            (role.as_str(), std::path::PathBuf::from(config))
        }
        _ => anyhow::bail!("usage: mizugiwa-broken-replica node|command --config FILE"),
    };
    let rt = tokio::runtime::Runtime::new()?;
    let shutdown = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    match role {
        "node" => rt.block_on(mizugiwa_field_node::run(
            mizugiwa_field_node::SiteConfig::load(&config)?,
            shutdown,
        )),
        "command" => rt.block_on(mizugiwa_command::run(
            mizugiwa_command::CommandConfig::load(&config)?,
            shutdown,
        )),
        other => anyhow::bail!("unknown role {other:?}: node or command"),
    }
}
