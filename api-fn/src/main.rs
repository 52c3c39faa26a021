//! api-fn entry point: configuration and wiring, nothing else.
//!
//! * Started by the Lambda runtime (`AWS_LAMBDA_RUNTIME_API` set): serves events through
//!   `lambda_http`.
//! * Secrets named by `JWT_SECRET_ARN` / `OIDC_CLIENT_SECRET_ARN` are read from Secrets Manager
//!   before anything else (`backends::secrets`).
//! * Otherwise: a plain HTTP server on `BIND_ADDR:PORT` (default 127.0.0.1:8080) through the
//!   edge's `serve`, and Prometheus metrics on `METRICS_ADDR` when set. In Lambda the edge
//!   prints each request's metrics as a CloudWatch EMF line instead (`edge::metrics::emf`).
//! * `api-fn token --email you@example.com`: mint a development token signed with the
//!   configured `JWT_SECRET` (or the embedded default's secret file), for curl.

use std::process::ExitCode;
use std::sync::Arc;

use api_fn::AppState;
use clap::{Parser, Subcommand};
use domain::config::Config;
use edge::auth::Authenticator;
use secrecy::ExposeSecret;

/// mimalloc instead of glibc's malloc: every request allocates a few hundred small strings and
/// one body buffer, and a list of 100 machines spent ~15 % of its server time in glibc
/// malloc/free. Measured with the API benchmark (docs/benchmarks.md): list p99 at 16 clients
/// 4.2-4.8 ms with mimalloc against 4.6-5.6 ms without, get throughput up 5-25 %.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(version, about = "suSHi Machines API (Lambda or local server)")]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Serve HTTP (the default).
    Serve,
    /// Print an HS256 token for IDENTITY, signed with JWT_SECRET or the local secret file.
    Token {
        /// The identity (email claim) to put in the token.
        #[arg(long)]
        email: String,
        /// Lifetime in seconds.
        #[arg(long, default_value_t = 3600)]
        ttl_secs: u64,
    },
}

fn main() -> ExitCode {
    let _telemetry = edge::telemetry::init("api-fn");
    let cli = Cli::parse();
    let config = match Config::from_env() {
        Ok(config) => config,
        Err(err) => {
            eprintln!("api-fn: {err}");
            return ExitCode::from(2);
        }
    };
    match cli.command {
        Some(Command::Token { email, ttl_secs }) => {
            edge::serve::run("api-fn", print_token(config, email, ttl_secs))
        }
        None | Some(Command::Serve) => edge::serve::run("api-fn", serve(config)),
    }
}

/// Mint with the secret `serve` would verify with: `JWT_SECRET_ARN` is read from Secrets
/// Manager first, so an operator of the AWS deployment never copies the value into a shell.
async fn print_token(config: Config, email: String, ttl_secs: u64) -> anyhow::Result<()> {
    let config = backends::secrets::resolve(config).await?;
    let Some(secret) = config.hmac_secret()? else {
        anyhow::bail!("JWT_SECRET (or JWT_SECRET_ARN) is not set");
    };
    let token =
        edge::auth::mint_session(secret.expose_secret().as_bytes(), &email, "token", ttl_secs)?;
    println!("{token}");
    Ok(())
}

async fn serve(config: Config) -> anyhow::Result<()> {
    let config = backends::secrets::resolve(config).await?;
    let listener = match std::env::var_os("AWS_LAMBDA_RUNTIME_API") {
        Some(_) => None,
        None => Some(edge::serve::bind(config.port).await?),
    };
    let loopback = match &listener {
        Some(listener) => listener.local_addr()?.ip().is_loopback(),
        None => false,
    };
    let sign_in = Arc::new(signin::SignIn::from_env(&config, false, loopback)?);
    let machines = backends::wire(&config).await?;
    let state = AppState {
        authenticator: Arc::new(Authenticator::from_config(
            &config,
            Arc::clone(machines.store()),
        )?),
        machines,
    };
    let kdf = Arc::clone(state.machines.kdf());
    let audit = Arc::clone(state.machines.audit());
    let app = api_fn::router(state, sign_in);
    match listener {
        None => lambda_http::run(app)
            .await
            .map_err(|err| anyhow::anyhow!("lambda runtime: {err}")),
        Some(listener) => {
            let kdf = Arc::downgrade(&kdf);
            edge::metrics::gauge_fn(edge::metrics::names::KDF_QUEUED, move || {
                kdf.upgrade()
                    .map_or(0, |k| edge::metrics::as_gauge(k.queued()))
            });
            edge::metrics::watch_audit(&audit);
            edge::metrics::serve_from_env().await?;
            edge::serve::serve(listener, app, edge::serve::terminated()).await?;
            Ok(())
        }
    }
}
