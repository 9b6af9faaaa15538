//! The `gateway` binary: read config, init tracing, serve until SIGTERM. `gateway healthcheck`
//! asks a running gateway's admin endpoint whether it is alive.

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let config = shared::config::Config::load_from_args()?;
    if std::env::args().nth(1).as_deref() == Some("healthcheck") {
        std::process::exit(if shared::admin::probe(config.gateway.admin_listen) { 0 } else { 1 });
    }
    shared::telemetry::init(&config.log);
    let open_files = shared::rlimit::raise_open_files();
    tracing::info!(open_files, "open-files limit");
    let shutdown = shared::shutdown::on_signal();
    let listener = tokio::net::TcpListener::bind(config.gateway.listen).await?;
    gateway::run(config, listener, shutdown).await?;
    Ok(())
}
