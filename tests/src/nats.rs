//! A real NATS server with JetStream for the external-lane suites: started on a free loopback
//! port with its storage in a temporary folder, stopped by PID when dropped.

use std::net::{Ipv4Addr, TcpListener, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// A running `nats-server -js`.
pub struct NatsServer {
    child: Mutex<Child>,
    port: u16,
    _store: tempfile::TempDir,
}

impl NatsServer {
    /// Starts one and waits (up to 10 s) until it accepts connections.
    pub fn start() -> NatsServer {
        let store = tempfile::tempdir().expect("a temporary folder for JetStream");
        let port = free_port();
        let child = spawn(store.path(), port);
        let server = NatsServer {
            child: Mutex::new(child),
            port,
            _store: store,
        };
        server.wait_ready(Duration::from_secs(10));
        server
    }

    /// Kills it with SIGKILL (by PID) and starts it again on the same port over the same
    /// storage, as a crashed broker that comes back; returns once it accepts connections.
    pub fn restart(&self) {
        {
            let mut child = self.child.lock().unwrap();
            child.kill().expect("kill nats-server");
            child.wait().expect("reap nats-server");
            *child = spawn(self.store(), self.port);
        }
        self.wait_ready(Duration::from_secs(10));
    }

    /// `nats://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }

    /// Where JetStream keeps its files.
    pub fn store(&self) -> &Path {
        self._store.path()
    }

    fn wait_ready(&self, within: Duration) {
        let deadline = Instant::now() + within;
        loop {
            if TcpStream::connect((Ipv4Addr::LOCALHOST, self.port)).is_ok() {
                return;
            }
            if let Ok(Some(status)) = self.child.lock().unwrap().try_wait() {
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
        let child = self.child.get_mut().unwrap();
        let _ = child.kill();
        let _ = child.wait();
    }
}

fn spawn(store: &Path, port: u16) -> Child {
    Command::new("nats-server")
        .args(["-js", "-sd"])
        .arg(store)
        .args(["-a", "127.0.0.1", "-p", &port.to_string()])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("nats-server runs (tests/provision installs it)")
}

fn free_port() -> u16 {
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).expect("bind a loopback port");
    listener.local_addr().expect("its address").port()
}
