//! The `messages` worker binary: read config, init tracing, run the workers until SIGTERM.
//! `messages healthcheck` asks a running worker's admin endpoint whether it is alive.

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let config = shared::config::Config::load_from_args()?;
    if std::env::args().nth(1).as_deref() == Some("healthcheck") {
        std::process::exit(if shared::admin::probe(config.worker.admin_listen) { 0 } else { 1 });
    }
    shared::telemetry::init(&config.log);
    shared::rlimit::raise_open_files();
    let shutdown = shared::shutdown::on_signal();
    messages::run(config, shutdown).await?;
    Ok(())
}
