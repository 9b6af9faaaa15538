//! `cell`: runs a complete local chat cell — 3 NATS JetStream nodes, Postgres, Redis, a
//! gateway and a message worker — as local processes with their data in `.cell/`, prints the
//! URLs, and stops everything cleanly on Ctrl-C. History survives restarts.

use shared::local::cell::{Backend, CellPorts};
use shared::local::{CellOptions, TestCell};
use std::path::PathBuf;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    shared::telemetry::init(&shared::config::LogConfig::default());
    let args = match Args::parse(std::env::args().skip(1)) {
        Ok(Some(args)) => args,
        Ok(None) => {
            println!("{USAGE}");
            return Ok(());
        }
        Err(error) => {
            eprintln!("{error}");
            std::process::exit(2);
        }
    };
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
        // Pages the gateway serves are its own origin; the web client's dev server (Vite, on
        // 5173) is a second one on this machine.
        gateway_config: gateway_config(args.web_dir.as_deref()),
        worker_config: String::new(),
        raise_limits: args.load_test,
        nats_in_namespaces: false,
        // The processes inherit this one's environment (`AWS_*` for an S3 upload store).
        env: Vec::new(),
        // The embedded default: local processes, whatever else the machine has.
        backend: Backend::Local,
    })
    .await?;
    println!("\nThe cell is up.");
    if args.load_test {
        println!("  limits     raised for a load test (--load-test)");
    }
    for i in 0..cell.gateways.len() {
        if args.web_dir.is_some() {
            println!("  web app    {}/", cell.gateway_url(i));
        }
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

/// The browser origins the local cell accepts besides its own: the web client's dev server.
const DEV_ORIGINS: &str = "allowed_origins = [\"http://localhost:5173\", \"http://127.0.0.1:5173\"]\n";

/// The gateways' `[gateway]` lines: the dev origins, and the web client's pages if given.
fn gateway_config(web_dir: Option<&std::path::Path>) -> String {
    let pages = web_dir.map(|dir| format!("web_dir = {:?}\n", dir.display().to_string())).unwrap_or_default();
    format!("{DEV_ORIGINS}{pages}")
}

struct Args {
    dir: PathBuf,
    port: u16,
    gateways: usize,
    workers: usize,
    bin_dir: Option<PathBuf>,
    load_test: bool,
    web_dir: Option<PathBuf>,
}

const USAGE: &str =
    "usage: cell [--dir .cell] [--port 8080] [--gateways 1] [--workers 1] [--bin-dir DIR] [--web-dir DIR] [--load-test]

  --web-dir     a built web client (web/dist) for the gateways to serve at / (scripts/cell.sh
                builds it and passes it).

  --load-test   raise the rate limits out of a load test's way (REST, sends and channel rates
                to 1,000,000 per window, 100,000 sockets per user, auth per IP unlimited).
                The defaults (10 sends/s per user, 1,000 messages/min per channel, 5 sockets
                per user, a burst of 10 logins per IP) refuse any benchmark.

One limit at a time, through the environment (each field on its own; docs/runbook.md):
  CHAT__LIMITS__SENDS_PER_USER__COUNT=1000 CHAT__LIMITS__MESSAGES_PER_CHANNEL__COUNT=100000 \\
  CHAT__LIMITS__SOCKETS_PER_USER=50 CHAT__LIMITS__AUTH_PER_IP_BURST=10000 cell";

impl Args {
    /// Reads the flags of [`USAGE`]; `None` for `--help`. An unknown flag or a bad value is
    /// refused rather than ignored: a typo must not start a cell nobody asked for.
    fn parse(flags: impl IntoIterator<Item = String>) -> anyhow::Result<Option<Self>> {
        let mut args = Args {
            dir: ".cell".into(),
            port: 8080,
            gateways: 1,
            workers: 1,
            bin_dir: None,
            load_test: false,
            web_dir: None,
        };
        let mut it = flags.into_iter();
        while let Some(flag) = it.next() {
            if matches!(flag.as_str(), "-h" | "--help") {
                return Ok(None);
            }
            if flag == "--load-test" {
                args.load_test = true;
                continue;
            }
            let Some(value) = it.next() else { anyhow::bail!("{flag} needs a value\n{USAGE}") };
            let count = |value: &str| match value.parse::<usize>() {
                Ok(n) if n >= 1 => Ok(n),
                _ => Err(anyhow::anyhow!("{flag} takes a number of at least 1, not {value:?}\n{USAGE}")),
            };
            match flag.as_str() {
                "--dir" => args.dir = value.into(),
                "--port" => {
                    args.port =
                        value.parse().map_err(|_| anyhow::anyhow!("--port takes a port, not {value:?}"))?
                }
                "--gateways" => args.gateways = count(&value)?,
                "--workers" => args.workers = count(&value)?,
                "--bin-dir" => args.bin_dir = Some(value.into()),
                "--web-dir" => args.web_dir = Some(std::path::absolute(&value)?),
                other => anyhow::bail!("unknown argument {other}\n{USAGE}"),
            }
        }
        args.dir = std::path::absolute(&args.dir).unwrap_or(args.dir);
        Ok(Some(args))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(flags: &[&str]) -> anyhow::Result<Option<Args>> {
        Args::parse(flags.iter().map(|f| f.to_string()))
    }

    #[test]
    fn flags_are_read_and_mistakes_refused() {
        let args = parse(&["--gateways", "2", "--workers", "3", "--port", "9000"]).unwrap().unwrap();
        assert_eq!((args.gateways, args.workers, args.port), (2, 3, 9000));
        assert!(!args.load_test);
        assert!(parse(&["--load-test", "--port", "9001"]).unwrap().unwrap().load_test);
        assert!(args.dir.is_absolute() && args.dir.ends_with(".cell"));
        assert!(parse(&["--help"]).unwrap().is_none());
        for wrong in [&["--gatways", "2"][..], &["--gateways", "0"], &["--port", "http"], &["--workers"]] {
            assert!(parse(wrong).is_err(), "{wrong:?} refused");
        }
    }
}
