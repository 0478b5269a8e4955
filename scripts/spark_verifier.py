#!/usr/bin/env python3
"""Spark + Delta verifier for Tributary's tests: one long-lived process (one
JVM) per test run, reading Delta tables through Spark 3.5 and Delta 3.x.

Started by the test kit (crates/tributary-testkit/src/spark.rs):
  spark_verifier.py --jars A.jar,B.jar [--conf config/spark/spark-defaults.conf] [--workdir DIR]

Protocol: JSON lines. The first line on stdout is
  {"ready": true, "spark_version": "3.5.x"}
then one answer per request line read on stdin:
  {"id": 1, "op": "schema",  "path": P [, "version": V]}           -> [{"name", "type", "nullable"}]
  {"id": 2, "op": "count",   "path": P [, "version": V]}           -> n
  {"id": 3, "op": "rows",    "path": P [, "version": V] [, "order_by": [cols]]} -> [{col: value}]
  {"id": 4, "op": "history", "path": P}                            -> [{version, operation, ...}] by version
  {"id": 5, "op": "cdf",     "path": P, "start": S [, "end": E] [, "order_by": [cols]]}
                                   -> rows with _change_type, _commit_version, _commit_timestamp
  {"id": 6, "op": "cdf_count", "path": P, "start": S [, "end": E]} -> n
  {"id": 7, "op": "sql",     "query": Q}                           -> [{col: value}]
  {"id": 8, "op": "ping"}                                          -> {"spark_version": ...}
  {"id": 9, "op": "register_s3", "bucket": B, "endpoint": URL, "region": R, "access_key": K, "secret_key": S}
                                   -> {"bucket": B}; then P may be "s3a://B/<key>"
answered as {"id": N, "ok": true, "result": R} or {"id": N, "ok": false, "error": "Class: message"}.
P is a local path, or an s3a:// URL of a bucket registered with register_s3 (the
jars must include hadoop-aws and the AWS SDK bundle).
"version" is time travel (versionAsOf). Values: decimals as strings, timestamps as
ISO-8601 (UTC, "+00:00" for TIMESTAMP, none for TIMESTAMP_NTZ), dates ISO, binary as
hex, NaN/Infinity as strings: the same canonical form as scripts/delta_reader.py.
Everything else (Spark's and the JVM's logs) goes to stderr. Exits at end of input.
"""
import argparse
import datetime
import decimal
import json
import math
import os
import sys
import time
import traceback

# The protocol owns the real stdout; anything else printing to fd 1 (py4j, the
# JVM child) goes to stderr.
_PROTO = os.fdopen(os.dup(1), "w", buffering=1)
os.dup2(2, 1)
sys.stdout = sys.stderr
os.environ["TZ"] = "UTC"
time.tzset()

# Settings the verifier always sets (loopback only, one core, quiet, UTC).
LOCAL = {
    "spark.master": "local[1]",
    "spark.app.name": "tributary-spark-verifier",
    "spark.driver.memory": "1g",
    "spark.driver.host": "127.0.0.1",
    "spark.driver.bindAddress": "127.0.0.1",
    "spark.ui.enabled": "false",
    "spark.ui.showConsoleProgress": "false",
    "spark.sql.session.timeZone": "UTC",
    "spark.driver.extraJavaOptions": "-Duser.timezone=UTC -XX:+UseSerialGC",
    "spark.sql.shuffle.partitions": "1",
    "spark.default.parallelism": "1",
    "spark.databricks.delta.snapshotPartitions": "1",
    "spark.sql.catalogImplementation": "in-memory",
}
# Keys of spark-defaults.conf the verifier replaces with local equivalents.
SKIPPED = {"spark.master", "spark.jars.packages", "spark.jars", "spark.sql.warehouse.dir", "spark.eventLog.dir"}


def read_defaults(path):
    conf = {}
    if not path:
        return conf
    with open(path) as f:
        for line in f:
            line = line.strip()
            if not line or line.startswith("#"):
                continue
            parts = line.split(None, 1)
            if len(parts) == 2 and parts[0] not in SKIPPED:
                conf[parts[0]] = parts[1].strip()
    return conf


def session(jars, defaults, workdir):
    from pyspark.sql import SparkSession

    builder = SparkSession.builder
    conf = dict(defaults)
    conf.update(LOCAL)
    conf["spark.jars"] = ",".join(jars)
    conf["spark.sql.warehouse.dir"] = os.path.join(workdir, "warehouse")
    conf["spark.local.dir"] = os.path.join(workdir, "spark-local")
    conf.setdefault("spark.sql.extensions", "io.delta.sql.DeltaSparkSessionExtension")
    conf.setdefault("spark.sql.catalog.spark_catalog", "org.apache.spark.sql.delta.catalog.DeltaCatalog")
    for k, v in conf.items():
        builder = builder.config(k, v)
    spark = builder.getOrCreate()
    spark.sparkContext.setLogLevel("ERROR")
    return spark


def canon(value, dtype=None):
    from pyspark.sql import types as T

    if value is None:
        return None
    if isinstance(value, decimal.Decimal):
        return str(value)
    if isinstance(value, datetime.datetime):
        if isinstance(dtype, T.TimestampType) and value.tzinfo is None:
            value = value.replace(tzinfo=datetime.timezone.utc)
        return value.isoformat()
    if isinstance(value, (datetime.date, datetime.time)):
        return value.isoformat()
    if isinstance(value, (bytes, bytearray)):
        return bytes(value).hex()
    if isinstance(value, float):
        if math.isnan(value):
            return "NaN"
        if math.isinf(value):
            return "Infinity" if value > 0 else "-Infinity"
        return value
    if isinstance(value, datetime.timedelta):
        return value.total_seconds()
    if hasattr(value, "asDict"):  # a struct
        fields = {f.name: f.dataType for f in dtype.fields} if isinstance(dtype, T.StructType) else {}
        return {k: canon(v, fields.get(k)) for k, v in value.asDict(recursive=False).items()}
    if isinstance(value, dict):
        vt = dtype.valueType if isinstance(dtype, T.MapType) else None
        return {str(canon(k)): canon(v, vt) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        et = dtype.elementType if isinstance(dtype, T.ArrayType) else None
        return [canon(v, et) for v in value]
    return value


def rows_of(df, order_by=None):
    if order_by:
        df = df.orderBy(*order_by)
    types = {f.name: f.dataType for f in df.schema.fields}
    return [{k: canon(v, types.get(k)) for k, v in row.asDict(recursive=False).items()} for row in df.collect()]


class Verifier:
    def __init__(self, spark):
        self.spark = spark

    def table(self, req):
        reader = self.spark.read.format("delta")
        if req.get("version") is not None:
            reader = reader.option("versionAsOf", int(req["version"]))
        return reader.load(req["path"])

    def change_feed(self, req):
        reader = self.spark.read.format("delta").option("readChangeFeed", "true")
        reader = reader.option("startingVersion", int(req.get("start", 0)))
        if req.get("end") is not None:
            reader = reader.option("endingVersion", int(req["end"]))
        return reader.load(req["path"])

    def op_ping(self, req):
        return {"spark_version": self.spark.version}

    def op_register_s3(self, req):
        # Per-bucket S3A settings (fs.s3a.bucket.<bucket>.*), set on the context's
        # Hadoop configuration that every later DeltaLog copies. A bucket name is
        # used once per test run, so the FileSystem cache (keyed by bucket) never
        # hands out a client of an earlier test's server.
        bucket = req["bucket"]
        settings = {
            "endpoint": req["endpoint"],
            "endpoint.region": req.get("region") or "us-east-1",
            "path.style.access": "true",
            "connection.ssl.enabled": "false",
            "aws.credentials.provider": "org.apache.hadoop.fs.s3a.SimpleAWSCredentialsProvider",
            "access.key": req["access_key"],
            "secret.key": req["secret_key"],
            # A loopback server that is down should fail a request in seconds, not minutes.
            "attempts.maximum": "2",
            "retry.limit": "2",
            "connection.establish.timeout": "5000",
            "connection.timeout": "30000",
        }
        conf = self.spark.sparkContext._jsc.hadoopConfiguration()
        for key, value in settings.items():
            conf.set(f"fs.s3a.bucket.{bucket}.{key}", value)
        return {"bucket": bucket}

    def op_schema(self, req):
        return [
            {"name": f.name, "type": f.dataType.simpleString(), "nullable": f.nullable}
            for f in self.table(req).schema.fields
        ]

    def op_count(self, req):
        return self.table(req).count()

    def op_rows(self, req):
        return rows_of(self.table(req), req.get("order_by"))

    def op_history(self, req):
        path = req["path"].replace("`", "``")
        df = self.spark.sql(f"DESCRIBE HISTORY delta.`{path}`")
        return rows_of(df, ["version"])

    def op_cdf(self, req):
        order = req.get("order_by") or ["_commit_version"]
        return rows_of(self.change_feed(req), order)

    def op_cdf_count(self, req):
        return self.change_feed(req).count()

    def op_sql(self, req):
        return rows_of(self.spark.sql(req["query"]), req.get("order_by"))


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--jars", required=True, help="comma-separated Delta jars")
    parser.add_argument("--conf", default="", help="a spark-defaults.conf to apply")
    parser.add_argument("--workdir", default=os.getcwd())
    args = parser.parse_args()
    jars = [j for j in args.jars.split(",") if j]
    for jar in jars:
        if not os.path.isfile(jar):
            sys.exit(f"spark_verifier: jar not found: {jar} (run scripts/fetch_delta_jars.sh)")
    spark = session(jars, read_defaults(args.conf), args.workdir)
    verifier = Verifier(spark)
    _PROTO.write(json.dumps({"ready": True, "spark_version": spark.version}) + "\n")
    for line in sys.stdin:
        line = line.strip()
        if not line:
            continue
        req_id = None
        try:
            req = json.loads(line)
            req_id = req.get("id")
            if req.get("op") == "exit":
                break
            handler = getattr(verifier, "op_" + str(req.get("op")), None)
            if handler is None:
                raise ValueError(f"unknown op {req.get('op')!r}")
            out = json.dumps({"id": req_id, "ok": True, "result": handler(req)}, allow_nan=False)
        except Exception as e:  # answer the error, keep serving
            message = str(e).strip().splitlines()
            first = " ".join(message[:3]) if message else ""
            out = json.dumps({"id": req_id, "ok": False, "error": f"{type(e).__name__}: {first}"[:4000]})
            traceback.print_exc(file=sys.stderr)
        _PROTO.write(out + "\n")
    spark.stop()


if __name__ == "__main__":
    main()
