//! relay entry point: configuration and wiring; serving, shutdown and the socket options come
//! from the edge, the drain from `relay::drain`. With `METRICS_ADDR` set, Prometheus metrics
//! are served there, never on the public listener (`edge::metrics`).
//!
//! Without `RELAY_ADVERTISE_URL` the relay advertises the address it bound, which is right for
//! one host and for tests; behind a load balancer set it to the address other relays can reach
//! directly.

use std::process::ExitCode;

use domain::config::Config;
use relay::{Relay, RelayConfig};

fn main() -> ExitCode {
    let _telemetry = edge::telemetry::init("relay");
    relay::install_tls_provider();
    edge::serve::run("relay", serve())
}

async fn serve() -> anyhow::Result<()> {
    let shared_config = backends::secrets::resolve(Config::from_env()?).await?;
    let config = RelayConfig::from_env()?;
    let listener = edge::serve::bind(shared_config.port).await?;
    let relay = Relay::start(&shared_config, config, listener.local_addr()?).await?;
    edge::metrics::serve_from_env().await?;
    let app = relay::router(relay.clone());
    edge::serve::serve(listener, app, relay::shutdown(relay)).await?;
    Ok(())
}
