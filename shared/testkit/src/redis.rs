//! A private redis-server for tests that stop and restart Redis under a running relay (the
//! shared one from `localstack/services.sh` must stay up for every other test). Killed by pid
//! on drop.

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use crate::ssh::{free_port, wait_port};

pub struct PrivateRedis {
    child: Child,
    pub port: u16,
}

impl PrivateRedis {
    /// Start on `port` (0: a free one), in-memory only.
    pub fn start(port: u16) -> Self {
        let port = if port == 0 { free_port() } else { port };
        let child = Command::new("redis-server")
            .args(["--bind", "127.0.0.1", "--port", &port.to_string()])
            .args(["--save", "", "--appendonly", "no"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start redis-server");
        wait_port(port, Duration::from_secs(10));
        Self { child, port }
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// Stop it (SIGKILL, like a crash) and wait for it to be gone.
    pub fn stop(mut self) -> u16 {
        let _ = self.child.kill();
        let _ = self.child.wait();
        self.port
    }
}

impl Drop for PrivateRedis {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
