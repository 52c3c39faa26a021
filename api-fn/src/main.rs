//! api-fn entry point: one binary, one router.
//!
//! * Started by the Lambda runtime (`AWS_LAMBDA_RUNTIME_API` set): serves events through
//!   `lambda_http`.
//! * Otherwise: a plain HTTP server on `BIND_ADDR:PORT` (default 127.0.0.1:8080).
//! * `api-fn token --email you@example.com`: mint a development token signed with the
//!   configured `JWT_SECRET` (or the embedded default's secret file), for curl.

use std::net::SocketAddr;

/// mimalloc instead of glibc's malloc: every request allocates a few hundred small strings and
/// one body buffer, and a list of 100 machines spent ~15 % of its server time in glibc
/// malloc/free. Measured with the API benchmark (docs/benchmarks.md): list p99 at 16 clients
/// 4.2-4.8 ms with mimalloc against 4.6-5.6 ms without, get throughput up 5-25 %.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use secrecy::ExposeSecret;
use shared::config::{Backend, Config};

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
    shared::telemetry::init();
    let cli = Cli::parse();
    let config = match Config::from_env() {
        Ok(config) => config,
        Err(err) => {
            eprintln!("api-fn: {err}");
            return ExitCode::from(2);
        }
    };
    let result = match cli.command {
        Some(Command::Token { email, ttl_secs }) => print_token(&config, &email, ttl_secs),
        None | Some(Command::Serve) => serve(config),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("api-fn: {err:#}");
            ExitCode::FAILURE
        }
    }
}

fn print_token(config: &Config, email: &str, ttl_secs: u64) -> anyhow::Result<()> {
    let secret = match (&config.jwt_secret, &config.backend) {
        (Some(secret), _) => secrecy::SecretString::from(secret.expose_secret().to_owned()),
        (None, Backend::Embedded { data_dir }) => shared::bootstrap::local_jwt_secret(data_dir)?,
        (None, Backend::Aws { .. }) => anyhow::bail!("JWT_SECRET is not set"),
    };
    let token = shared::auth::mint_hs256(secret.expose_secret().as_bytes(), email, ttl_secs)?;
    println!("{token}");
    Ok(())
}

#[tokio::main]
async fn serve(config: Config) -> anyhow::Result<()> {
    let sign_in = std::sync::Arc::new(shared::oidc::SignIn::from_env(&config, false)?);
    let services = shared::bootstrap::build(&config).await?;
    let app = api_fn::router_with_sign_in(services, sign_in);
    if std::env::var_os("AWS_LAMBDA_RUNTIME_API").is_some() {
        return lambda_http::run(app)
            .await
            .map_err(|err| anyhow::anyhow!("lambda runtime: {err}"));
    }
    let bind = std::env::var("BIND_ADDR").unwrap_or_else(|_| "127.0.0.1".to_owned());
    let addr: SocketAddr = format!("{bind}:{}", config.port)
        .parse()
        .map_err(|_| anyhow::anyhow!("BIND_ADDR={bind} is not an IP address"))?;
    let listener = tokio::net::TcpListener::bind(addr).await?;
    let local = listener.local_addr()?;
    tracing::info!(%local, "api-fn listening");
    // Tests and scripts read this line to find the port when PORT=0.
    println!("listening on http://{local}");
    axum::serve(listener, app)
        .with_graceful_shutdown(shutdown_signal())
        .await?;
    Ok(())
}

async fn shutdown_signal() {
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
    tracing::info!("shutting down");
}
