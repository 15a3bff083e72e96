//! `switchyard trust [PATH] [--list] [--revoke]`: which folders' `.switchyard.toml` may set
//! what an untrusted one may not.

use std::path::PathBuf;
use std::process::ExitCode;

use switchyard::config::WORKSPACE_FILE;
use switchyard::trust;

use super::fail;

/// `switchyard trust`'s arguments.
#[derive(Debug, clap::Args)]
pub struct TrustArgs {
    /// The folder (default: the current directory).
    path: Option<PathBuf>,
    /// List the trusted folders instead.
    #[arg(long, conflicts_with_all = ["path", "revoke"])]
    list: bool,
    /// Stop trusting the folder.
    #[arg(long)]
    revoke: bool,
}

pub fn run(args: TrustArgs) -> ExitCode {
    if args.list {
        let listed = trust::list_file()
            .ok_or(trust::TrustError::NoConfigDir)
            .and_then(|file| trust::TrustList::load(&file));
        return match listed {
            Ok(listed) => {
                for entry in listed.folders {
                    let file = entry.path.join(WORKSPACE_FILE);
                    let state = match std::fs::read(&file) {
                        Ok(text)
                            if trust::status_of(&entry.path, &text) == trust::Status::Trusted =>
                        {
                            ""
                        }
                        Ok(_) => " (changed since trusted: not in force)",
                        Err(_) => " (no .switchyard.toml now)",
                    };
                    println!("{}{state}", entry.path.display());
                }
                ExitCode::SUCCESS
            }
            Err(e) => fail(1, &e.to_string()),
        };
    }
    let path = args.path.unwrap_or_else(|| PathBuf::from("."));
    if args.revoke {
        return match trust::revoke_folder(&path) {
            Ok(true) => {
                println!("no longer trusted: {}", path.display());
                ExitCode::SUCCESS
            }
            Ok(false) => {
                println!("was not trusted: {}", path.display());
                ExitCode::SUCCESS
            }
            Err(e) => fail(1, &e.to_string()),
        };
    }
    match trust::trust_folder(&path) {
        Ok(root) => {
            println!(
                "trusted {} as its {WORKSPACE_FILE} reads now",
                root.display()
            );
            ExitCode::SUCCESS
        }
        Err(e) => fail(1, &e.to_string()),
    }
}
