//! How the process runs: addresses, limits and timeouts, from CLI flags and `SWITCHYARD_*`
//! environment variables (clap reads both; the flag wins). The policy file says what to route;
//! this says how to serve.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

/// Serving limits, shared by the tower stack and the handlers.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Largest request body accepted (413 beyond).
    pub max_body_bytes: usize,
    /// Largest non-streamed upstream response read.
    pub max_response_bytes: usize,
    /// Time allowed until response headers (the whole response when not streamed).
    pub request_timeout: Duration,
    /// Requests served at once; more wait for a slot.
    pub max_concurrency: usize,
    /// After SIGTERM/Ctrl-C, how long in-flight requests and streams may take to finish.
    pub shutdown_grace: Duration,
    /// Upstream TCP connect timeout.
    pub connect_timeout: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_body_bytes: 4 << 20,
            max_response_bytes: 32 << 20,
            request_timeout: Duration::from_secs(300),
            max_concurrency: 4096,
            shutdown_grace: Duration::from_secs(30),
            connect_timeout: Duration::from_secs(5),
        }
    }
}

/// `serve` settings.
#[derive(Debug, Clone)]
pub struct Config {
    pub policy: PathBuf,
    pub listen: SocketAddr,
    pub admin_listen: SocketAddr,
    pub data_dir: PathBuf,
    pub limits: Limits,
}
