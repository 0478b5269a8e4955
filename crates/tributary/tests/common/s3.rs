//! The S3 test server of a test binary, and pipeline configs whose lake is on it.

use std::path::Path;
use std::sync::OnceLock;
use tributary_testkit::{require, S3Server};

/// The S3 server of this test binary, with the process environment
/// (`AWS_ENDPOINT_URL`, keys, region, `AWS_ALLOW_HTTP`) pointing at it, for
/// the test's own reads and the Python reader it starts.
pub fn s3() -> Option<&'static S3Server> {
    static SERVER: OnceLock<Option<S3Server>> = OnceLock::new();
    SERVER
        .get_or_init(|| {
            let server = require("the S3 test server (moto; `make setup`)", S3Server::start())?;
            for (key, value) in server.env() {
                // SAFETY: set once, under the OnceLock, before the tests of this binary read the environment.
                unsafe { std::env::set_var(key, value) };
            }
            Some(server)
        })
        .as_ref()
}

/// Rewrites the `[sink.delta]` of a config written by the common helpers
/// (root `<dir>/lake`) to `root` on `server`, with a `[sink.delta.storage]` section.
pub fn put_lake_on_s3(config: &Path, dir: &Path, server: &S3Server, root: &str) {
    let text = std::fs::read_to_string(config).unwrap();
    let local = format!("[sink.delta]\nroot = \"{}\"\ncheckpoint_interval = 5\n", dir.join("lake").display());
    assert!(text.contains(&local), "{text}");
    let remote = format!(
        "[sink.delta]\nroot = \"{root}\"\ncheckpoint_interval = 5\n\n[sink.delta.storage]\nendpoint = \"{}\"\n\
         region = \"{}\"\naccess_key_id = \"{}\"\nsecret_access_key = \"{}\"\nallow_http = \"true\"\n",
        server.endpoint(),
        server.region(),
        server.access_key_id(),
        server.secret_access_key()
    );
    std::fs::write(config, text.replace(&local, &remote)).unwrap();
}
