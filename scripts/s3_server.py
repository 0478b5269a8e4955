#!/usr/bin/env python3
"""S3 server for Tributary's tests: moto's S3 (in memory, any credentials
accepted, conditional writes with If-None-Match) on a loopback port.

Started by the test kit (crates/tributary-testkit/src/s3.rs):
  s3_server.py [--host 127.0.0.1] [--port 0] [--ignore-conditional-writes]
Port 0 lets the kernel choose; once the socket listens, one line goes to stdout:
  {"ready": true, "host": "127.0.0.1", "port": N, "moto": "5.x.y"}
Every request is S3 (no guessing of the AWS service from the Host header), path
style (`http://127.0.0.1:N/<bucket>/<key>`). Extra endpoint:
  GET /_tributary/requests -> {"GET": n, "PUT": n, ..., "GET_BYTES": n} requests
  served so far by method, and the bytes the GETs sent (object storage bills
  per request and per byte out; the benchmarks and range-read tests use them).
Werkzeug logs one line per request to stderr. Stops on SIGTERM or SIGINT.
--ignore-conditional-writes drops If-None-Match / If-Match from writes, as an
S3-compatible store without conditional writes does (a create then silently
overwrites): what a test of "a bucket without conditional-write support" needs.
--require-credentials KEY_ID:SECRET makes moto check every request after the
first (the test kit's CreateBucket) as S3 does: a signature made with another
key id answers 403 InvalidAccessKeyId, with another secret 403
SignatureDoesNotMatch. The one accepted key belongs to an IAM user allowed
everything (moto's IAM, in this process).

Mutating requests (PUT, POST, DELETE) run one at a time. moto checks
`If-None-Match: *` and then stores the object in two steps
(moto/s3/responses.py, put_object and complete_multipart_upload); in a threaded
server two racing creates of one key could both pass the check. Real S3 makes
the create atomic, and the tests of Tributary's commits rely on exactly that.
"""
import argparse
import json
import signal
import sys
import threading
from collections import Counter

STATS_PATH = "/_tributary/requests"


class S3Only:
    """moto's app with every request sent to the S3 backend, mutations serialized."""

    def __init__(self, ignore_conditional_writes=False):
        from moto.moto_server.werkzeug_app import create_backend_app

        self.app = create_backend_app("s3")
        self.ignore_conditional_writes = ignore_conditional_writes
        self.write_lock = threading.Lock()
        self.count_lock = threading.Lock()
        self.counts = Counter()

    def __call__(self, environ, start_response):
        method = environ.get("REQUEST_METHOD", "GET")
        if environ.get("PATH_INFO") == STATS_PATH:
            with self.count_lock:
                body = json.dumps(dict(self.counts)).encode()
            start_response("200 OK", [("Content-Type", "application/json"), ("Content-Length", str(len(body)))])
            return [body]
        with self.count_lock:
            self.counts[method] += 1
        if method == "GET":
            # Bytes sent for reads, from the response's Content-Length (what range reads save).
            def counted_start_response(status, headers, *rest):
                length = next((v for k, v in headers if k.lower() == "content-length"), "0")
                with self.count_lock:
                    self.counts["GET_BYTES"] += int(length)
                return start_response(status, headers, *rest)

            return self.app(environ, counted_start_response)
        if method in ("PUT", "POST", "DELETE"):
            if self.ignore_conditional_writes:
                environ.pop("HTTP_IF_NONE_MATCH", None)
                environ.pop("HTTP_IF_MATCH", None)
            with self.write_lock:
                # Materialize the body inside the lock: the WSGI iterable may be lazy.
                return list(self.app(environ, start_response))
        return self.app(environ, start_response)


def require_credentials(key_id, secret):
    """Enforces SigV4 authentication with one known key (see the module doc)."""
    from moto import settings
    from moto.core.models import DEFAULT_ACCOUNT_ID
    from moto.iam.models import iam_backends

    iam = iam_backends[DEFAULT_ACCOUNT_ID]["aws"]
    user = iam.create_user("us-east-1", "tributary-test")
    iam.put_user_policy(
        user.name,
        "everything",
        json.dumps({"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}]}),
    )
    key = iam.create_access_key(user.name)
    key.access_key_id, key.secret_access_key = key_id, secret
    # moto counts the actions it let through unauthenticated; from the second on it checks.
    settings.INITIAL_NO_AUTH_ACTION_COUNT = 1


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--ignore-conditional-writes", action="store_true")
    parser.add_argument("--require-credentials", metavar="KEY_ID:SECRET")
    args = parser.parse_args()

    try:
        import moto
        from moto.moto_server.werkzeug_app import MotoRequestHandler, create_backend_app  # noqa: F401
        from werkzeug.serving import make_server
    except ImportError as e:
        sys.exit(
            f"s3_server: moto 5 with Flask is not importable in {sys.executable} ({type(e).__name__}: {e}); "
            "`make setup` installs the versions of scripts/requirements-test.txt into the test venv"
        )

    if args.require_credentials:
        key_id, _, secret = args.require_credentials.partition(":")
        require_credentials(key_id, secret)
    server = make_server(args.host, args.port, S3Only(args.ignore_conditional_writes), threaded=True, request_handler=MotoRequestHandler)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    ready = {"ready": True, "host": args.host, "port": server.server_port, "moto": moto.__version__}
    print(json.dumps(ready), flush=True)
    try:
        server.serve_forever()
    except (KeyboardInterrupt, SystemExit):
        pass


if __name__ == "__main__":
    main()
