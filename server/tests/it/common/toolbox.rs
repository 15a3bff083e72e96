//! A toolbox over one root, on lanes of a runtime of its own with two workers.

use std::path::Path;

use switchyard::documents::Documents;
use switchyard::lanes::{Lanes, LanesConfig};
use switchyard::tools::{Toolbox, ToolsConfig, Workspace};

/// The runtime (keep it alive while the toolbox is used) and the toolbox over `root`.
pub fn on(root: &Path, config: ToolsConfig) -> (tokio::runtime::Runtime, Toolbox) {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let lanes = Lanes::with_runtime(LanesConfig::default(), runtime.handle().clone()).unwrap();
    let workspace = Workspace::new([root.to_path_buf()]).unwrap();
    let toolbox = Toolbox::new(workspace, lanes, Documents::new(), config);
    (runtime, toolbox)
}
