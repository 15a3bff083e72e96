//! Turns tokei's `languages.json` (vendored in `data/tokei/` with its licence) into the
//! language table of `analyze::languages`: the `Language` enum, one syntax row per
//! language, and the sorted lookup tables for extensions, file names, shebangs, names and
//! MIME types.
//!
//! It follows tokei's own build script and template (`build.rs`, `language_type.tera.rs`
//! of tokei 15) so the analysis knows exactly the languages tokei knows, read the same way:
//! string values are Rust string literal bodies (`"\\\""` in the JSON is `"` in the table),
//! quotes and verbatim quotes are sorted longest first, and where two languages claim the
//! same extension the first in key order wins, as the first arm of tokei's `match` does.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::Path;

use serde_json::{Map, Value};

const SOURCE: &str = "data/tokei/languages.json";

fn main() {
    println!("cargo::rerun-if-changed={SOURCE}");
    println!("cargo::rerun-if-changed=build.rs");
    let text = std::fs::read_to_string(SOURCE).unwrap_or_else(|e| panic!("{SOURCE}: {e}"));
    let json: Value = serde_json::from_str(&text).unwrap_or_else(|e| panic!("{SOURCE}: {e}"));
    let languages: BTreeMap<String, Map<String, Value>> = json["languages"]
        .as_object()
        .unwrap_or_else(|| panic!("{SOURCE}: no \"languages\" object"))
        .iter()
        .map(|(key, value)| {
            let row = value
                .as_object()
                .unwrap_or_else(|| panic!("{SOURCE}: {key} is not an object"));
            (key.clone(), row.clone())
        })
        .collect();
    let code = generate(&languages);
    let out = std::env::var_os("OUT_DIR").unwrap_or_else(|| panic!("cargo sets OUT_DIR"));
    let path = Path::new(&out).join("languages.rs");
    std::fs::write(&path, code).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
}

/// One language's row, read from the JSON.
struct Row<'a> {
    key: &'a str,
    field: &'a Map<String, Value>,
}

impl Row<'_> {
    fn name(&self) -> &str {
        self.field
            .get("name")
            .and_then(Value::as_str)
            .unwrap_or(self.key)
    }

    fn strings(&self, field: &str) -> Vec<&str> {
        match self.field.get(field) {
            None => Vec::new(),
            Some(Value::Array(items)) => items
                .iter()
                .map(|item| {
                    item.as_str()
                        .unwrap_or_else(|| panic!("{}.{field}: not a string", self.key))
                })
                .collect(),
            Some(_) => panic!("{}.{field}: not an array", self.key),
        }
    }

    fn pairs(&self, field: &str) -> Vec<(&str, &str)> {
        match self.field.get(field) {
            None => Vec::new(),
            Some(Value::Array(items)) => items
                .iter()
                .map(|item| match item.as_array().map(Vec::as_slice) {
                    Some([Value::String(open), Value::String(close)]) => {
                        (open.as_str(), close.as_str())
                    }
                    _ => panic!("{}.{field}: not a pair of strings", self.key),
                })
                .collect(),
            Some(_) => panic!("{}.{field}: not an array", self.key),
        }
    }

    fn flag(&self, field: &str) -> bool {
        self.field
            .get(field)
            .and_then(Value::as_bool)
            .unwrap_or(false)
    }

    /// tokei's build sorts these longest first (by the longer of open and close); the sort
    /// is stable here, as tokei's unstable sort is on lists this short.
    fn sorted_pairs(&self, field: &str) -> Vec<(&str, &str)> {
        let mut pairs = self.pairs(field);
        pairs.sort_by_key(|(open, close)| std::cmp::Reverse(open.len().max(close.len())));
        pairs
    }
}

/// A value used as a lookup key at run time: it must read the same unescaped.
fn plain<'a>(key: &str, field: &str, value: &'a str) -> &'a str {
    assert!(
        !value.contains(['\\', '"']),
        "{key}.{field}: {value:?} needs unescaping, which the lookup tables do not do"
    );
    value
}

fn bytes_list(items: &[&str]) -> String {
    let items: Vec<String> = items
        .iter()
        .map(|s| format!("\"{s}\".as_bytes()"))
        .collect();
    format!("&[{}]", items.join(", "))
}

fn pair_list(items: &[(&str, &str)]) -> String {
    let items: Vec<String> = items
        .iter()
        .map(|(open, close)| format!("(\"{open}\".as_bytes(), \"{close}\".as_bytes())"))
        .collect();
    format!("&[{}]", items.join(", "))
}

fn table(out: &mut String, doc: &str, name: &str, rows: &[(String, &str)]) {
    let _ = writeln!(out, "/// {doc}");
    let _ = writeln!(out, "static {name}: [(&str, Language); {}] = [", rows.len());
    for (text, key) in rows {
        let _ = writeln!(out, "    (\"{text}\", Language::{key}),");
    }
    let _ = writeln!(out, "];\n");
}

fn generate(languages: &BTreeMap<String, Map<String, Value>>) -> String {
    // Key order: tokei's template iterates a serde_json map, sorted by key.
    let rows: Vec<Row> = languages
        .iter()
        .map(|(key, field)| Row { key, field })
        .collect();
    // The enum (and the report) order: by name, ignoring case.
    let mut by_name: Vec<&Row> = rows.iter().collect();
    by_name.sort_by_key(|row| (row.name().to_lowercase(), row.key));

    let mut out = String::new();
    out.push_str(
        "// Generated by server/build.rs from data/tokei/languages.json (tokei 15). Do not edit.\n\n",
    );
    out.push_str(
        "/// A programming, markup or data language: every language tokei knows, named as\n",
    );
    out.push_str("/// tokei names it (the variants are the keys of tokei's `languages.json`).\n");
    out.push_str("#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]\n");
    out.push_str("#[allow(clippy::upper_case_acronyms)]\n");
    out.push_str("pub enum Language {\n");
    for row in &by_name {
        let mut seen = row.strings("extensions");
        seen.iter_mut()
            .for_each(|e| *e = plain(row.key, "extensions", e));
        let extensions: Vec<String> = seen.iter().map(|e| format!(".{e}")).collect();
        let mut what = extensions.join(", ");
        let filenames = row.strings("filenames");
        if !filenames.is_empty() {
            what = format!("{what}; {}", filenames.join(", "));
        }
        let _ = writeln!(out, "    /// {} ({what})", row.name().replace('`', "'"));
        let _ = writeln!(out, "    {},", row.key);
    }
    out.push_str("}\n\n");

    out.push_str("impl Language {\n");
    out.push_str("    /// Every language, in the order of their names.\n");
    out.push_str("    pub const ALL: &'static [Language] = &[\n");
    for row in &by_name {
        let _ = writeln!(out, "        Language::{},", row.key);
    }
    out.push_str("    ];\n}\n\n");

    let _ = writeln!(out, "static DEFS: [LanguageDef; {}] = [", by_name.len());
    for row in &by_name {
        let key = row.key;
        let _ = writeln!(out, "    LanguageDef {{");
        let _ = writeln!(out, "        lang: Language::{key},");
        let _ = writeln!(out, "        name: \"{}\",", plain(key, "name", row.name()));
        let fields: [(&str, String); 7] = [
            ("line_comments", bytes_list(&row.strings("line_comment"))),
            (
                "block_comments",
                pair_list(&row.pairs("multi_line_comments")),
            ),
            ("nested_comments", pair_list(&row.pairs("nested_comments"))),
            ("quotes", pair_list(&row.sorted_pairs("quotes"))),
            (
                "verbatim_quotes",
                pair_list(&row.sorted_pairs("verbatim_quotes")),
            ),
            ("doc_quotes", pair_list(&row.pairs("doc_quotes"))),
            ("important", bytes_list(&row.strings("important_syntax"))),
        ];
        for (field, value) in fields {
            if value != "&[]" {
                let _ = writeln!(out, "        {field}: {value},");
            }
        }
        for (field, json) in [("nested", "nested"), ("literate", "literate")] {
            if row.flag(json) {
                let _ = writeln!(out, "        {field}: true,");
            }
        }
        let _ = writeln!(out, "        ..LanguageDef::NONE");
        let _ = writeln!(out, "    }}");
        let _ = writeln!(out, "    .finish(),");
    }
    out.push_str("];\n\n");

    // Lookups where the first language in key order wins.
    let mut extensions: BTreeMap<String, &str> = BTreeMap::new();
    let mut filenames: BTreeMap<String, &str> = BTreeMap::new();
    let mut mimes: BTreeMap<String, &str> = BTreeMap::new();
    let mut names: BTreeMap<String, &str> = BTreeMap::new();
    let mut exact_names: BTreeMap<String, &str> = BTreeMap::new();
    let mut suffixes = Vec::new();
    let mut shebangs = Vec::new();
    let mut envs = Vec::new();
    for row in &rows {
        let key = row.key;
        for e in row.strings("extensions") {
            extensions
                .entry(plain(key, "extensions", e).to_string())
                .or_insert(key);
        }
        for f in row.strings("filenames") {
            filenames
                .entry(plain(key, "filenames", f).to_string())
                .or_insert(key);
        }
        for m in row.strings("mime") {
            mimes
                .entry(plain(key, "mime", m).to_string())
                .or_insert(key);
        }
        names.entry(row.name().to_lowercase()).or_insert(key);
        exact_names.entry(row.name().to_string()).or_insert(key);
        exact_names.entry(key.to_string()).or_insert(key);
        for s in row.strings("path_suffixes") {
            suffixes.push((plain(key, "path_suffixes", s).to_string(), key));
        }
        for s in row.strings("shebangs") {
            shebangs.push((plain(key, "shebangs", s).to_string(), key));
        }
        for s in row.strings("env") {
            envs.push((plain(key, "env", s).to_string(), key));
        }
    }
    let collect = |map: &BTreeMap<String, &str>| -> Vec<(String, String)> {
        map.iter()
            .map(|(k, v)| (k.clone(), v.to_string()))
            .collect()
    };
    for (doc, name, rows) in [
        (
            "File extensions, sorted, with the language tokei gives each (compared lowercased; \
             tokei's few upper-case entries never match).",
            "EXTENSIONS",
            collect(&extensions),
        ),
        (
            "Whole file names, sorted, compared lowercased.",
            "FILENAMES",
            collect(&filenames),
        ),
        ("MIME types, sorted.", "MIMES", collect(&mimes)),
        (
            "Names lowercased, sorted: tokei's `FromStr` (code fences, `lang=` attributes).",
            "NAMES",
            collect(&names),
        ),
        (
            "Names and keys as written, sorted: tokei's `from_name`.",
            "EXACT_NAMES",
            collect(&exact_names),
        ),
        (
            "File name endings tried after whole names, in key order.",
            "PATH_SUFFIXES",
            suffixes
                .iter()
                .map(|(s, k)| (s.clone(), k.to_string()))
                .collect(),
        ),
        (
            "Interpreters of a shebang line, in key order.",
            "SHEBANGS",
            shebangs
                .iter()
                .map(|(s, k)| (s.clone(), k.to_string()))
                .collect(),
        ),
        (
            "Prefixes of the program `#!/usr/bin/env` runs, in key order.",
            "ENVS",
            envs.iter()
                .map(|(s, k)| (s.clone(), k.to_string()))
                .collect(),
        ),
    ] {
        let rows: Vec<(String, &str)> = rows.iter().map(|(s, k)| (s.clone(), k.as_str())).collect();
        table(&mut out, doc, name, &rows);
    }
    out
}
