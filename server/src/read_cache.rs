//! The read cache: file contents keyed by canonical path, validated on every read by one
//! `stat` — (mtime, ctime, size, inode, device) — and bounded by total bytes, not entries.
//!
//! Git's racily-clean problem applies: a file rewritten with the same size within one tick
//! of the filesystem clock keeps its mtime, so an entry whose file changed too close to the
//! moment it was read is re-verified by content before it is served. ctime is in the key as
//! well, so even an mtime set back by hand (`touch -d`) does not hide a change.
//!
//! Beside it, a small LRU of sparse line indexes for files too large to cache, so a second
//! ranged read of the same unchanged file seeks straight to its window.

use std::fs::{File, Metadata};
use std::io::{self, Read};
use std::num::NonZeroUsize;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use lru::LruCache;
use parking_lot::Mutex;

use crate::lanes::{Counter, Lanes};

/// How close to its last change a file may have been read before its entry is re-verified
/// by content: coarse enough for filesystems with one- or two-second timestamps.
const RACY_WINDOW: Duration = Duration::from_secs(2);

/// What identifies one version of a file, from one `stat`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FileKey {
    mtime_ns: i128,
    ctime_ns: i128,
    size: u64,
    ino: u64,
    dev: u64,
}

impl FileKey {
    /// The key of the file `meta` describes.
    pub fn of(meta: &Metadata) -> FileKey {
        let ns = |s: i64, n: i64| i128::from(s) * 1_000_000_000 + i128::from(n);
        FileKey {
            mtime_ns: ns(meta.mtime(), meta.mtime_nsec()),
            ctime_ns: ns(meta.ctime(), meta.ctime_nsec()),
            size: meta.size(),
            ino: meta.ino(),
            dev: meta.dev(),
        }
    }

    /// The later of the two change times, in nanoseconds since the epoch.
    fn changed_ns(&self) -> i128 {
        self.mtime_ns.max(self.ctime_ns)
    }
}

/// A file's bytes with the offset where each line starts.
#[derive(Debug, PartialEq, Eq)]
pub struct FileText {
    bytes: Vec<u8>,
    line_starts: Vec<usize>,
}

impl FileText {
    /// Indexes the lines of `bytes` (split on `\n`; a final line without one counts).
    pub fn new(bytes: Vec<u8>) -> FileText {
        let mut line_starts = Vec::with_capacity(bytes.len() / 32 + 1);
        if !bytes.is_empty() {
            line_starts.push(0);
            line_starts.extend(
                memchr::memchr_iter(b'\n', &bytes)
                    .map(|i| i + 1)
                    .filter(|&s| s < bytes.len()),
            );
        }
        FileText { bytes, line_starts }
    }

    /// The whole content.
    pub fn bytes(&self) -> &[u8] {
        &self.bytes
    }

    /// How many lines there are.
    pub fn line_count(&self) -> usize {
        self.line_starts.len()
    }

    /// Line `index` (0-based) without its `\n`.
    pub fn line(&self, index: usize) -> &[u8] {
        let start = self.line_starts[index];
        let end = match self.line_starts.get(index + 1) {
            Some(&next) => next - 1,
            None if self.bytes.last() == Some(&b'\n') => self.bytes.len() - 1,
            None => self.bytes.len(),
        };
        &self.bytes[start..end.max(start)]
    }

    fn weight(&self) -> u64 {
        (self.bytes.len() + self.line_starts.len() * std::mem::size_of::<usize>() + 64) as u64
    }
}

struct Entry {
    key: FileKey,
    /// When the content was last read from (or checked against) the disk.
    read_at: SystemTime,
    text: Arc<FileText>,
}

impl Entry {
    /// Whether the file changed so close to `read_at` that a same-size rewrite in the same
    /// clock tick could have kept its key.
    fn racy(&self) -> bool {
        let read_ns = self
            .read_at
            .duration_since(SystemTime::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as i128);
        read_ns - self.key.changed_ns() < RACY_WINDOW.as_nanos() as i128
    }
}

struct State {
    lru: LruCache<PathBuf, Entry>,
    bytes: u64,
    max_bytes: u64,
}

/// File contents by canonical path, bounded by total bytes.
pub struct ReadCache {
    state: Mutex<State>,
    hits: Counter,
    misses: Counter,
    evictions: Counter,
    rechecks: Counter,
}

impl ReadCache {
    /// A cache of at most `max_bytes`, counting into `lanes`' metrics as `read_cache.*`.
    pub fn new(max_bytes: u64, lanes: &Lanes) -> ReadCache {
        ReadCache {
            state: Mutex::new(State {
                lru: LruCache::unbounded(),
                bytes: 0,
                max_bytes,
            }),
            hits: lanes.counter("read_cache.hits"),
            misses: lanes.counter("read_cache.misses"),
            evictions: lanes.counter("read_cache.evictions"),
            rechecks: lanes.counter("read_cache.racy_rechecks"),
        }
    }

    /// Changes the bound, evicting at once if needed.
    pub fn set_max_bytes(&self, max_bytes: u64) {
        let mut st = self.state.lock();
        if st.max_bytes == max_bytes {
            return;
        }
        st.max_bytes = max_bytes;
        self.evict(&mut st);
    }

    /// Bytes held now.
    pub fn bytes(&self) -> u64 {
        self.state.lock().bytes
    }

    /// The content of the regular file at canonical `path`, open as `file` (opened beneath
    /// the workspace's handle), whose `stat` is `meta`: from the cache when it still
    /// matches, else read from `file` (and cached).
    pub fn get(&self, path: &Path, meta: &Metadata, file: File) -> io::Result<Arc<FileText>> {
        let key = FileKey::of(meta);
        let suspect = {
            let mut st = self.state.lock();
            match st.lru.get(path) {
                Some(entry) if entry.key == key && !entry.racy() => {
                    self.hits.incr();
                    return Ok(Arc::clone(&entry.text));
                }
                Some(entry) if entry.key == key => Some(Arc::clone(&entry.text)),
                _ => None,
            }
        };
        let (bytes, read_key, read_at) = read_whole(file)?;
        if let Some(cached) = suspect {
            self.rechecks.incr();
            if cached.bytes == bytes && read_key == key {
                let mut st = self.state.lock();
                if let Some(entry) = st.lru.get_mut(path) {
                    entry.read_at = read_at;
                }
                self.hits.incr();
                return Ok(cached);
            }
        }
        self.misses.incr();
        let text = Arc::new(FileText::new(bytes));
        let mut st = self.state.lock();
        if let Some(old) = st.lru.pop(path) {
            st.bytes -= old.text.weight();
        }
        // Keep it only if the file did not change while it was read.
        if read_key == key && text.weight() <= st.max_bytes {
            st.bytes += text.weight();
            st.lru.put(
                path.to_path_buf(),
                Entry {
                    key,
                    read_at,
                    text: Arc::clone(&text),
                },
            );
            self.evict(&mut st);
        }
        Ok(text)
    }

    fn evict(&self, st: &mut State) {
        while st.bytes > st.max_bytes {
            let Some((_, entry)) = st.lru.pop_lru() else {
                break;
            };
            st.bytes -= entry.text.weight();
            self.evictions.incr();
        }
    }
}

/// Reads a whole open file, with the key of what was read (from the file, not a path).
fn read_whole(mut file: File) -> io::Result<(Vec<u8>, FileKey, SystemTime)> {
    let read_at = SystemTime::now();
    let before = file.metadata()?;
    let mut bytes = Vec::with_capacity(usize::try_from(before.len()).unwrap_or(0) + 1);
    file.read_to_end(&mut bytes)?;
    let after = FileKey::of(&file.metadata()?);
    let key = if after == FileKey::of(&before) {
        after
    } else {
        FileKey {
            size: u64::MAX,
            ..after
        }
    };
    Ok((bytes, key, read_at))
}

/// Where lines start in a file too large to cache: the byte offset of every `every`-th
/// line, extended as far as any read has scanned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LineIndex {
    /// The version of the file the offsets belong to.
    pub key: FileKey,
    /// `offsets[k]` is where line `k * every + 1` starts.
    pub every: u64,
    /// Known offsets, from line 1 on.
    pub offsets: Vec<u64>,
    /// The total number of lines, once a scan reached the end.
    pub total_lines: Option<u64>,
}

impl LineIndex {
    /// An index knowing only that line 1 starts at 0.
    pub fn new(key: FileKey, every: u64) -> LineIndex {
        LineIndex {
            key,
            every: every.max(1),
            offsets: vec![0],
            total_lines: None,
        }
    }

    /// The indexed line at or before 1-based `line`, and its offset.
    pub fn seek_point(&self, line: u64) -> (u64, u64) {
        let k = ((line.max(1) - 1) / self.every).min(self.offsets.len() as u64 - 1);
        (k * self.every + 1, self.offsets[k as usize])
    }

    /// Records that 1-based `line` starts at `offset` if it is the next indexed line.
    pub fn note(&mut self, line: u64, offset: u64) {
        if (line - 1).is_multiple_of(self.every)
            && (line - 1) / self.every == self.offsets.len() as u64
        {
            self.offsets.push(offset);
        }
    }
}

/// Recently used line indexes, validated like the read cache.
pub struct LineIndexCache {
    lru: Mutex<LruCache<PathBuf, LineIndex>>,
}

impl LineIndexCache {
    /// Keeps the indexes of the `capacity` most recently read large files.
    pub fn new(capacity: usize) -> LineIndexCache {
        let capacity = NonZeroUsize::new(capacity).unwrap_or(NonZeroUsize::MIN);
        LineIndexCache {
            lru: Mutex::new(LruCache::new(capacity)),
        }
    }

    /// The index of `path` if it was built for this version of the file.
    pub fn get(&self, path: &Path, key: FileKey) -> Option<LineIndex> {
        let mut lru = self.lru.lock();
        match lru.get(path) {
            Some(index) if index.key == key => Some(index.clone()),
            Some(_) => {
                lru.pop(path);
                None
            }
            None => None,
        }
    }

    /// Keeps an index.
    pub fn put(&self, path: &Path, index: LineIndex) {
        self.lru.lock().put(path.to_path_buf(), index);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cache(max: u64) -> (tokio::runtime::Runtime, Lanes, ReadCache) {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let lanes = Lanes::with_runtime(Default::default(), rt.handle().clone()).unwrap();
        let cache = ReadCache::new(max, &lanes);
        (rt, lanes, cache)
    }

    fn get(cache: &ReadCache, path: &Path) -> Vec<u8> {
        cache
            .get(
                path,
                &std::fs::metadata(path).unwrap(),
                File::open(path).unwrap(),
            )
            .unwrap()
            .bytes()
            .to_vec()
    }

    #[test]
    fn a_same_size_rewrite_within_one_tick_is_never_served_stale() {
        let (_rt, lanes, cache) = cache(1 << 20);
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("racy.txt");
        std::fs::write(&path, "aaaa").unwrap();
        let mtime = std::fs::metadata(&path).unwrap().modified().unwrap();
        assert_eq!(get(&cache, &path), b"aaaa");
        assert_eq!(get(&cache, &path), b"aaaa");
        // Same size, same second, and the mtime put back exactly as it was.
        std::fs::write(&path, "bbbb").unwrap();
        std::fs::File::options()
            .write(true)
            .open(&path)
            .unwrap()
            .set_modified(mtime)
            .unwrap();
        assert_eq!(std::fs::metadata(&path).unwrap().modified().unwrap(), mtime);
        assert_eq!(get(&cache, &path), b"bbbb");
        let m = lanes.metrics();
        assert_eq!(m.counters["read_cache.misses"], 2);
    }

    #[test]
    fn a_racy_entry_is_rechecked_by_content_then_trusted() {
        let (_rt, lanes, cache) = cache(1 << 20);
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("fresh.txt");
        std::fs::write(&path, "same").unwrap();
        get(&cache, &path);
        get(&cache, &path); // written a moment ago: verified by content
        let counters = || lanes.metrics().counters;
        assert_eq!(
            (
                counters()["read_cache.racy_rechecks"],
                counters()["read_cache.hits"]
            ),
            (1, 1)
        );
        // Read again well after its last change, the entry is trusted on its key alone.
        for entry in cache.state.lock().lru.iter_mut() {
            entry.1.read_at += RACY_WINDOW * 2;
        }
        get(&cache, &path);
        assert_eq!(
            (
                counters()["read_cache.racy_rechecks"],
                counters()["read_cache.hits"]
            ),
            (1, 2)
        );
    }

    #[test]
    fn the_cache_is_bounded_by_bytes_and_counts_evictions() {
        let (_rt, lanes, cache) = cache(10_000);
        let dir = tempfile::tempdir().unwrap();
        for i in 0..5 {
            std::fs::write(dir.path().join(format!("f{i}")), vec![b'x'; 3_000]).unwrap();
            get(&cache, &dir.path().join(format!("f{i}")));
        }
        assert!(cache.bytes() <= 10_000, "{} bytes held", cache.bytes());
        assert_eq!(lanes.metrics().counters["read_cache.evictions"], 2);
        // A file larger than the whole cache is served but not kept.
        std::fs::write(dir.path().join("big"), vec![b'y'; 20_000]).unwrap();
        assert_eq!(get(&cache, &dir.path().join("big")).len(), 20_000);
        assert!(cache.bytes() <= 10_000);
    }

    #[test]
    fn lines_split_on_newlines_with_a_last_line_without_one() {
        let text = FileText::new(b"a\nbb\r\n\nlast".to_vec());
        let lines: Vec<&[u8]> = (0..text.line_count()).map(|i| text.line(i)).collect();
        assert_eq!(lines, [&b"a"[..], b"bb\r", b"", b"last"]);
        let text = FileText::new(b"one\n\n".to_vec());
        let lines: Vec<&[u8]> = (0..text.line_count()).map(|i| text.line(i)).collect();
        assert_eq!(lines, [&b"one"[..], b""]);
        assert_eq!(FileText::new(b"one\n".to_vec()).line(0), b"one");
        assert_eq!(FileText::new(Vec::new()).line_count(), 0);
    }
}
