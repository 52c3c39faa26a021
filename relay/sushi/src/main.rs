//! `sushi`: the whole product in one local process on the embedded defaults: api-fn's routes
//! (as a library router), browser sign-in, the relay's connect and terminal WebSocket and the
//! web app, on one port (`PORT`, default 8080), with the embedded store, the local key file
//! and the in-process ticket table unless configured otherwise.
//!
//! Production keeps the split: the `relay` binary does not contain the API and `api-fn` never
//! opens SSH; only this developer binary links both. It serves through the same edge as they
//! do (layers, deadlines, `TCP_NODELAY`, drain on SIGTERM and SIGINT). Loopback and private
//! SSH targets are allowed here by default (a laptop's own machines), unlike the relay's
//! default, and so is the development sign-in (refused with cloud backends, and on a
//! listener that is not loopback). On loopback (the default `BIND_ADDR`) it answers only
//! loopback names and `PUBLIC_URL`'s host, so a page that rebinds its name to 127.0.0.1
//! reaches nothing. Metrics (the API's and the relay's) are served like the relay's: on
//! `METRICS_ADDR` when set, never on the main port, so no page the browser loads there, and no
//! request carrying the session cookie, ever reaches them.

use std::process::ExitCode;
use std::sync::Arc;

use api_fn::AppState;
use domain::config::Config;
use relay::{Relay, RelayConfig};

fn main() -> ExitCode {
    let _telemetry = edge::telemetry::init("sushi");
    relay::install_tls_provider();
    edge::serve::run("sushi", serve())
}

async fn serve() -> anyhow::Result<()> {
    let shared_config = backends::secrets::resolve(Config::from_env()?).await?;
    let config = RelayConfig::local_from_env()?;
    let listener = edge::serve::bind(shared_config.port).await?;
    let relay = Relay::start(&shared_config, config, listener.local_addr()?).await?;
    edge::metrics::serve_from_env().await?;
    let loopback = listener.local_addr()?.ip().is_loopback();
    let sign_in = Arc::new(signin::SignIn::from_env(&shared_config, true, loopback)?);
    let api = AppState {
        machines: Arc::clone(&relay.machines),
        authenticator: Arc::clone(&relay.authenticator),
    };
    let app = edge::layers::wrap(
        api_fn::routes_with_sign_in(api, sign_in)
            .merge(relay::routes(relay.clone()))
            .merge(relay::web::routes()),
    );
    tracing::info!("sushi: API, sign-in, relay and web app on one port");
    edge::serve::serve(listener, app, relay::shutdown(relay)).await?;
    Ok(())
}
