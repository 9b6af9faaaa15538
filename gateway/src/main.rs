//! The `gateway` binary: read config, init tracing, serve until SIGTERM.

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let config = shared::config::Config::load_from_args()?;
    shared::telemetry::init(&config.log);
    let shutdown = shared::shutdown::on_signal();
    let listener = tokio::net::TcpListener::bind(config.gateway.listen).await?;
    gateway::run(config, listener, shutdown).await?;
    Ok(())
}
