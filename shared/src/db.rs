//! Postgres connection pool and the embedded migrations from `migrations/`.

use crate::config::DatabaseConfig;
use secrecy::ExposeSecret;
use sqlx::PgPool;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use std::str::FromStr;
use std::time::Duration;

#[derive(Debug, thiserror::Error)]
pub enum DbSetupError {
    #[error("connecting to Postgres: {0}")]
    Connect(#[from] sqlx::Error),
    #[error("migrating: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
}

pub static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("../migrations");

/// Whether a pool checks each connection with a round trip before handing it out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Acquire {
    /// Pinged first: a connection Postgres dropped is replaced before anyone uses it (the
    /// gateway: a REST request gets no error for a restart it did not see).
    Tested,
    /// Handed out as it is: one round trip less per transaction. A dropped connection fails
    /// its first statement (the worker retries the batch, which is idempotent).
    Untested,
}

/// Connects a pool and, if the config says so, runs the migrations.
pub async fn connect(config: &DatabaseConfig, acquire: Acquire) -> Result<PgPool, DbSetupError> {
    let options = PgConnectOptions::from_str(config.url.expose_secret())?;
    let pool = PgPoolOptions::new()
        .max_connections(config.max_connections)
        .test_before_acquire(acquire == Acquire::Tested)
        .acquire_timeout(Duration::from_secs(10))
        .connect_with(options)
        .await?;
    if config.migrate {
        MIGRATOR.run(&pool).await?;
    }
    Ok(pool)
}
