//! The `messages` worker binary: read config, init tracing, run the workers until SIGTERM.

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let config = shared::config::Config::load_from_args()?;
    shared::telemetry::init(&config.log);
    let shutdown = shared::shutdown::on_signal();
    messages::run(config, shutdown).await?;
    Ok(())
}
