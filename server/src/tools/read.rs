//! `read {path, offset?, limit?}`: numbered lines of a text file, like `cat -n`.
//!
//! An open editor buffer wins over the disk. Files up to the streaming threshold come from
//! the read cache; larger ones are streamed — never loaded whole — seeking through a sparse
//! line index so a second ranged read of the same file goes straight to its window. Binary
//! files are refused, invalid UTF-8 is decoded lossily (and said so), a UTF-8 BOM is
//! dropped, CRLF shows as lines, and over-long lines are cut with a marker.
//!
//! With an editor that serves its buffers when asked (an ACP client's `fs/read_text_file`,
//! see [`Documents::set_editor`](crate::documents::Documents::set_editor)), the editor is
//! asked instead, for the same window, and its answer shown as a disk read would be.

use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom};

use std::sync::Arc;

use serde::{Deserialize, Serialize};
use tokio::sync::{mpsc, oneshot};

use super::{Args, Env, Inner, ToolError, thousands};
use crate::documents::BufferRequest;
use crate::lanes::TaskContext;
use crate::read_cache::{FileKey, FileText, LineIndex};

/// How many leading bytes decide whether a file is binary (a NUL among them), as git and
/// ripgrep do.
const BINARY_SNIFF: usize = 8 * 1024;
const STREAM_BUFFER: usize = 256 * 1024;

/// `read`'s arguments.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReadArgs {
    /// The file.
    pub path: String,
    /// First line, 1-based; negative counts from the end.
    pub offset: Option<i64>,
    /// Most lines.
    pub limit: Option<u64>,
}

impl ReadArgs {
    pub(super) fn parse(args: &Args<'_>) -> Result<ReadArgs, ToolError> {
        args.only(&["path", "offset", "limit"])?;
        let offset = args.opt_integer("offset")?;
        if offset == Some(0) {
            return Err(ToolError::new(
                "`offset` is a 1-based line number (or negative to count from the end), got 0",
            ));
        }
        Ok(ReadArgs {
            path: args.string("path")?.to_string(),
            offset,
            limit: args.opt_positive("limit")?,
        })
    }
}

/// A window of a file's lines.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ReadOutput {
    /// The file, relative to the workspace root.
    pub path: String,
    /// The 1-based number of the first line shown.
    pub start_line: u64,
    /// The lines shown, decoded, without line endings.
    pub lines: Vec<String>,
    /// How many lines the file has, when known (a streamed file may not be scanned to its end).
    pub total_lines: Option<u64>,
    /// The file's size in bytes.
    pub size: u64,
    /// How many shown lines were cut at the line-length cap.
    pub cut_lines: u64,
    /// Whether invalid UTF-8 was replaced with U+FFFD.
    pub lossy: bool,
    /// The version of the unsaved editor buffer read instead of the disk, if any.
    pub buffer_version: Option<i32>,
    /// Whether the file was streamed (too large to load whole).
    pub streamed: bool,
    /// Whether the output byte cap ended the window early.
    pub capped: bool,
}

impl ReadOutput {
    /// `cat -n`-style lines, then what was left out and how to get it.
    pub fn render(&self) -> String {
        let mut out = String::new();
        for (i, line) in self.lines.iter().enumerate() {
            out.push_str(&format!("{:>6}\t{line}\n", self.start_line + i as u64));
        }
        let end = self.start_line + self.lines.len() as u64;
        if self.lines.is_empty() && self.total_lines == Some(0) {
            out.push_str(&format!("(`{}` is empty)\n", self.path));
        }
        let more_after = match self.total_lines {
            Some(total) => end <= total,
            None => !self.lines.is_empty(),
        };
        if self.start_line > 1 || more_after || self.capped {
            let of = self.total_lines.map_or_else(
                || "of an unscanned total".into(),
                |t| format!("of {}", thousands(t)),
            );
            let next = if more_after {
                format!("; continue with offset={end}")
            } else {
                String::new()
            };
            let why = if self.capped {
                " (output size cap reached)"
            } else {
                ""
            };
            out.push_str(&format!(
                "(lines {}–{} {of}{why}{next})\n",
                thousands(self.start_line),
                thousands(end.saturating_sub(1).max(self.start_line)),
            ));
        }
        if self.cut_lines > 0 {
            out.push_str(&format!(
                "({} long line(s) cut; each shows its first characters)\n",
                self.cut_lines
            ));
        }
        if self.lossy {
            out.push_str("(invalid UTF-8 replaced with U+FFFD)\n");
        }
        if let Some(version) = self.buffer_version {
            out.push_str(&format!("(unsaved editor buffer, version {version})\n"));
        }
        out
    }
}

pub(super) fn run(args: &ReadArgs, env: &Env<'_>) -> Result<ReadOutput, ToolError> {
    let path = env.workspace.resolve(&args.path)?;
    let shown = env.workspace.display(&path);
    let limit = args.limit.unwrap_or(env.config.read_default_lines as u64);
    if let Some(doc) = env.documents.get(&path) {
        let flat = doc.text();
        env.ledger.saw(env.task.session(), &path, flat.as_bytes());
        let text = FileText::new(flat.as_bytes().to_vec());
        let mut out = window(&text, &shown, args.offset, limit, env)?;
        out.buffer_version = Some(doc.version);
        return Ok(out);
    }
    let (file, meta) = env.workspace.open_regular(&path, &shown)?;
    if meta.len() > env.config.streaming_threshold_bytes {
        return streamed(file, &path, &shown, &meta, args.offset, limit, env);
    }
    let text = env
        .cache
        .get(&path, &meta, file)
        .map_err(|e| ToolError::new(format!("cannot read `{shown}`: {e}")))?;
    refuse_binary(
        &shown,
        &text.bytes()[..text.bytes().len().min(BINARY_SNIFF)],
        meta.len(),
    )?;
    env.ledger.saw(env.task.session(), &path, text.bytes());
    window(&text, &shown, args.offset, limit, env)
}

/// `read` through an editor that serves its buffers. The path is checked against the
/// workspace before the editor is asked. The window asked for is the one shown, and one
/// line more (to know whether more follow; the total stays unknown, as for a streamed
/// file); a negative offset, or an offset past the end, asks for the whole text, to count.
/// A whole text the editor served is kept for the session (grep and edits see it). When
/// the editor says the file does not exist, the disk is read; another error of the editor
/// fails the call with its message.
pub(super) async fn through_editor(
    inner: Arc<Inner>,
    args: ReadArgs,
    editor: mpsc::Sender<BufferRequest>,
    task: TaskContext,
) -> Result<ReadOutput, ToolError> {
    let path = inner.workspace.resolve(&args.path)?;
    let shown = inner.workspace.display(&path);
    let config = inner.tools_config();
    let limit = args.limit.unwrap_or(config.read_default_lines as u64);
    let session = task.session().cloned();
    let ask = |line: Option<u64>, limit: Option<u64>| {
        let clamp = |n: u64| u32::try_from(n).unwrap_or(u32::MAX);
        let (reply, answer) = oneshot::channel();
        let request = BufferRequest {
            session: session.clone(),
            path: path.clone(),
            line: line.map(clamp),
            limit: limit.map(clamp),
            reply,
        };
        let (editor, shown) = (editor.clone(), shown.clone());
        async move {
            editor.send(request).await.map_err(|_| {
                ToolError::new(format!(
                    "cannot read `{shown}`: the editor connection is closed"
                ))
            })?;
            match answer.await {
                Ok(Ok(text)) => Ok(text),
                Ok(Err(message)) => Err(ToolError::new(format!(
                    "the editor could not read `{shown}`: {message}"
                ))),
                Err(_) => Err(ToolError::new(format!(
                    "cannot read `{shown}`: the editor did not answer"
                ))),
            }
        }
    };
    let start = match args.offset {
        Some(n) if n < 0 => None,
        offset => Some(offset.map_or(1, |n| n as u64)),
    };
    let mut whole = match start {
        Some(start) => ask(Some(start), Some(limit.saturating_add(1))).await?,
        None => ask(None, None).await?,
    };
    let Some(text) = whole.take() else {
        // No such file in the editor: the disk decides (a snapshot of it goes too).
        inner.documents.close(&path);
        return tokio::task::spawn_blocking(move || {
            let config = inner.tools_config();
            run(&args, &inner.env(&config, &task))
        })
        .await
        .map_err(|e| ToolError::new(format!("cannot read `{shown}`: {e}")))?;
    };
    let env = inner.env(&config, &task);
    let mut text = FileText::new(text.into_bytes());
    let served = text.line_count() as u64;
    let is_whole = match start {
        None => true,
        Some(start) => start == 1 && served <= limit,
    };
    if let Some(start) = start
        && !is_whole
    {
        if served > 0 {
            // A window: its lines, numbered from `start`.
            let mut builder = WindowBuilder::new(&shown, start, text.bytes().len() as u64, &env);
            let keep = builder.keep_bytes();
            for i in 0..served.min(limit) {
                let line = text.line(i as usize);
                if !builder.push(start + i, &line[..line.len().min(keep)], line.len() as u64) {
                    break;
                }
            }
            builder.out.total_lines = (served <= limit).then(|| start - 1 + served);
            return Ok(builder.out);
        }
        // Past the end: the whole text says how long it is.
        match ask(None, None).await? {
            Some(all) => text = FileText::new(all.into_bytes()),
            None => {
                return Err(ToolError::new(format!(
                    "cannot read `{shown}`: the editor no longer has it"
                )));
            }
        }
    }
    if let Some(session) = &session
        && let Ok(flat) = std::str::from_utf8(text.bytes())
    {
        inner.documents.serve(path.clone(), session, flat);
    }
    env.ledger.saw(session.as_ref(), &path, text.bytes());
    window(&text, &shown, args.offset, limit, &env)
}

fn refuse_binary(shown: &str, head: &[u8], size: u64) -> Result<(), ToolError> {
    match memchr::memchr(0, head) {
        Some(at) => Err(ToolError::new(format!(
            "`{shown}` is a binary file ({} bytes, a NUL byte at offset {at}); `read` shows text only — \
             use `ls` for its size or `grep` to search text files",
            thousands(size)
        ))),
        None => Ok(()),
    }
}

/// Builds the output window lines, cutting long lines and stopping at the byte cap.
struct WindowBuilder<'e> {
    out: ReadOutput,
    rendered: usize,
    env: &'e Env<'e>,
}

impl<'e> WindowBuilder<'e> {
    fn new(shown: &str, start_line: u64, size: u64, env: &'e Env<'e>) -> WindowBuilder<'e> {
        let out = ReadOutput {
            path: shown.to_string(),
            start_line,
            lines: Vec::new(),
            total_lines: None,
            size,
            cut_lines: 0,
            lossy: false,
            buffer_version: None,
            streamed: false,
            capped: false,
        };
        WindowBuilder {
            out,
            rendered: 0,
            env,
        }
    }

    /// The most bytes of one line worth keeping to show `read_max_line_chars` characters.
    fn keep_bytes(&self) -> usize {
        self.env.config.read_max_line_chars.saturating_mul(4)
    }

    /// Adds one line (`bytes` holds at most `keep_bytes` of its `full_len` bytes); returns
    /// false when the output cap is reached and the line was not added.
    fn push(&mut self, line_number: u64, bytes: &[u8], full_len: u64) -> bool {
        let mut bytes = bytes;
        let mut cut = full_len > bytes.len() as u64;
        if line_number == 1 {
            bytes = bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(bytes);
        }
        if !cut {
            bytes = bytes.strip_suffix(b"\r").unwrap_or(bytes);
        }
        let decoded = String::from_utf8_lossy(bytes);
        let max_chars = self.env.config.read_max_line_chars;
        let mut text = match decoded.char_indices().nth(max_chars) {
            Some((at, _)) => {
                cut = true;
                decoded[..at].to_string()
            }
            None => decoded.to_string(),
        };
        if cut {
            let shown = text.len() as u64;
            let more = full_len.saturating_sub(shown);
            text.push_str(&format!(" … [line cut: {} more bytes]", thousands(more)));
        }
        let cap = self.env.config.max_output_bytes;
        if cap != 0 && !self.out.lines.is_empty() && self.rendered + text.len() + 8 > cap {
            self.out.capped = true;
            return false;
        }
        self.rendered += text.len() + 8;
        if matches!(decoded, std::borrow::Cow::Owned(_)) && !bytes.is_empty() {
            self.out.lossy |= std::str::from_utf8(bytes).is_err();
        }
        self.out.cut_lines += u64::from(cut);
        self.out.lines.push(text);
        true
    }
}

fn window(
    text: &FileText,
    shown: &str,
    offset: Option<i64>,
    limit: u64,
    env: &Env<'_>,
) -> Result<ReadOutput, ToolError> {
    let total = text.line_count() as u64;
    let start = start_line(offset, Some(total), shown)?;
    let mut builder = WindowBuilder::new(shown, start, text.bytes().len() as u64, env);
    builder.out.total_lines = Some(total);
    let keep = builder.keep_bytes();
    let end = total.min(start.saturating_add(limit).saturating_sub(1));
    for number in start..=end {
        if number == 0 || number > total {
            break;
        }
        let line = text.line((number - 1) as usize);
        if !builder.push(number, &line[..line.len().min(keep)], line.len() as u64) {
            break;
        }
    }
    Ok(builder.out)
}

/// The 1-based first line for `offset`, checked against `total` when it is known.
fn start_line(offset: Option<i64>, total: Option<u64>, shown: &str) -> Result<u64, ToolError> {
    let start = match offset {
        None => 1,
        Some(n) if n > 0 => n as u64,
        Some(n) => total.map_or(1, |t| t.saturating_sub(n.unsigned_abs()) + 1),
    };
    if let Some(total) = total
        && start > total
        && !(start == 1 && total == 0)
    {
        return Err(ToolError::new(format!(
            "`offset` {start} is past the end of `{shown}` ({} lines)",
            thousands(total)
        )));
    }
    Ok(start)
}

/// Reads a window of a file too large to load, with memory proportional to the window.
fn streamed(
    mut file: File,
    path: &std::path::Path,
    shown: &str,
    meta: &std::fs::Metadata,
    offset: Option<i64>,
    limit: u64,
    env: &Env<'_>,
) -> Result<ReadOutput, ToolError> {
    let io_err = |e: io::Error| ToolError::new(format!("cannot read `{shown}`: {e}"));
    let key = FileKey::of(meta);
    let mut index = env
        .line_index
        .get(path, key)
        .unwrap_or_else(|| LineIndex::new(key, env.config.line_index_every));
    let mut head = vec![0; BINARY_SNIFF];
    let n = read_full(&mut file, &mut head).map_err(io_err)?;
    refuse_binary(shown, &head[..n], meta.len())?;

    let total = if offset.is_some_and(|o| o < 0) {
        Some(scan_to_end(&mut file, &mut index, env).map_err(io_err)?)
    } else {
        index.total_lines
    };
    let start = start_line(offset, total, shown)?;
    let (mut line, at) = index.seek_point(start);
    let mut scanner = Scanner::new(&mut file, at, line).map_err(io_err)?;
    while line < start {
        env.task
            .checkpoint()
            .map_err(|e| ToolError::new(e.message))?;
        if scanner.next_line(0, &mut index).map_err(io_err)?.is_none() {
            env.line_index.put(path, index.clone());
            return Err(ToolError::new(format!(
                "`offset` {start} is past the end of `{shown}` ({} lines)",
                thousands(line - 1)
            )));
        }
        line += 1;
    }
    let mut builder = WindowBuilder::new(shown, start, meta.len(), env);
    builder.out.streamed = true;
    let keep = builder.keep_bytes();
    while line < start.saturating_add(limit) {
        env.task
            .checkpoint()
            .map_err(|e| ToolError::new(e.message))?;
        let Some((bytes, full_len)) = scanner.next_line(keep, &mut index).map_err(io_err)? else {
            break;
        };
        if !builder.push(line, &bytes, full_len) {
            break;
        }
        line += 1;
    }
    builder.out.total_lines = index.total_lines;
    env.line_index.put(path, index);
    Ok(builder.out)
}

/// Scans from the last indexed line to the end of the file, completing the index.
fn scan_to_end(file: &mut File, index: &mut LineIndex, env: &Env<'_>) -> io::Result<u64> {
    if let Some(total) = index.total_lines {
        return Ok(total);
    }
    let (mut line, at) = index.seek_point(u64::MAX);
    let mut scanner = Scanner::new(file, at, line)?;
    loop {
        if env.task.is_cancelled() {
            return Err(io::Error::other("cancelled"));
        }
        match scanner.next_line(0, index)? {
            Some(_) => line += 1,
            None => break,
        }
    }
    let total = line - 1;
    index.total_lines = Some(total);
    Ok(total)
}

/// Reads lines from a byte offset with one fixed buffer.
struct Scanner<'f> {
    file: &'f mut File,
    buf: Vec<u8>,
    pos: usize,
    len: usize,
    /// File offset of `buf[pos]`.
    offset: u64,
    /// The 1-based number of the line starting at `offset`.
    line: u64,
}

impl<'f> Scanner<'f> {
    fn new(file: &'f mut File, offset: u64, line: u64) -> io::Result<Scanner<'f>> {
        file.seek(SeekFrom::Start(offset))?;
        Ok(Scanner {
            file,
            buf: vec![0; STREAM_BUFFER],
            pos: 0,
            len: 0,
            offset,
            line,
        })
    }

    /// The next line: its first `keep` bytes and its full length without the `\n`; `None`
    /// at the end of the file. Records line starts in `index` as it goes.
    fn next_line(
        &mut self,
        keep: usize,
        index: &mut LineIndex,
    ) -> io::Result<Option<(Vec<u8>, u64)>> {
        index.note(self.line, self.offset);
        let mut kept = Vec::new();
        let mut full = 0u64;
        let mut any = false;
        loop {
            if self.pos == self.len {
                self.len = read_full(self.file, &mut self.buf)?;
                self.pos = 0;
                if self.len == 0 {
                    if !any {
                        index.total_lines.get_or_insert(self.line - 1);
                        return Ok(None);
                    }
                    self.line += 1;
                    return Ok(Some((kept, full)));
                }
            }
            any = true;
            let chunk = &self.buf[self.pos..self.len];
            let (piece, consumed, done) = match memchr::memchr(b'\n', chunk) {
                Some(i) => (&chunk[..i], i + 1, true),
                None => (chunk, chunk.len(), false),
            };
            if kept.len() < keep {
                kept.extend_from_slice(&piece[..piece.len().min(keep - kept.len())]);
            }
            full += piece.len() as u64;
            self.pos += consumed;
            self.offset += consumed as u64;
            if done {
                self.line += 1;
                return Ok(Some((kept, full)));
            }
        }
    }
}

/// Fills `buf` as far as the file allows; returns how many bytes were read.
fn read_full(file: &mut File, buf: &mut [u8]) -> io::Result<usize> {
    let mut filled = 0;
    while filled < buf.len() {
        match file.read(&mut buf[filled..]) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(filled)
}
