//! One analysis task's work: a chunk of files, each read once, and everything the report
//! needs from those bytes — language and line counts, markers, size, whether it is binary,
//! and the project a manifest declares.
//!
//! Files are detected and counted as tokei does: a file whose language is known from its
//! name, extension or shebang is counted whatever its contents, binary or not (tokei never
//! skips one). Every other file is read too, for its markers and to tell binary from text,
//! except that one above [`MAX_OTHER_TEXT_BYTES`] is only sniffed: a generated data file of
//! hundreds of megabytes holds no notes worth its reading time.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::Read;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::count::{Counts, count_with_embedded};
use super::languages::{BINARY_SNIFF_LEN, Language, looks_binary};
use super::manifests::{self, ManifestKind};
use super::markers::{Found, MarkerFinder};
use crate::lanes::{TaskContext, TaskError};
use crate::tools::Workspace;

/// Files without a known language larger than this are sniffed, not read whole.
pub const MAX_OTHER_TEXT_BYTES: u64 = 8 * 1024 * 1024;
/// Most read errors one chunk reports.
const MAX_ERRORS: usize = 20;

/// What a chunk needs to know besides its files.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Limits {
    /// Marker locations to keep (the chunk keeps its first this many).
    pub marker_locations: usize,
    /// Largest files to keep.
    pub largest_files: usize,
}

/// One language's figures in a chunk, its embedded blocks by child language.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub(crate) struct LanguagePart {
    pub files: u64,
    #[serde(with = "counts_serde")]
    pub counts: Counts,
    #[serde(with = "embedded_serde")]
    pub embedded: BTreeMap<Language, Counts>,
}

/// A marker with the file it is in.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct MarkerAt {
    pub path: String,
    pub found: Found,
}

/// A file's size, for the largest-files list.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Sized {
    pub path: String,
    pub bytes: u64,
    pub language: Option<String>,
}

/// A manifest found, with what it declares.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct ManifestAt {
    pub path: String,
    pub kind: ManifestKind,
    pub name: Option<String>,
    pub workspace: bool,
}

/// Everything one chunk found; merged in chunk order, so "first" means first by path.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub(crate) struct ChunkResult {
    #[serde(with = "languages_serde")]
    pub languages: BTreeMap<Language, LanguagePart>,
    pub files: u64,
    pub bytes: u64,
    pub binary: u64,
    pub other_text: u64,
    pub unread_large: u64,
    pub marker_counts: [u64; 4],
    pub marker_files: u64,
    pub markers: Vec<MarkerAt>,
    pub largest: Vec<Sized>,
    pub manifests: Vec<ManifestAt>,
    pub errors: Vec<String>,
    pub error_count: u64,
}

/// Analyzes `paths` (relative to `root`, a directory of `workspace`, and opened beneath
/// its handle), checking for cancellation between files.
pub(crate) fn chunk(
    workspace: &Workspace,
    root: &Path,
    paths: &[PathBuf],
    finder: &MarkerFinder,
    limits: Limits,
    ctx: &TaskContext,
) -> Result<ChunkResult, TaskError> {
    let mut out = ChunkResult::default();
    let mut buffer = Vec::new();
    for relative in paths {
        ctx.checkpoint()?;
        let path = root.join(relative);
        let opened = workspace.open_seen_regular(&path);
        let analyzed =
            opened.and_then(|f| file(f, relative, &mut buffer, finder, limits, &mut out));
        if let Err(e) = analyzed {
            out.error_count += 1;
            if out.errors.len() < MAX_ERRORS {
                out.errors
                    .push(format!("cannot read {}: {e}", relative.display()));
            }
        }
    }
    Ok(out)
}

fn file(
    mut file: File,
    relative: &Path,
    buffer: &mut Vec<u8>,
    finder: &MarkerFinder,
    limits: Limits,
    out: &mut ChunkResult,
) -> std::io::Result<()> {
    let by_name = Language::detect(relative, None);
    let size = file.metadata()?.len();
    buffer.clear();
    // A file of a known language is read whole, as tokei reads it. Any other file is
    // sniffed first: its shebang may name a language, or a NUL may say it is binary.
    let whole = by_name.is_some() || size <= MAX_OTHER_TEXT_BYTES;
    if by_name.is_some() {
        buffer.reserve(usize::try_from(size).unwrap_or(0).saturating_add(1));
        file.read_to_end(buffer)?;
    } else {
        (&mut file)
            .take(BINARY_SNIFF_LEN as u64)
            .read_to_end(buffer)?;
    }
    let language = by_name.or_else(|| {
        if relative.extension().is_none() {
            Language::detect(relative, Some(buffer))
        } else {
            None
        }
    });
    let binary = looks_binary(buffer);
    if by_name.is_none() && (language.is_some() || (!binary && whole)) {
        file.read_to_end(buffer)?;
    }
    let bytes = &buffer[..];
    let display = relative.to_string_lossy();

    out.files += 1;
    out.bytes += size;
    if binary {
        out.binary += 1;
    } else if language.is_none() {
        if whole {
            out.other_text += 1;
        } else {
            out.unread_large += 1;
        }
    }
    if let Some(language) = language {
        let part = out.languages.entry(language).or_default();
        part.files += 1;
        let embedded = &mut part.embedded;
        part.counts += count_with_embedded(language, bytes, &mut |child, counts| {
            *embedded.entry(child).or_default() += counts;
        });
    }
    let read_whole = language.is_some() || whole;
    if !binary && read_whole {
        let keep = limits.marker_locations;
        let mut found = Vec::new();
        let room = keep.saturating_sub(out.markers.len());
        if finder.scan(bytes, language, &mut out.marker_counts, &mut found, room) > 0 {
            out.marker_files += 1;
        }
        out.markers.extend(found.into_iter().map(|found| MarkerAt {
            path: display.to_string(),
            found,
        }));
        let name = relative
            .file_name()
            .map(|n| n.to_string_lossy())
            .unwrap_or_default();
        if let Some(kind) = ManifestKind::of_file_name(&name) {
            let declared = manifests::read(kind, &name, bytes);
            out.manifests.push(ManifestAt {
                path: display.to_string(),
                kind,
                name: declared.name,
                workspace: declared.workspace,
            });
        }
    }
    if ranks(&out.largest, size, limits.largest_files) {
        keep_largest(
            &mut out.largest,
            Sized {
                path: display.to_string(),
                bytes: size,
                language: language.map(|l| l.name().to_string()),
            },
            limits.largest_files,
        );
    }
    Ok(())
}

/// Whether a file of `bytes`, coming after every file in `largest` by path, makes the top
/// `n`.
fn ranks(largest: &[Sized], bytes: u64, n: usize) -> bool {
    n > 0 && (largest.len() < n || largest.last().is_some_and(|last| last.bytes < bytes))
}

/// Inserts `file` into `largest` (biggest first, then by path) if it ranks in the top `n`.
pub(crate) fn keep_largest(largest: &mut Vec<Sized>, file: Sized, n: usize) {
    if n == 0 {
        return;
    }
    let at = largest
        .partition_point(|f| f.bytes > file.bytes || (f.bytes == file.bytes && f.path < file.path));
    largest.insert(at, file);
    largest.truncate(n);
}

/// Serde for [`Counts`], which the counter module keeps free of serde.
mod counts_serde {
    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    use super::Counts;

    pub fn serialize<S: Serializer>(c: &Counts, s: S) -> Result<S::Ok, S::Error> {
        [c.code, c.comments, c.blanks].serialize(s)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Counts, D::Error> {
        let [code, comments, blanks] = <[u64; 3]>::deserialize(d)?;
        Ok(Counts {
            code,
            comments,
            blanks,
        })
    }
}

/// A [`Language`] by its tokei name.
fn language_named<E: serde::de::Error>(name: &str) -> Result<Language, E> {
    Language::ALL
        .iter()
        .copied()
        .find(|l| l.name() == name)
        .ok_or_else(|| E::custom(format!("unknown language `{name}`")))
}

mod embedded_serde {
    use std::collections::BTreeMap;

    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    use super::{Counts, Language, language_named};

    pub fn serialize<S: Serializer>(
        map: &BTreeMap<Language, Counts>,
        s: S,
    ) -> Result<S::Ok, S::Error> {
        let named: Vec<(&str, [u64; 3])> = map
            .iter()
            .map(|(l, c)| (l.name(), [c.code, c.comments, c.blanks]))
            .collect();
        named.serialize(s)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(
        d: D,
    ) -> Result<BTreeMap<Language, Counts>, D::Error> {
        let named = Vec::<(String, [u64; 3])>::deserialize(d)?;
        named
            .into_iter()
            .map(|(name, [code, comments, blanks])| {
                Ok((
                    language_named(&name)?,
                    Counts {
                        code,
                        comments,
                        blanks,
                    },
                ))
            })
            .collect()
    }
}

mod languages_serde {
    use std::collections::BTreeMap;

    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    use super::{Language, LanguagePart, language_named};

    pub fn serialize<S: Serializer>(
        map: &BTreeMap<Language, LanguagePart>,
        s: S,
    ) -> Result<S::Ok, S::Error> {
        let named: Vec<(&str, &LanguagePart)> = map.iter().map(|(l, p)| (l.name(), p)).collect();
        named.serialize(s)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(
        d: D,
    ) -> Result<BTreeMap<Language, LanguagePart>, D::Error> {
        let named = Vec::<(String, LanguagePart)>::deserialize(d)?;
        named
            .into_iter()
            .map(|(name, part)| Ok((language_named(&name)?, part)))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn sized(path: &str, bytes: u64) -> Sized {
        Sized {
            path: path.into(),
            bytes,
            language: None,
        }
    }

    #[test]
    fn keeps_the_largest_biggest_first_ties_by_path() {
        let mut largest = Vec::new();
        for (path, bytes) in [("a", 5), ("b", 9), ("c", 1), ("d", 9), ("e", 7), ("f", 5)] {
            keep_largest(&mut largest, sized(path, bytes), 4);
        }
        let got: Vec<(&str, u64)> = largest.iter().map(|f| (f.path.as_str(), f.bytes)).collect();
        assert_eq!(got, vec![("b", 9), ("d", 9), ("e", 7), ("a", 5)]);
        keep_largest(&mut largest, sized("z", 0), 0);
        assert_eq!(largest.len(), 4);
    }

    #[test]
    fn a_chunk_result_round_trips_through_json() {
        let mut result = ChunkResult::default();
        for &language in Language::ALL {
            let part = result.languages.entry(language).or_default();
            part.files = 1;
            part.counts.code = 3;
            part.embedded.insert(language, Counts::default());
        }
        let json = serde_json::to_string(&result).unwrap();
        let back: ChunkResult = serde_json::from_str(&json).unwrap();
        assert_eq!(back.languages.len(), Language::ALL.len());
        assert!(
            back.languages
                .iter()
                .all(|(l, p)| p.counts.code == 3 && p.embedded.contains_key(l))
        );
    }
}
