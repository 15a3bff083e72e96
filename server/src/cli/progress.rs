//! The progress bar `analyze` shows on a terminal, fed by the lanes' events.

use switchyard::lanes::{EventKind, Lanes, SessionId};

/// A progress bar on stderr fed by the session's lane events: its length grows as tasks
/// are queued, its position as they finish. Abort the task to clear the bar.
pub fn show(lanes: &Lanes, session: SessionId) -> tokio::task::JoinHandle<()> {
    let mut events = lanes.subscribe();
    tokio::spawn(async move {
        // Hidden until the first task is queued: a 0/0 bar would read as done.
        let bar = indicatif::ProgressBar::with_draw_target(
            Some(0),
            indicatif::ProgressDrawTarget::hidden(),
        );
        let style = indicatif::ProgressStyle::with_template(
            "{spinner} {msg} [{bar:30}] {pos}/{len} tasks {elapsed}",
        )
        .map(|style| style.progress_chars("=> "))
        .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar());
        bar.set_style(style);
        bar.set_message("walking");
        bar.enable_steady_tick(std::time::Duration::from_millis(120));
        // Clears the bar however the task ends, aborted included.
        struct Clear(indicatif::ProgressBar);
        impl Drop for Clear {
            fn drop(&mut self) {
                self.0.finish_and_clear();
            }
        }
        let bar = Clear(bar);
        loop {
            let event = match events.recv().await {
                Ok(event) => event,
                Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => continue,
                Err(tokio::sync::broadcast::error::RecvError::Closed) => return,
            };
            if event.session.as_deref() != Some(&*session) {
                continue;
            }
            match event.kind {
                EventKind::Queued => {
                    if bar.0.is_hidden() {
                        bar.0
                            .set_draw_target(indicatif::ProgressDrawTarget::stderr());
                    }
                    bar.0.inc_length(1);
                    if &*event.name != "analyze.walk" {
                        bar.0.set_message("reading files");
                    }
                }
                EventKind::Finished { .. } => bar.0.inc(1),
                _ => {}
            }
        }
    })
}
