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

/// Connects a pool and, if the config says so, runs the migrations.
pub async fn connect(config: &DatabaseConfig) -> Result<PgPool, DbSetupError> {
    let options = PgConnectOptions::from_str(config.url.expose_secret())?;
    let pool = PgPoolOptions::new()
        .max_connections(config.max_connections)
        .acquire_timeout(Duration::from_secs(10))
        .connect_with(options)
        .await?;
    if config.migrate {
        MIGRATOR.run(&pool).await?;
    }
    Ok(pool)
}
