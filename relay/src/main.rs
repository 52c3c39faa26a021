//! relay entry point: read configuration, bind, serve, and drain on SIGTERM.
//!
//! Prints `listening on http://ADDR` on stdout once bound (tests and scripts read it; `PORT=0`
//! picks a free port). Without `RELAY_ADVERTISE_URL` the relay advertises the address it bound,
//! which is right for one host and for tests; behind a load balancer set it to the address
//! other relays can reach directly.

use std::net::SocketAddr;
use std::process::ExitCode;

use relay::{Relay, RelayConfig};
use shared::config::Config;

fn main() -> ExitCode {
    shared::telemetry::init();
    relay::install_tls_provider();
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(runtime) => runtime,
        Err(err) => {
            eprintln!("relay: {err}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(serve()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("relay: {err:#}");
            ExitCode::FAILURE
        }
    }
}

async fn serve() -> anyhow::Result<()> {
    let shared_config = Config::from_env()?;
    let config = RelayConfig::from_env()?;
    let (services, routes) = relay::backends(&shared_config, &config).await?;
    let bind = std::env::var("BIND_ADDR").unwrap_or_else(|_| "127.0.0.1".to_owned());
    let addr: SocketAddr = format!("{bind}:{}", shared_config.port)
        .parse()
        .map_err(|_| anyhow::anyhow!("BIND_ADDR={bind} is not an IP address"))?;
    let listener = tokio::net::TcpListener::bind(addr).await?;
    let local = listener.local_addr()?;
    let advertise = config
        .advertise_url
        .clone()
        .unwrap_or_else(|| format!("http://{local}"));
    let relay = Relay::new(&services, routes, config, advertise.clone());
    tracing::info!(%local, %advertise, "relay listening");
    println!("listening on http://{local}");
    let app = relay::router(relay.clone());
    let drained = {
        let relay = relay.clone();
        async move {
            terminated().await;
            relay::drain(&relay).await;
        }
    };
    axum::serve(listener, app)
        .with_graceful_shutdown(drained)
        .await?;
    tracing::info!("relay stopped");
    Ok(())
}

async fn terminated() {
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
}
