//! Logging in LSP mode. Stdout carries the protocol, so nothing is ever printed there: every
//! event goes to stderr (filtered by `SWITCHYARD_LOG`, default `info`), and events of
//! Switchyard's own code at or above the configured `log.level` also go to the editor as
//! `window/logMessage`.
//!
//! The forwarding layer only queues lines on a channel; the server drains it into the client
//! once the client is initialized. The client's own tracing (tower-lsp-server's) is never
//! forwarded, so sending a log message cannot log again.

use std::fmt::Write as _;
use std::sync::Arc;
use std::sync::atomic::{AtomicU8, Ordering};

use parking_lot::Mutex;
use tokio::sync::mpsc;
use tracing::field::{Field, Visit};
use tracing::{Event, Level, Subscriber};
use tracing_subscriber::Layer;
use tracing_subscriber::filter::{EnvFilter, dynamic_filter_fn};
use tracing_subscriber::layer::{Context, SubscriberExt};
use tracing_subscriber::util::SubscriberInitExt;

use crate::config::LogLevel;

/// One line for the editor.
pub(crate) type LogLine = (Level, String);

/// The switch between tracing and the editor: holds the level in force and, once the server
/// attached it, the channel lines go to. Cheap to clone.
#[derive(Clone, Default)]
pub struct LogForwarder {
    inner: Arc<Inner>,
}

#[derive(Default)]
struct Inner {
    /// A [`LogLevel`] as its discriminant.
    level: AtomicU8,
    tx: Mutex<Option<mpsc::UnboundedSender<LogLine>>>,
}

impl LogForwarder {
    /// A forwarder that sends nothing until [`attach`](LogForwarder::attach)ed.
    pub fn new() -> LogForwarder {
        let forwarder = LogForwarder::default();
        forwarder.set_level(LogLevel::default());
        forwarder
    }

    /// Installs the process's tracing subscriber: stderr, and this forwarder. Does nothing
    /// when a subscriber is already installed (in tests).
    pub fn install(&self) {
        let stderr = tracing_subscriber::fmt::layer()
            .with_writer(std::io::stderr)
            .with_ansi(false)
            .with_filter(
                EnvFilter::try_from_env("SWITCHYARD_LOG")
                    .unwrap_or_else(|_| EnvFilter::new("info")),
            );
        let _ = tracing_subscriber::registry()
            .with(stderr)
            .with(self.layer())
            .try_init();
    }

    /// The layer that forwards Switchyard's events at the level in force.
    pub fn layer<S>(&self) -> impl Layer<S> + use<S>
    where
        S: Subscriber + for<'span> tracing_subscriber::registry::LookupSpan<'span>,
    {
        let inner = Arc::clone(&self.inner);
        let filter = dynamic_filter_fn(move |meta, _| {
            meta.target().starts_with("switchyard")
                && rank(*meta.level()) <= inner.level.load(Ordering::Relaxed)
        });
        Forward {
            inner: Arc::clone(&self.inner),
        }
        .with_filter(filter)
    }

    /// Puts `level` in force.
    pub(crate) fn set_level(&self, level: LogLevel) {
        self.inner.level.store(level as u8, Ordering::Relaxed);
    }

    /// Starts queueing lines for the editor; they arrive on the returned channel.
    pub(crate) fn attach(&self) -> mpsc::UnboundedReceiver<LogLine> {
        let (tx, rx) = mpsc::unbounded_channel();
        *self.inner.tx.lock() = Some(tx);
        rx
    }
}

/// A tracing level as the [`LogLevel`] discriminant that lets it through.
fn rank(level: Level) -> u8 {
    let as_config = match level {
        Level::ERROR => LogLevel::Error,
        Level::WARN => LogLevel::Warn,
        Level::INFO => LogLevel::Info,
        Level::DEBUG => LogLevel::Debug,
        Level::TRACE => LogLevel::Trace,
    };
    as_config as u8
}

struct Forward {
    inner: Arc<Inner>,
}

impl<S: Subscriber> Layer<S> for Forward {
    fn on_event(&self, event: &Event<'_>, _: Context<'_, S>) {
        let tx = self.inner.tx.lock();
        let Some(tx) = tx.as_ref() else {
            return;
        };
        let mut line = Line::default();
        event.record(&mut line);
        let _ = tx.send((*event.metadata().level(), line.finish()));
    }
}

/// An event's message followed by its other fields as `key=value`.
#[derive(Default)]
struct Line {
    message: String,
    fields: String,
}

impl Line {
    fn finish(mut self) -> String {
        if !self.fields.is_empty() {
            if !self.message.is_empty() {
                self.message.push(' ');
            }
            self.message.push_str(&self.fields);
        }
        self.message
    }
}

impl Visit for Line {
    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() == "message" {
            self.message.push_str(value);
        } else {
            self.record_debug(field, &value);
        }
    }

    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        if field.name() == "message" {
            let _ = write!(self.message, "{value:?}");
        } else {
            if !self.fields.is_empty() {
                self.fields.push(' ');
            }
            let _ = write!(self.fields, "{}={value:?}", field.name());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forwards_switchyard_events_at_the_level_in_force() {
        let forwarder = LogForwarder::new();
        let mut rx = forwarder.attach();
        let subscriber = tracing_subscriber::registry().with(forwarder.layer());
        tracing::subscriber::with_default(subscriber, || {
            tracing::info!(target: "switchyard::lsp", lane = "query", "started {}", 3);
            tracing::debug!(target: "switchyard::lsp", "hidden at info");
            tracing::error!(target: "tower_lsp_server", "not ours");
            forwarder.set_level(LogLevel::Debug);
            tracing::debug!(target: "switchyard::lsp", "shown at debug");
            forwarder.set_level(LogLevel::Off);
            tracing::error!(target: "switchyard::lsp", "nothing when off");
        });
        let mut lines = Vec::new();
        while let Ok(line) = rx.try_recv() {
            lines.push(line);
        }
        assert_eq!(
            lines,
            [
                (Level::INFO, "started 3 lane=\"query\"".to_string()),
                (Level::DEBUG, "shown at debug".to_string()),
            ]
        );
    }
}
