#!/usr/bin/env bash
# `make demo`: a local MariaDB (own data dir, free loopback port) with a sample
# shop schema and a stream of changes, replicated by Tributary into
# ./delta-tables; prints what landed and where. Stops everything on exit.
# S3=1 (`make demo S3=1`): the lake goes to s3://tributary-demo/lake on a local
# S3 server (moto, loopback; the test venv of `make setup`) instead.
set -euo pipefail
cd "$(dirname "$0")/.."
DEMO_DIR="$PWD/.tributary-demo"
LAKE="$PWD/delta-tables"
BIN="${CARGO_TARGET_DIR:-target}/debug/tributary"

cargo build --locked -q -p tributary
# The demo's server is new on every run, so a lake left by an earlier run holds
# positions in a binlog that no longer exists: start both afresh.
rm -rf "$DEMO_DIR" "$LAKE"; mkdir -p "$DEMO_DIR"
PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
SOCK="$DEMO_DIR/mysqld.sock"

echo "demo: starting MariaDB on 127.0.0.1:$PORT (data in $DEMO_DIR)"
mkdir -p "$DEMO_DIR/tmp"
mariadb-install-db --no-defaults --user="$(id -un)" --skip-test-db --datadir="$DEMO_DIR/data" --tmpdir="$DEMO_DIR/tmp" >"$DEMO_DIR/install.log" 2>&1
mariadbd --no-defaults --user="$(id -un)" --datadir="$DEMO_DIR/data" --socket="$SOCK" --port="$PORT" \
  --tmpdir="$DEMO_DIR/tmp" --bind-address=127.0.0.1 --skip-name-resolve --server-id=1 --log-bin="$DEMO_DIR/data/mariadb-bin" \
  --binlog-format=ROW --binlog-row-image=FULL --binlog-row-metadata=FULL >"$DEMO_DIR/server.log" 2>&1 &
DB_PID=$!
PIPE_PID=""
S3_PID=""
cleanup() {
  [ -n "$PIPE_PID" ] && kill "$PIPE_PID" 2>/dev/null || true
  [ -n "$S3_PID" ] && kill "$S3_PID" 2>/dev/null || true
  kill "$DB_PID" 2>/dev/null || true
  wait 2>/dev/null || true
}
trap cleanup EXIT
sql() { mariadb --socket="$SOCK" -uroot --batch --skip-column-names -e "$1"; }
for _ in $(seq 1 300); do sql "SELECT 1" >/dev/null 2>&1 && break; sleep 0.1; done
sql "SELECT 1" >/dev/null

sql "CREATE USER 'cdc'@'127.0.0.1' IDENTIFIED BY 'cdc-demo'; GRANT REPLICATION SLAVE, REPLICATION CLIENT, SELECT ON *.* TO 'cdc'@'127.0.0.1';
CREATE DATABASE shop; USE shop;
CREATE TABLE shop.customers (id INT PRIMARY KEY, name VARCHAR(100), email VARCHAR(200), created_at DATETIME(6));
CREATE TABLE shop.orders (id BIGINT PRIMARY KEY, customer_id INT, amount DECIMAL(12,2), status ENUM('new','paid','shipped'), placed_at TIMESTAMP(3));
INSERT INTO shop.customers SELECT seq, CONCAT('customer ', seq), CONCAT('c', seq, '@example.com'), NOW(6) FROM seq_1_to_1000;
INSERT INTO shop.orders SELECT seq, 1 + seq % 1000, seq * 1.25, 'new', NOW(3) FROM seq_1_to_5000;"

STORAGE=""
if [ "${S3:-0}" = "1" ]; then
  PY="${TRIBUTARY_PYTHON:-/var/cache/tributary/venv/bin/python}"
  "$PY" scripts/s3_server.py --port 0 >"$DEMO_DIR/s3.ready" 2>"$DEMO_DIR/s3-server.log" &
  S3_PID=$!
  for _ in $(seq 1 100); do [ -s "$DEMO_DIR/s3.ready" ] && break; sleep 0.1; done
  S3_PORT=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["port"])' "$DEMO_DIR/s3.ready")
  python3 -c 'import sys, urllib.request; urllib.request.urlopen(urllib.request.Request(sys.argv[1], method="PUT"))' \
    "http://127.0.0.1:$S3_PORT/tributary-demo"
  LAKE="s3://tributary-demo/lake"
  STORAGE="[sink.delta.storage]
endpoint = \"http://127.0.0.1:$S3_PORT\"
region = \"us-east-1\"
access_key_id = \"demo\"
secret_access_key = \"demo\"
allow_http = \"true\""
  echo "demo: S3 server (moto) on 127.0.0.1:$S3_PORT, bucket tributary-demo"
fi

cat >"$DEMO_DIR/pipeline.toml" <<TOML
[pipeline]
name = "demo"

[source.mysql]
port = $PORT
user = "cdc"
include = ["shop.*"]

[sink.delta]
root = "$LAKE"
$STORAGE
TOML
echo "demo: running tributary (config $DEMO_DIR/pipeline.toml) into $LAKE"
TRIBUTARY_SOURCE_PASSWORD=cdc-demo "$BIN" run --config "$DEMO_DIR/pipeline.toml" 2>"$DEMO_DIR/tributary.log" &
PIPE_PID=$!
for round in $(seq 1 20); do
  sql "UPDATE shop.orders SET status='paid' WHERE id % 20 = $((round % 20));
       INSERT INTO shop.orders VALUES ($((5000 + round)), $round, 9.99, 'new', NOW(3));
       DELETE FROM shop.customers WHERE id = $((round * 7));"
  sleep 0.25
done
sleep 2
kill -TERM "$PIPE_PID"; wait "$PIPE_PID" || true; PIPE_PID=""
echo
TRIBUTARY_SOURCE_PASSWORD=cdc-demo "$BIN" status --config "$DEMO_DIR/pipeline.toml"
echo
echo "demo: last changes of shop.orders:"
TRIBUTARY_SOURCE_PASSWORD=cdc-demo "$BIN" changes shop.orders --config "$DEMO_DIR/pipeline.toml" --from-version 1 | tail -5
echo
if [ "${S3:-0}" = "1" ]; then
  echo "demo: Delta tables are in $LAKE on the local S3 server, gone when the demo ends (storage settings: $DEMO_DIR/pipeline.toml); log: $DEMO_DIR/tributary.log"
else
  echo "demo: Delta tables are in $LAKE (read them with Spark, delta-rs or DuckDB); log: $DEMO_DIR/tributary.log"
fi
