//! Free loopback ports: asked from the kernel, never hard-coded.

use std::net::TcpListener;

/// A port on 127.0.0.1 that was free a moment ago. Callers retry with a new
/// one if a service then fails to bind it.
pub fn free_loopback_port() -> std::io::Result<u16> {
    let listener = TcpListener::bind(("127.0.0.1", 0))?;
    Ok(listener.local_addr()?.port())
}
