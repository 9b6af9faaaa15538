//! Logging set-up: `tracing` to stderr, human-readable or JSON lines, filtered by config.

use crate::config::LogConfig;
use tracing_subscriber::EnvFilter;

/// Installs the global subscriber; `RUST_LOG` wins over the configured filter when set.
pub fn init(config: &LogConfig) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(&config.filter));
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr);
    let _ = if config.json { builder.json().try_init() } else { builder.try_init() };
}
