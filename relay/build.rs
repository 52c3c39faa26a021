//! Builds the web app (`web/`: TypeScript + xterm.js from npm, bundled by esbuild) into
//! `OUT_DIR/web` and writes the table `src/web.rs` embeds, so the relay and the `sushi`
//! binary carry their pages and work from any directory with no files beside them.
//!
//! Why a build script, and why it never fails the build: the README's one command
//! (`cargo run --bin sushi`) must produce a working web app on a fresh clone, so `npm ci`
//! runs here when `web/node_modules` is missing, then `node build.mjs`. Without node/npm or
//! without network, the build falls back to a prebuilt `web/dist` if one exists, and otherwise
//! still succeeds with no assets: the server then answers `/` with a page saying how to build
//! them, while the API keeps working. `SUSHI_SKIP_WEB_BUILD=1` skips npm entirely (offline
//! builds with a prebuilt `web/dist`).

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;

fn main() {
    for path in [
        "web/src",
        "web/build.mjs",
        "web/package.json",
        "web/package-lock.json",
    ] {
        println!("cargo:rerun-if-changed={path}");
    }
    println!("cargo:rerun-if-env-changed=SUSHI_SKIP_WEB_BUILD");
    let Some(out_dir) = std::env::var_os("OUT_DIR").map(PathBuf::from) else {
        println!("cargo:warning=OUT_DIR is not set; cannot embed the web app");
        return;
    };
    let manifest = std::env::var_os("CARGO_MANIFEST_DIR").map_or_else(PathBuf::new, PathBuf::from);
    let web = manifest.join("web");
    let built = out_dir.join("web");
    let skip = std::env::var_os("SUSHI_SKIP_WEB_BUILD").is_some_and(|v| v != "0" && !v.is_empty());
    let source = if !skip && build_web(&web, &built) {
        Some(built)
    } else if web.join("dist/index.html").is_file() {
        println!("cargo:warning=using the prebuilt web app in relay/web/dist");
        Some(web.join("dist"))
    } else {
        println!(
            "cargo:warning=web app not built (needs node and npm: cd relay/web && npm ci && npm run build); \
             the server will say so at /"
        );
        None
    };
    let mut files = Vec::new();
    if let Some(root) = &source {
        collect(root, root, &mut files);
    }
    files.sort();
    let mut table = String::from("pub static ASSETS: &[(&str, &[u8])] = &[\n");
    for (route, path) in &files {
        let _ = writeln!(table, "    ({route:?}, include_bytes!({path:?})),");
    }
    table.push_str("];\n");
    if let Err(err) = std::fs::write(out_dir.join("web_assets.rs"), table) {
        println!("cargo:warning=could not write the web asset table: {err}");
    }
}

/// `npm ci` when `node_modules` is missing or older than the lock file, then the esbuild bundle into `out`. True if `out` is complete.
fn build_web(web: &Path, out: &Path) -> bool {
    if stale(
        &web.join("node_modules/.package-lock.json"),
        &web.join("package-lock.json"),
    ) {
        let ci = Command::new("npm")
            .args(["ci", "--no-audit", "--no-fund", "--loglevel=error"])
            .current_dir(web)
            .status();
        if !ci.is_ok_and(|s| s.success()) {
            println!("cargo:warning=`npm ci` failed in relay/web (offline or npm missing?)");
            return false;
        }
    }
    let bundle = Command::new("node")
        .arg("build.mjs")
        .env("SUSHI_WEB_OUT", out)
        .current_dir(web)
        .status();
    if !bundle.is_ok_and(|s| s.success()) {
        println!("cargo:warning=`node build.mjs` failed in relay/web");
        return false;
    }
    out.join("index.html").is_file()
}

/// Is `installed` (npm's record of what it installed) missing or older than `lock`?
fn stale(installed: &Path, lock: &Path) -> bool {
    let modified = |p: &Path| std::fs::metadata(p).and_then(|m| m.modified()).ok();
    match (modified(installed), modified(lock)) {
        (Some(installed), Some(lock)) => installed < lock,
        _ => true,
    }
}

/// Every file under `dir` as (`/route`, absolute path).
fn collect(root: &Path, dir: &Path, files: &mut Vec<(String, String)>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            collect(root, &path, files);
        } else if let Ok(relative) = path.strip_prefix(root) {
            let route = format!("/{}", relative.to_string_lossy().replace('\\', "/"));
            files.push((route, path.to_string_lossy().into_owned()));
        }
    }
}
