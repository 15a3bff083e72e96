//! The dead-letter queue: tasks that failed for good, kept (bounded) so they can be listed,
//! replayed and cleared.

use std::collections::VecDeque;
use std::time::SystemTime;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::task::TaskSpec;
use super::{Lane, TaskId};

/// A dead letter's number, unique within one engine.
pub type DeadLetterId = u64;

/// A task that failed for good, as listed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DeadLetter {
    /// Its number in the queue, for replay.
    pub id: DeadLetterId,
    /// The task it was.
    pub task_id: TaskId,
    /// Its lane.
    pub lane: Lane,
    /// Its name.
    pub name: String,
    /// Its session, if any.
    pub session: Option<String>,
    /// What it was about (a tool's arguments).
    pub payload: Value,
    /// Attempts made.
    pub attempts: u32,
    /// The last attempt's error.
    pub error: String,
    /// When it was submitted, in milliseconds since the Unix epoch.
    pub submitted_at_ms: u64,
    /// When it failed for good, in milliseconds since the Unix epoch.
    pub failed_at_ms: u64,
}

pub(crate) struct DeadLetters {
    entries: VecDeque<(DeadLetter, TaskSpec)>,
    capacity: usize,
    evicted: u64,
    next_id: DeadLetterId,
}

impl DeadLetters {
    pub fn new(capacity: usize) -> DeadLetters {
        DeadLetters {
            entries: VecDeque::new(),
            capacity,
            evicted: 0,
            next_id: 1,
        }
    }

    /// Keeps a failed task, evicting the oldest when full; returns its id.
    pub fn push(&mut self, mut letter: DeadLetter, spec: TaskSpec) -> DeadLetterId {
        let id = self.next_id;
        self.next_id += 1;
        letter.id = id;
        self.entries.push_back((letter, spec));
        self.shrink_to_capacity();
        id
    }

    pub fn set_capacity(&mut self, capacity: usize) {
        self.capacity = capacity;
        self.shrink_to_capacity();
    }

    fn shrink_to_capacity(&mut self) {
        while self.entries.len() > self.capacity {
            self.entries.pop_front();
            self.evicted += 1;
        }
    }

    pub fn list(&self) -> Vec<DeadLetter> {
        self.entries
            .iter()
            .map(|(letter, _)| letter.clone())
            .collect()
    }

    pub fn take(&mut self, id: DeadLetterId) -> Option<(DeadLetter, TaskSpec)> {
        let index = self
            .entries
            .iter()
            .position(|(letter, _)| letter.id == id)?;
        self.entries.remove(index)
    }

    pub fn clear(&mut self) -> usize {
        let n = self.entries.len();
        self.entries.clear();
        n
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn capacity(&self) -> usize {
        self.capacity
    }

    pub fn evicted(&self) -> u64 {
        self.evicted
    }
}

/// Milliseconds since the Unix epoch.
pub(crate) fn epoch_ms(at: SystemTime) -> u64 {
    at.duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}
