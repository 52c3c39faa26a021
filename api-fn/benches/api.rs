//! API benchmark (not a timed test): requests/s and p50/p99 latency for create, list (100
//! machines) and get, at 1 and 16 concurrent clients, on the embedded store and on DynamoDB +
//! KMS (moto), each printed beside the same server's `/health` baseline (no auth, no store) so
//! the figures read as "what the store path adds", whatever the machine. Also: binary size and
//! start-to-first-response time.
//!
//! Run (services up for the moto half: `localstack/services.sh start && eval "$(localstack/services.sh env)"`):
//!     cargo bench -p api-fn --bench api
//! Set `BENCH_BACKENDS=embedded` to skip moto. Figures are recorded in docs/benchmarks.md.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::rt::TokioIo;
use serde_json::json;
use testkit::{Client, Process};

struct Stats {
    rps: f64,
    p50: Duration,
    p99: Duration,
}

/// One request of a scenario: a path to GET, or a path and JSON body to POST.
enum Call {
    Get(String),
    Post(&'static str, Bytes),
}

/// Send `total` requests from `concurrency` workers; `make` builds request number `i`.
///
/// Each worker owns one keep-alive HTTP/1.1 connection (hyper's connection API, no pool, no
/// URL parsing per request), as `wrk` or `ab -k` do: the load generator shares the two cores
/// with the server, so the lighter it is, the more the figures describe the server.
async fn load<F>(client: &Client, total: usize, concurrency: usize, make: F) -> Stats
where
    F: Fn(usize) -> Call + Send + Sync + 'static,
{
    let make = Arc::new(make);
    let next = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let authority = client.base_url.trim_start_matches("http://").to_owned();
    let authorization = format!("Bearer {}", client.token.clone().unwrap_or_default());
    let started = Instant::now();
    let mut workers = Vec::new();
    for _ in 0..concurrency {
        let (make, next) = (make.clone(), next.clone());
        let (authority, authorization) = (authority.clone(), authorization.clone());
        workers.push(tokio::spawn(async move {
            let stream = tokio::net::TcpStream::connect(&authority).await.unwrap();
            stream.set_nodelay(true).unwrap();
            let (mut sender, connection) =
                hyper::client::conn::http1::handshake(TokioIo::new(stream))
                    .await
                    .unwrap();
            let connection = tokio::spawn(connection);
            let mut latencies = Vec::new();
            loop {
                let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                if i >= total {
                    break;
                }
                let (method, path, body) = match make(i) {
                    Call::Get(path) => (http::Method::GET, path, Bytes::new()),
                    Call::Post(path, body) => (http::Method::POST, path.to_owned(), body),
                };
                let request = http::Request::builder()
                    .method(method)
                    .uri(path)
                    .header(http::header::HOST, &authority)
                    .header(http::header::AUTHORIZATION, &authorization)
                    .header(http::header::CONTENT_TYPE, "application/json")
                    .body(Full::new(body))
                    .unwrap();
                let t = Instant::now();
                let response = sender.send_request(request).await.unwrap();
                let status = response.status();
                response.into_body().collect().await.unwrap();
                latencies.push(t.elapsed());
                assert!(status.is_success(), "status {status}");
            }
            drop(sender);
            let _ = connection.await;
            latencies
        }));
    }
    let mut latencies = Vec::new();
    for worker in workers {
        latencies.extend(worker.await.unwrap());
    }
    let elapsed = started.elapsed();
    latencies.sort();
    let pct = |p: f64| latencies[((latencies.len() as f64 * p) as usize).min(latencies.len() - 1)];
    Stats {
        rps: total as f64 / elapsed.as_secs_f64(),
        p50: pct(0.50),
        p99: pct(0.99),
    }
}

fn ms(d: Duration) -> String {
    format!("{:.2}", d.as_secs_f64() * 1000.0)
}

fn row(backend: &str, op: &str, c: usize, s: &Stats, base: &Stats) {
    println!(
        "| {backend} | {op} | {c} | {:.0} | {} | {} | {:.2} |",
        s.rps,
        ms(s.p50),
        ms(s.p99),
        s.rps / base.rps
    );
}

/// The sealing work of one create, in-process: one data key from the provider (KMS
/// GenerateDataKey on the moto run) plus HPKE + AES-GCM. Compared with the create row, it shows
/// how much of a create is the key service and the crypto rather than the HTTP server.
async fn seal_cost(keys: &dyn domain::keys::KeyProvider, total: usize) -> Stats {
    let vault = domain::vault::VaultRecord::create(
        "bench@example.com",
        &secrecy::SecretString::from("benchmark master password".to_owned()),
    )
    .unwrap();
    let secrets = domain::secret::MachineSecrets {
        password: Some(secrecy::SecretString::from("pw".to_owned())),
        ..Default::default()
    };
    let mut latencies = Vec::new();
    let started = Instant::now();
    for id in 0..total {
        let t = Instant::now();
        domain::vault::seal(keys, &vault, id as u64, &secrets)
            .await
            .unwrap();
        latencies.push(t.elapsed());
    }
    let elapsed = started.elapsed();
    latencies.sort();
    let pct = |p: f64| latencies[((latencies.len() as f64 * p) as usize).min(latencies.len() - 1)];
    Stats {
        rps: total as f64 / elapsed.as_secs_f64(),
        p50: pct(0.5),
        p99: pct(0.99),
    }
}

async fn bench_backend(name: &str, env: HashMap<String, String>) -> String {
    let process = Process::start(env!("CARGO_BIN_EXE_api-fn"), &env);
    let client = Client::new(&process.base_url, None).as_user("bench@example.com");
    assert_eq!(
        client
            .set_master_password("benchmark master password")
            .await
            .status,
        200
    );
    let body = json!({"name": "bench", "hostname": "10.0.0.1", "port": "22", "username": "root", "password": "pw"});
    // Warm up connections and caches.
    load(&client, 50, 4, |_| Call::Get("/health".into())).await;

    let mut create_p50_one_client = Duration::ZERO;
    for concurrency in [1, 16] {
        let total_reads = if concurrency == 1 { 1000 } else { 4000 };
        let base = load(&client, total_reads, concurrency, |_| {
            Call::Get("/health".into())
        })
        .await;
        row(name, "health (baseline)", concurrency, &base, &base);
        let creates = if name == "embedded" { 400 } else { 200 };
        // A user per phase, so the per-user quota (500) is never what is measured.
        let creator = client.as_user(&format!("creator-{concurrency}@example.com"));
        creator
            .set_master_password("benchmark master password")
            .await;
        let body = Bytes::from(body.to_string());
        let create = load(&creator, creates, concurrency, move |_| {
            Call::Post("/api/v1/machine", body.clone())
        })
        .await;
        row(name, "create", concurrency, &create, &base);
        if concurrency == 1 {
            create_p50_one_client = create.p50;
        }
    }
    let keys: Box<dyn domain::keys::KeyProvider> = match env.get("KMS_KEY_ID") {
        Some(key_id) => {
            let sdk = backends::aws::load_sdk_config().await;
            Box::new(backends::keys::KmsKeys::new(&sdk, key_id.clone()))
        }
        None => Box::new(
            backends::keys::LocalKeyFile::open_or_create(std::path::Path::new(&env["DATA_DIR"]))
                .unwrap(),
        ),
    };
    let seal = seal_cost(keys.as_ref(), if name == "embedded" { 400 } else { 100 }).await;
    let note = format!(
        "{name}: create p50 {} ms with 1 client, of which sealing alone (data key + HPKE + AES-GCM, in-process) p50 {} ms = {:.0}%",
        ms(create_p50_one_client),
        ms(seal.p50),
        100.0 * seal.p50.as_secs_f64() / create_p50_one_client.as_secs_f64()
    );
    // A fresh user with exactly 100 machines for list/get.
    let lister = client.as_user("lister@example.com");
    lister
        .set_master_password("benchmark master password")
        .await;
    let mut ids = Vec::new();
    for n in 0..100 {
        let mut b = body.clone();
        b["name"] = json!(format!("m{n}"));
        ids.push(
            lister.post_json("/api/v1/machine", &b).await.data()["id"]
                .as_u64()
                .unwrap(),
        );
    }
    let ids = Arc::new(ids);
    for concurrency in [1, 16] {
        // Enough requests for a steady p99 on the embedded store; moto serves ~20 lists/s,
        // so its phases stay short (and under the API's backend timeouts).
        let total = match (name == "embedded", concurrency) {
            (true, 1) => 2000,
            (true, _) => 10000,
            (false, 1) => 100,
            (false, _) => 400,
        };
        let base = load(&lister, total, concurrency, |_| Call::Get("/health".into())).await;
        let list = load(&lister, total / 2, concurrency, |_| {
            Call::Get("/api/v1/machines".into())
        })
        .await;
        row(name, "list (100 machines)", concurrency, &list, &base);
        let ids = ids.clone();
        let get = load(&lister, total, concurrency, move |i| {
            Call::Get(format!("/api/v1/machine/{}", ids[i % ids.len()]))
        })
        .await;
        row(name, "get", concurrency, &get, &base);
    }
    note
}

/// Spawn-to-first-successful-response, the local equivalent of a Lambda init.
fn startup_time(env: &HashMap<String, String>) -> Duration {
    let mut samples = Vec::new();
    for _ in 0..5 {
        let started = Instant::now();
        let process = Process::start(env!("CARGO_BIN_EXE_api-fn"), env);
        let url = format!("{}/health", process.base_url);
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let client = edge::tls::http_client().build().unwrap();
        rt.block_on(async {
            client
                .get(&url)
                .send()
                .await
                .unwrap()
                .bytes()
                .await
                .unwrap()
        });
        samples.push(started.elapsed());
    }
    samples.sort();
    samples[samples.len() / 2]
}

fn main() {
    let backends = std::env::var("BENCH_BACKENDS").unwrap_or_else(|_| "embedded,dynamodb".into());
    let data_dir = tempfile::tempdir().unwrap();
    let mut embedded = HashMap::new();
    embedded.insert("JWT_SECRET".to_owned(), testkit::JWT_SECRET.to_owned());
    embedded.insert("DATA_DIR".to_owned(), data_dir.path().display().to_string());
    embedded.insert("RUST_LOG".to_owned(), "warn".to_owned());

    let binary = std::fs::metadata(env!("CARGO_BIN_EXE_api-fn"))
        .unwrap()
        .len();
    println!(
        "api-fn binary: {:.1} MiB ({} bytes)",
        binary as f64 / 1048576.0,
        binary
    );
    println!(
        "start to first response (median of 5, embedded): {} ms",
        ms(startup_time(&embedded))
    );
    println!();
    println!("| backend | operation | clients | req/s | p50 ms | p99 ms | req/s vs health |");
    println!("|---|---|---|---|---|---|---|");
    // One thread drives all the clients (as `ab` and `wrk -t1` do): the load generator takes
    // at most one of the machine's cores and never competes with itself for the other.
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let mut notes = Vec::new();
    if backends.contains("embedded") {
        notes.push(rt.block_on(bench_backend("embedded", embedded.clone())));
    }
    if backends.contains("dynamodb") {
        let aws = testkit::provision_aws();
        let mut env = embedded.clone();
        env.insert("DYNAMODB_TABLE".into(), aws.table);
        env.insert("KMS_KEY_ID".into(), aws.kms_key_id);
        env.insert("AWS_ENDPOINT_URL".into(), aws.endpoint);
        for (k, v) in testkit::aws_test_credentials() {
            env.insert(k.into(), v.into());
        }
        notes.push(rt.block_on(bench_backend("dynamodb+kms (moto)", env)));
    }
    println!();
    for note in notes {
        println!("{note}");
    }
}
