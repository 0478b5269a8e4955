#!/usr/bin/env bash
# Installs what Tributary's tests and demo need on a fresh Debian/Ubuntu machine:
# Debian packages (MariaDB server and client, build tools) and a Python venv
# with the independent Delta readers. Idempotent: installs only what is missing.
set -euo pipefail

CACHE_DIR="${TRIBUTARY_CACHE_DIR:-/var/cache/tributary}"
VENV="${TRIBUTARY_VENV:-$CACHE_DIR/venv}"
SUDO=""
if [ "$(id -u)" != 0 ]; then SUDO="sudo"; fi

need_apt=()
command -v mariadbd >/dev/null 2>&1 || [ -x /usr/sbin/mariadbd ] || need_apt+=(mariadb-server)
command -v mariadb >/dev/null 2>&1 || need_apt+=(mariadb-client)
command -v cc >/dev/null 2>&1 || need_apt+=(build-essential)
command -v python3 >/dev/null 2>&1 || need_apt+=(python3 python3-venv)
python3 -c 'import venv, ensurepip' >/dev/null 2>&1 || need_apt+=(python3-venv)
if [ ${#need_apt[@]} -gt 0 ]; then
  echo "setup: installing Debian packages: ${need_apt[*]}"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${need_apt[@]}" >/dev/null
fi
# Debian's package starts a system MariaDB; the tests start their own on free ports.

if ! command -v cargo >/dev/null 2>&1; then
  echo "setup: cargo not found; install Rust 1.95+ (https://rustup.rs) and re-run" >&2
  exit 1
fi

mkdir -p "$CACHE_DIR"
if [ ! -x "$VENV/bin/python" ] || ! "$VENV/bin/python" -c 'import deltalake, pyarrow' >/dev/null 2>&1; then
  echo "setup: creating Python venv $VENV with the independent Delta readers"
  python3 -m venv "$VENV"
  PIP_CACHE_DIR="$CACHE_DIR/pip" "$VENV/bin/pip" install -q --disable-pip-version-check \
    -r "$(dirname "$0")/requirements-test.txt"
fi
echo "setup: ok (venv $VENV)"
