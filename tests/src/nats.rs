//! A real NATS server with JetStream for the external-lane suites: started on a free loopback
//! port with its storage in a temporary folder, stopped by PID when dropped.

use std::net::{Ipv4Addr, TcpListener, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A running `nats-server -js`.
pub struct NatsServer {
    child: Child,
    port: u16,
    _store: tempfile::TempDir,
}

impl NatsServer {
    /// Starts one and waits (up to 10 s) until it accepts connections.
    pub fn start() -> NatsServer {
        let store = tempfile::tempdir().expect("a temporary folder for JetStream");
        let port = free_port();
        let child = Command::new("nats-server")
            .args(["-js", "-sd"])
            .arg(store.path())
            .args(["-a", "127.0.0.1", "-p", &port.to_string()])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("nats-server runs (tests/provision installs it)");
        let mut server = NatsServer {
            child,
            port,
            _store: store,
        };
        server.wait_ready(Duration::from_secs(10));
        server
    }

    /// `nats://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }

    /// Where JetStream keeps its files.
    pub fn store(&self) -> &Path {
        self._store.path()
    }

    fn wait_ready(&mut self, within: Duration) {
        let deadline = Instant::now() + within;
        loop {
            if TcpStream::connect((Ipv4Addr::LOCALHOST, self.port)).is_ok() {
                return;
            }
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!("nats-server exited before accepting connections: {status}");
            }
            assert!(
                Instant::now() < deadline,
                "nats-server did not accept connections on port {} within {within:?}",
                self.port
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for NatsServer {
    fn drop(&mut self) {
        // By PID: the child handle names exactly this process.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).expect("bind a loopback port");
    listener.local_addr().expect("its address").port()
}
