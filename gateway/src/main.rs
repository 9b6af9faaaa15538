//! The `gateway` binary: read config, init tracing, serve until SIGTERM. `gateway healthcheck`
//! asks a running gateway's admin endpoint whether it is alive; `gateway openapi` prints the
//! REST API's OpenAPI document.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    // Before the runtime starts its threads.
    gateway::memory::return_large_blocks_to_the_system();
    tokio::runtime::Builder::new_multi_thread().enable_all().build()?.block_on(serve())
}

async fn serve() -> Result<(), Box<dyn std::error::Error>> {
    if std::env::args().nth(1).as_deref() == Some("openapi") {
        println!("{}", gateway::openapi_document().to_pretty_json()?);
        return Ok(());
    }
    let config = shared::config::Config::load_from_args()?;
    if std::env::args().nth(1).as_deref() == Some("healthcheck") {
        std::process::exit(if shared::admin::probe(config.gateway.admin_listen) { 0 } else { 1 });
    }
    shared::telemetry::init(&config.log);
    let open_files = shared::rlimit::raise_open_files();
    tracing::info!(open_files, "open-files limit");
    let shutdown = shared::shutdown::on_signal();
    let listener = bind(config.gateway.listen, config.gateway.listen_backlog)?;
    gateway::run(config, listener, shutdown).await?;
    Ok(())
}

/// The client listener, with room for `backlog` connections not accepted yet (tokio's own
/// `bind` queues 1,024: a reconnect storm of a few thousand sockets overflowed it).
fn bind(address: std::net::SocketAddr, backlog: u32) -> std::io::Result<tokio::net::TcpListener> {
    let socket = match address {
        std::net::SocketAddr::V4(_) => tokio::net::TcpSocket::new_v4()?,
        std::net::SocketAddr::V6(_) => tokio::net::TcpSocket::new_v6()?,
    };
    socket.set_reuseaddr(true)?;
    socket.bind(address)?;
    socket.listen(backlog)
}
