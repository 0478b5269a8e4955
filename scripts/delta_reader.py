#!/usr/bin/env python3
"""Independent Delta reader for Tributary's tests (delta-rs Python bindings).

Prints JSON on stdout:
  rows <table_path>                      -> current rows, sorted by all columns (to_pyarrow_table; a table
                                            with the deletionVectors feature is read as `scan` does)
  scan <table_path>                      -> the same through delta-rs' DataFusion scan (QueryBuilder),
                                            which applies deletion vectors (to_pyarrow_table refuses them)
  duckdb <table_path>                    -> the same through DuckDB's delta extension (delta-kernel-rs),
                                            a third implementation of the protocol (deletion vectors included)
  cdf <table_path> <from> [<to>]         -> change feed rows with _change_type, _commit_version
  txn <table_path> <app_id>              -> {"version": <delta version>, "txn": <txn version or null>}
Values: decimals as strings, timestamps as ISO-8601, bytes as hex.
"""
import datetime
import decimal
import os
import json
import sys

import pyarrow as pa
from deltalake import DeltaTable, QueryBuilder


def canon(v):
    if isinstance(v, decimal.Decimal):
        return str(v)
    if isinstance(v, (datetime.datetime, datetime.date, datetime.time)):
        return v.isoformat()
    if isinstance(v, (bytes, bytearray)):
        return bytes(v).hex()
    if isinstance(v, list):
        return [canon(x) for x in v]
    if isinstance(v, float) and v != v:
        return "NaN"
    return v


def rows_of(table):
    out = []
    for batch in table.to_batches():
        for row in batch.to_pylist():
            out.append({k: canon(v) for k, v in row.items()})
    return out


def main(argv):
    cmd, path = argv[1], argv[2]
    dt = DeltaTable(path)
    if cmd == "rows":
        if "deletionVectors" in (dt.protocol().reader_features or []):
            table = pa.RecordBatchReader.from_stream(QueryBuilder().register("t", dt).execute("SELECT * FROM t")).read_all()
        else:
            table = dt.to_pyarrow_table()
        rows = rows_of(table)
        rows.sort(key=lambda r: json.dumps(r, sort_keys=True))
        print(json.dumps({"version": dt.version(), "schema": dt.schema().to_json(), "rows": rows}))
    elif cmd == "scan":
        reader = QueryBuilder().register("t", dt).execute("SELECT * FROM t")
        rows = rows_of(pa.RecordBatchReader.from_stream(reader).read_all())
        rows.sort(key=lambda r: json.dumps(r, sort_keys=True))
        print(json.dumps({"version": dt.version(), "rows": rows}))
    elif cmd == "duckdb":
        import duckdb
        import duckdb_extension_delta

        # The extension ships in a wheel (no download at run time).
        ext_dir = os.path.join(os.path.dirname(duckdb_extension_delta.__file__), "extensions")
        (version,) = os.listdir(ext_dir)
        con = duckdb.connect()
        con.execute(f"LOAD '{os.path.join(ext_dir, version, 'delta.duckdb_extension')}'")
        table = con.execute("SELECT * FROM delta_scan(?)", [os.path.abspath(path)]).to_arrow_table()
        rows = rows_of(table)
        rows.sort(key=lambda r: json.dumps(r, sort_keys=True))
        print(json.dumps({"version": dt.version(), "rows": rows}))
    elif cmd == "cdf":
        start = int(argv[3])
        kwargs = {"starting_version": start}
        if len(argv) > 4:
            kwargs["ending_version"] = int(argv[4])
        # load_cdf returns an arro3 reader; pyarrow takes it through the Arrow C stream interface.
        table = pa.RecordBatchReader.from_stream(dt.load_cdf(**kwargs)).read_all()
        rows = rows_of(table)
        rows.sort(key=lambda r: (r["_commit_version"], json.dumps(r, sort_keys=True)))
        print(json.dumps({"rows": rows}))
    elif cmd == "txn":
        app = argv[3]
        txn = dt.transaction_version(app)
        print(json.dumps({"version": dt.version(), "txn": txn, "protocol": [dt.protocol().min_reader_version, dt.protocol().min_writer_version]}))
    else:
        raise SystemExit(f"unknown command {cmd}")


if __name__ == "__main__":
    main(sys.argv)
    # Skip interpreter teardown: the deltalake extension's background threads
    # can abort it ("terminate called without an active exception") after
    # the answer was already printed.
    sys.stdout.flush()
    os._exit(0)
