//! Serving a router: one function for every binary, so socket options and shutdown cannot
//! differ between them.
//!
//! * `TCP_NODELAY` on every accepted socket. A terminal sends one small frame per keystroke
//!   echo; with Nagle's algorithm on, an echo that follows an unacknowledged frame waits for
//!   the client's delayed ACK (up to 40 ms on Linux), which is exactly the tail a person feels
//!   while typing. Clients cannot fix this from their side.
//! * Graceful shutdown on SIGTERM *and* SIGINT: the caller passes what to do between the signal
//!   and the end of serving (the relay drains its terminals; the API has nothing to wait for),
//!   and in-flight requests finish.
//! * On a loopback listener, only loopback names and `PUBLIC_URL`'s host are answered
//!   ([`crate::site::host_guard`]): DNS rebinding cannot turn a web page into a client of a
//!   laptop's server. A server on another address sits behind a load balancer whose health
//!   checks use any Host, and is not reachable by rebinding to loopback.
//! * `listening on http://ADDR` on stdout once bound: tests and scripts read it (`PORT=0` picks
//!   a free port).

use std::fmt::Display;
use std::future::Future;
use std::net::SocketAddr;
use std::process::ExitCode;
use std::sync::Arc;

use axum::Router;
use axum::serve::ListenerExt;
use tokio::net::TcpListener;

use crate::site::{self, SitePolicy};

#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error("BIND_ADDR={0} is not an IP address")]
    BadAddress(String),
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("METRICS_ADDR={0} is not an IP:PORT address")]
    BadMetricsAddress(String),
    #[error("server failed: {0}")]
    Io(#[from] std::io::Error),
}

/// Bind `BIND_ADDR` (default `127.0.0.1`) on `port`.
pub async fn bind(port: u16) -> Result<TcpListener, ServeError> {
    let host = std::env::var("BIND_ADDR").unwrap_or_else(|_| "127.0.0.1".to_owned());
    let addr: SocketAddr = format!("{host}:{port}")
        .parse()
        .map_err(|_| ServeError::BadAddress(host))?;
    TcpListener::bind(addr)
        .await
        .map_err(|source| ServeError::Bind { addr, source })
}

/// Serve `router` on `listener` until `shutdown` resolves, then finish in-flight requests.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), ServeError> {
    let local = listener.local_addr()?;
    let router = loopback_guard(router, local);
    tracing::info!(%local, "listening");
    println!("listening on http://{local}");
    let listener = listener.tap_io(|socket| {
        if let Err(err) = socket.set_nodelay(true) {
            tracing::debug!(error = %err, "could not set TCP_NODELAY");
        }
    });
    // The peer address reaches handlers as `ConnectInfo` (the audit log's client address).
    axum::serve(
        listener,
        router.into_make_service_with_connect_info::<SocketAddr>(),
    )
    .with_graceful_shutdown(shutdown)
    .await?;
    tracing::info!("stopped");
    Ok(())
}

/// On a loopback listener, answer only loopback names and `PUBLIC_URL`'s host (see the module
/// doc); elsewhere, `router` as it is. The metrics listener takes the same guard.
pub fn loopback_guard(router: Router, local: SocketAddr) -> Router {
    if !local.ip().is_loopback() {
        return router;
    }
    let policy = Arc::new(SitePolicy::from_env());
    router.layer(axum::middleware::from_fn(move |request, next| {
        site::host_guard(Arc::clone(&policy), request, next)
    }))
}

/// The body of every server binary's `main`: a multi-threaded runtime running `app`, and on
/// failure one line on stderr that names the binary (the configuration errors say which
/// variable is wrong).
pub fn run<E: Display>(name: &str, app: impl Future<Output = Result<(), E>>) -> ExitCode {
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(runtime) => runtime,
        Err(err) => {
            eprintln!("{name}: {err}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(app) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("{name}: {err:#}");
            ExitCode::FAILURE
        }
    }
}

/// Resolves on SIGTERM (what ECS, Kubernetes and systemd send) or SIGINT (Ctrl-C).
pub async fn terminated() {
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {},
        _ = terminate => {},
    }
    tracing::info!("shutdown signal received");
}
