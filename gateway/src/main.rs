//! The `gateway` binary: read config, init tracing, serve until SIGTERM. `gateway healthcheck`
//! asks a running gateway's admin endpoint whether it is alive.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    // Before the runtime starts its threads.
    gateway::memory::return_large_blocks_to_the_system();
    tokio::runtime::Builder::new_multi_thread().enable_all().build()?.block_on(serve())
}

async fn serve() -> Result<(), Box<dyn std::error::Error>> {
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
