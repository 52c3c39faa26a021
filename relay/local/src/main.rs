//! `sushi`: the whole product in one local process on the embedded defaults (DESIGN.md
//! section 1): api-fn's routes (as a library router) plus the relay's connect and terminal
//! WebSocket, on one port (`PORT`, default 8080), with the embedded store, the local key file
//! and the in-process route table unless configured otherwise.
//!
//! Production keeps the split: the `relay` binary does not contain the API and `api-fn` never
//! opens SSH; only this developer binary links both. Loopback and private SSH targets are
//! allowed here by default (a laptop's own machines), unlike the relay's default.

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
            eprintln!("sushi: {err}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(serve()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("sushi: {err:#}");
            ExitCode::FAILURE
        }
    }
}

async fn serve() -> anyhow::Result<()> {
    let shared_config = Config::from_env()?;
    let config = RelayConfig::local_from_env()?;
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
    let relay = Relay::new(&services, routes, config, advertise);
    // Browser sign-in (issue 5): development sign-in is on by default here, and only here;
    // `SignIn::from_env` refuses it with cloud backends.
    let auth = api_fn::AuthState {
        sign_in: std::sync::Arc::new(shared::oidc::SignIn::from_env(&shared_config, true)?),
        authenticator: services.authenticator.clone(),
    };
    let app = relay::http::wrap(
        api_fn::api_routes(services.into())
            .merge(relay::routes(relay.clone()))
            .merge(api_fn::auth_routes(auth))
            .merge(relay::web::routes()),
    );
    tracing::info!(%local, "sushi (API + relay) listening");
    println!("listening on http://{local}");
    let drained = {
        let relay = relay.clone();
        async move {
            let _ = tokio::signal::ctrl_c().await;
            relay::drain(&relay).await;
        }
    };
    axum::serve(listener, app)
        .with_graceful_shutdown(drained)
        .await?;
    Ok(())
}
