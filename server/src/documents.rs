//! Open editor buffers: the overlay the read and grep tools consult before the disk, so
//! unsaved text wins. Empty in the CLI; the language server fills it from
//! `textDocument/didOpen`/`didChange`/`didClose`.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use parking_lot::RwLock;

/// One open buffer as the editor last described it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Document {
    /// The editor's version number, increased on every change.
    pub version: i32,
    /// The buffer's whole text.
    pub text: Arc<str>,
}

/// The open buffers, keyed by absolute path. Cheap to clone; clones share the store.
#[derive(Debug, Clone, Default)]
pub struct Documents {
    open: Arc<RwLock<HashMap<PathBuf, Arc<Document>>>>,
}

impl Documents {
    /// An empty overlay (what the CLI uses).
    pub fn new() -> Documents {
        Documents::default()
    }

    /// Records a buffer opened (or replaced whole) by the editor.
    pub fn open(&self, path: PathBuf, version: i32, text: impl Into<Arc<str>>) {
        self.open.write().insert(
            path,
            Arc::new(Document {
                version,
                text: text.into(),
            }),
        );
    }

    /// Replaces an open buffer's text and version; returns false if it was not open.
    pub fn replace(&self, path: &Path, version: i32, text: impl Into<Arc<str>>) -> bool {
        match self.open.write().get_mut(path) {
            Some(doc) => {
                *doc = Arc::new(Document {
                    version,
                    text: text.into(),
                });
                true
            }
            None => false,
        }
    }

    /// Forgets a buffer the editor closed: from now on the disk is the truth.
    pub fn close(&self, path: &Path) -> bool {
        self.open.write().remove(path).is_some()
    }

    /// The open buffer at `path`, if any.
    pub fn get(&self, path: &Path) -> Option<Arc<Document>> {
        self.open.read().get(path).cloned()
    }

    /// Every open buffer's path.
    pub fn paths(&self) -> Vec<PathBuf> {
        self.open.read().keys().cloned().collect()
    }

    /// Whether no buffer is open.
    pub fn is_empty(&self) -> bool {
        self.open.read().is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_closed_buffer_falls_back_to_disk() {
        let docs = Documents::new();
        let path = PathBuf::from("/w/src/lib.rs");
        docs.open(path.clone(), 1, "fn unsaved() {}");
        assert_eq!(&*docs.get(&path).unwrap().text, "fn unsaved() {}");
        assert!(docs.replace(&path, 2, "fn edited() {}"));
        assert_eq!(docs.get(&path).unwrap().version, 2);
        assert!(docs.close(&path));
        assert!(docs.get(&path).is_none());
        assert!(!docs.replace(&path, 3, "x"));
    }
}
