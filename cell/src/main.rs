//! `cell`: runs a complete local chat cell — 3 NATS JetStream nodes, Postgres, Redis, a
//! gateway and a message worker — as local processes with their data in `.cell/`, prints the
//! URLs, and stops everything cleanly on Ctrl-C. History survives restarts.

use shared::local::cell::{Backend, CellPorts};
use shared::local::{CellOptions, TestCell};
use std::path::PathBuf;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    shared::telemetry::init(&shared::config::LogConfig::default());
    let args = Args::parse();
    shared::rlimit::raise_open_files();
    println!("starting the cell in {} …", args.dir.display());
    let mut cell = TestCell::start(CellOptions {
        gateways: args.gateways,
        workers: args.workers,
        partitions: 16,
        dir: Some(args.dir.clone()),
        host: Some(std::net::Ipv4Addr::LOCALHOST),
        ports: Some(CellPorts {
            nats: [(4222, 6222, 8222), (4223, 6223, 8223), (4224, 6224, 8224)],
            postgres: 15432,
            redis: 16379,
            gateway: args.port,
            admin: 9100,
        }),
        durable: true,
        bin_dir: args.bin_dir,
        extra_config: String::new(),
        gateway_config: String::new(),
        worker_config: String::new(),
        raise_limits: false,
        // The processes inherit this one's environment (`AWS_*` for an S3 upload store).
        env: Vec::new(),
        // The embedded default: local processes, whatever else the machine has.
        backend: Backend::Local,
    })
    .await?;
    println!("\nThe cell is up.");
    for i in 0..cell.gateways.len() {
        println!("  REST       {}/api/v1", cell.gateway_url(i));
        println!("  WebSocket  {}", cell.ws_url(i));
        println!("  health     {}/health  {}/ready", cell.gateway_url(i), cell.gateway_url(i));
    }
    for app in cell.gateways.iter().chain(&cell.workers) {
        println!("  {:<10} {}/metrics  /health  /ready", app.name, cell.admin_url(app));
    }
    println!("  NATS       {}", cell.nats_urls().join(", "));
    println!("  Postgres   {}", cell.database_url());
    println!("  Redis      {}", cell.redis_url());
    println!("  logs       {}/*.log\n\nCtrl-C stops everything.", args.dir.display());

    shared::shutdown::on_signal().cancelled().await;
    println!("stopping …");
    cell.stop().await;
    println!("stopped; data kept in {}", args.dir.display());
    Ok(())
}

struct Args {
    dir: PathBuf,
    port: u16,
    gateways: usize,
    workers: usize,
    bin_dir: Option<PathBuf>,
}

impl Args {
    /// `cell [--dir .cell] [--port 8080] [--gateways 1] [--workers 1] [--bin-dir DIR]`
    fn parse() -> Self {
        let mut args = Args { dir: ".cell".into(), port: 8080, gateways: 1, workers: 1, bin_dir: None };
        let mut it = std::env::args().skip(1);
        while let Some(flag) = it.next() {
            let value = it.next().unwrap_or_default();
            match flag.as_str() {
                "--dir" => args.dir = value.into(),
                "--port" => args.port = value.parse().unwrap_or(args.port),
                "--gateways" => args.gateways = value.parse().unwrap_or(1).max(1),
                "--workers" => args.workers = value.parse().unwrap_or(1).max(1),
                "--bin-dir" => args.bin_dir = Some(value.into()),
                other => eprintln!("ignoring unknown argument {other}"),
            }
        }
        args.dir = std::path::absolute(&args.dir).unwrap_or(args.dir);
        args
    }
}
