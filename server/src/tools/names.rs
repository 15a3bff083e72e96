//! File names as the tools show them and take them back: a name that could forge a line of
//! output (a newline in `a\n src/lib.rs:1:`), move the terminal (control characters) or not
//! be text at all (bytes that are not UTF-8) is shown quoted with escapes, `"a\nb"` or
//! `"caf\xE9.txt"` — the style of GNU `ls --quoting-style=c` — and a path argument in that
//! form names the same file again.
//!
//! Every other name is shown as it is, so the common case costs nothing and reads plainly.

use std::borrow::Cow;
use std::ffi::{OsStr, OsString};
use std::fmt::Write as _;
use std::os::unix::ffi::{OsStrExt, OsStringExt};

/// How `name` is shown: unchanged when it is plain UTF-8 text, otherwise quoted with its
/// control characters, quotes, backslashes and non-UTF-8 bytes escaped.
pub fn escape(name: &OsStr) -> Cow<'_, str> {
    let bytes = name.as_bytes();
    if let Ok(text) = std::str::from_utf8(bytes)
        && !text.starts_with('"')
        && !text.chars().any(needs_escape)
    {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(bytes.len() + 8);
    out.push('"');
    for chunk in bytes.utf8_chunks() {
        for c in chunk.valid().chars() {
            match c {
                '"' => out.push_str("\\\""),
                '\\' => out.push_str("\\\\"),
                '\n' => out.push_str("\\n"),
                '\t' => out.push_str("\\t"),
                '\r' => out.push_str("\\r"),
                c if needs_escape(c) => {
                    let _ = write!(out, "\\u{{{:x}}}", u32::from(c));
                }
                c => out.push(c),
            }
        }
        for byte in chunk.invalid() {
            let _ = write!(out, "\\x{byte:02X}");
        }
    }
    out.push('"');
    Cow::Owned(out)
}

/// The name a path argument stands for: the inverse of [`escape`] for a quoted argument
/// whose escapes are all valid, the argument itself otherwise (so a plain path, and
/// anything that merely looks quoted, is taken literally).
pub fn unescape(arg: &str) -> OsString {
    let quoted = arg.len() >= 2 && arg.starts_with('"') && arg.ends_with('"');
    if quoted && let Some(bytes) = decode(&arg[1..arg.len() - 1]) {
        return OsString::from_vec(bytes);
    }
    OsString::from(arg)
}

/// Characters shown escaped: C0 and C1 controls, DEL, and the bidirectional overrides and
/// isolates that make text display in a different order from the one it has.
fn needs_escape(c: char) -> bool {
    c.is_control() || matches!(c, '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
}

/// The bytes an escaped body stands for; `None` when it is not one [`escape`] could make.
fn decode(body: &str) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(body.len());
    let mut chars = body.chars();
    while let Some(c) = chars.next() {
        match c {
            '"' => return None,
            '\\' => match chars.next()? {
                '"' => out.push(b'"'),
                '\\' => out.push(b'\\'),
                'n' => out.push(b'\n'),
                't' => out.push(b'\t'),
                'r' => out.push(b'\r'),
                'x' => {
                    let hex: String = chars.by_ref().take(2).collect();
                    if hex.len() != 2 {
                        return None;
                    }
                    out.push(u8::from_str_radix(&hex, 16).ok()?);
                }
                'u' => {
                    if chars.next()? != '{' {
                        return None;
                    }
                    let hex: String = chars.by_ref().take_while(|&c| c != '}').collect();
                    let c = char::from_u32(u32::from_str_radix(&hex, 16).ok()?)?;
                    let mut utf8 = [0; 4];
                    out.extend_from_slice(c.encode_utf8(&mut utf8).as_bytes());
                }
                _ => return None,
            },
            c => {
                let mut utf8 = [0; 4];
                out.extend_from_slice(c.encode_utf8(&mut utf8).as_bytes());
            }
        }
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn os(bytes: &[u8]) -> &OsStr {
        OsStr::from_bytes(bytes)
    }

    #[test]
    fn plain_names_are_shown_as_they_are() {
        for name in [
            "src/lib.rs",
            "café.txt",
            "a b",
            "back\\slash",
            "quote\"inside",
        ] {
            assert!(matches!(escape(OsStr::new(name)), Cow::Borrowed(n) if n == name));
            assert_eq!(unescape(name), OsStr::new(name));
        }
    }

    #[test]
    fn names_that_could_forge_output_are_quoted_and_read_back() {
        let cases: [(&[u8], &str); 6] = [
            (b"a\nsrc/lib.rs:1:x", r#""a\nsrc/lib.rs:1:x""#),
            (b"caf\xe9.txt", r#""caf\xE9.txt""#),
            (b"tab\there", r#""tab\there""#),
            (b"\x1b]52;c;aGk=\x07", r#""\u{1b}]52;c;aGk=\u{7}""#),
            (b"\"quoted\"", r#""\"quoted\"""#),
            ("rtl\u{202e}txt.exe".as_bytes(), r#""rtl\u{202e}txt.exe""#),
        ];
        for (name, shown) in cases {
            assert_eq!(escape(os(name)), shown);
            assert!(!escape(os(name)).contains('\n'));
            assert_eq!(unescape(shown).as_bytes(), name, "{shown}");
        }
        let mixed = os(b"d\\ir/\xff\xfe\n\"");
        assert_eq!(unescape(&escape(mixed)), mixed);
    }

    #[test]
    fn what_only_looks_quoted_is_taken_literally() {
        for arg in [
            r#""""#,
            r#""a"b""#,
            r#""bad\q""#,
            r#""\x4""#,
            r#""\u{110000}""#,
        ] {
            if arg == r#""""# {
                assert_eq!(unescape(arg), OsStr::new(""));
                continue;
            }
            assert_eq!(unescape(arg), OsStr::new(arg), "{arg}");
        }
        assert_eq!(unescape("\""), OsStr::new("\""));
    }
}
