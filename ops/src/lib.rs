//! Helpers for the tests in `ops/tests/`, which check the cell's operations files (Dockerfiles,
//! docker-compose, `k8s/`, Prometheus rules, Grafana dashboards, `.github/workflows/`) with the
//! real tools where there is one (kubectl, kubernetes-validate, promtool, actionlint).
//! Every tool is installed by `scripts/setup.sh`; a missing one fails the test, never skips it.
//! `architecture` checks the Rust crates themselves: import circles, file and function sizes.

pub mod architecture;
pub mod config_fields;
pub mod manifests;
pub mod metrics_doc;
pub mod nats_conf;
pub mod promql;
pub mod repo;
pub mod tool;
