//! The accept loop both listeners share (the proxy's and the admin's): TCP_NODELAY on every
//! accepted socket, HTTP/1.1 and cleartext HTTP/2 on one port, and a graceful drain.
//!
//! Invariant: once `shutdown` resolves no new connection is accepted; connections in flight
//! (and their streams) get up to `grace` to finish.

use std::future::Future;
use std::time::Duration;

use http::{Request, Response};
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::TcpListener;

use crate::providers::BoxError;

/// Serve `service` on `listener` until `shutdown` resolves, then drain for up to `grace`.
/// `name` labels the log lines.
pub async fn serve<S, B>(
    name: &'static str,
    listener: TcpListener,
    service: S,
    shutdown: impl Future<Output = ()>,
    grace: Duration,
) -> std::io::Result<()>
where
    S: hyper::service::Service<Request<Incoming>, Response = Response<B>> + Clone + Send + 'static,
    S::Future: Send + 'static,
    S::Error: Into<BoxError>,
    B: http_body::Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<BoxError>,
{
    let builder = auto::Builder::new(TokioExecutor::new());
    let graceful = GracefulShutdown::new();
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let (stream, _peer) = match accepted {
                    Ok(conn) => conn,
                    Err(err) => {
                        // Out of file descriptors and similar: keep serving the others.
                        tracing::warn!(listener = name, error = %err, "accept failed");
                        tokio::time::sleep(Duration::from_millis(20)).await;
                        continue;
                    }
                };
                if let Err(err) = stream.set_nodelay(true) {
                    tracing::debug!(listener = name, error = %err, "cannot set TCP_NODELAY");
                }
                let conn = builder
                    .serve_connection_with_upgrades(TokioIo::new(stream), service.clone())
                    .into_owned();
                let conn = graceful.watch(conn);
                tokio::spawn(async move {
                    if let Err(err) = conn.await {
                        tracing::debug!(listener = name, error = %err, "connection ended with an error");
                    }
                });
            }
            () = &mut shutdown => break,
        }
    }
    drop(listener);
    tokio::select! {
        () = graceful.shutdown() => tracing::info!(listener = name, "all connections drained"),
        () = tokio::time::sleep(grace) => {
            tracing::warn!(listener = name, ?grace, "shutdown grace elapsed with connections still open");
        }
    }
    Ok(())
}
