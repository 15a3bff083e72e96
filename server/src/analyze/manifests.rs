//! Project manifests — `Cargo.toml`, `package.json`, `pyproject.toml`, `go.mod`, `pom.xml`,
//! Gradle and CMake builds, Makefiles and a few more — recognised by file name, with the
//! project name each declares read from the bytes the analysis already holds.
//!
//! Structured formats are parsed properly (TOML, JSON); the others are read with small
//! line-oriented rules that find the usual spelling of the name (`module x` in `go.mod`,
//! `project(x)` in CMake, the `<artifactId>` directly under `<project>` in a POM). A
//! manifest that declares no name (a Makefile, a Gradle build script) or one that cannot be
//! parsed is still listed, without a name.

use serde::{Deserialize, Serialize};
use serde_json::Value as Json;
use toml::Value as Toml;

/// Which build system or package manager a manifest belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum ManifestKind {
    /// `Cargo.toml`.
    Cargo,
    /// `package.json`.
    Npm,
    /// `deno.json`, `deno.jsonc`.
    Deno,
    /// `pyproject.toml`.
    Pyproject,
    /// `setup.py`, `setup.cfg`.
    Setuptools,
    /// `go.mod`.
    GoModule,
    /// `pom.xml`.
    Maven,
    /// `build.gradle(.kts)`, `settings.gradle(.kts)`.
    Gradle,
    /// `CMakeLists.txt`.
    Cmake,
    /// `Makefile`, `makefile`, `GNUmakefile`.
    Make,
    /// `meson.build`.
    Meson,
    /// `composer.json`.
    Composer,
    /// `Gemfile`, `*.gemspec`.
    Ruby,
    /// `pubspec.yaml`.
    Pub,
    /// `Package.swift`.
    SwiftPm,
    /// `mix.exs`.
    Mix,
    /// `build.zig.zon`, `build.zig`.
    Zig,
    /// `*.csproj`, `*.fsproj`, `*.vbproj`.
    Dotnet,
}

impl ManifestKind {
    /// How a report names it.
    pub fn label(self) -> &'static str {
        match self {
            ManifestKind::Cargo => "Cargo",
            ManifestKind::Npm => "npm",
            ManifestKind::Deno => "Deno",
            ManifestKind::Pyproject => "Python (pyproject)",
            ManifestKind::Setuptools => "Python (setuptools)",
            ManifestKind::GoModule => "Go module",
            ManifestKind::Maven => "Maven",
            ManifestKind::Gradle => "Gradle",
            ManifestKind::Cmake => "CMake",
            ManifestKind::Make => "Make",
            ManifestKind::Meson => "Meson",
            ManifestKind::Composer => "Composer",
            ManifestKind::Ruby => "RubyGems",
            ManifestKind::Pub => "Dart pub",
            ManifestKind::SwiftPm => "SwiftPM",
            ManifestKind::Mix => "Mix",
            ManifestKind::Zig => "Zig",
            ManifestKind::Dotnet => ".NET",
        }
    }

    /// The kind of manifest a file of this name is, if any.
    pub fn of_file_name(name: &str) -> Option<ManifestKind> {
        Some(match name {
            "Cargo.toml" => ManifestKind::Cargo,
            "package.json" => ManifestKind::Npm,
            "deno.json" | "deno.jsonc" => ManifestKind::Deno,
            "pyproject.toml" => ManifestKind::Pyproject,
            "setup.py" | "setup.cfg" => ManifestKind::Setuptools,
            "go.mod" => ManifestKind::GoModule,
            "pom.xml" => ManifestKind::Maven,
            "build.gradle" | "build.gradle.kts" | "settings.gradle" | "settings.gradle.kts" => {
                ManifestKind::Gradle
            }
            "CMakeLists.txt" => ManifestKind::Cmake,
            "Makefile" | "makefile" | "GNUmakefile" => ManifestKind::Make,
            "meson.build" => ManifestKind::Meson,
            "composer.json" => ManifestKind::Composer,
            "Gemfile" => ManifestKind::Ruby,
            "pubspec.yaml" => ManifestKind::Pub,
            "Package.swift" => ManifestKind::SwiftPm,
            "mix.exs" => ManifestKind::Mix,
            "build.zig.zon" | "build.zig" => ManifestKind::Zig,
            _ if name.ends_with(".gemspec") => ManifestKind::Ruby,
            _ if [".csproj", ".fsproj", ".vbproj"]
                .iter()
                .any(|ext| name.ends_with(ext)) =>
            {
                ManifestKind::Dotnet
            }
            _ => return None,
        })
    }
}

/// What a manifest says about its project.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Declared {
    /// The project's name, when the manifest declares one.
    pub name: Option<String>,
    /// Whether it is (also) the root of a workspace of several projects.
    pub workspace: bool,
}

/// Reads the declared name (and whether it roots a workspace) from a manifest's bytes.
pub(crate) fn read(kind: ManifestKind, file_name: &str, bytes: &[u8]) -> Declared {
    let text = String::from_utf8_lossy(bytes);
    let text = text.strip_prefix('\u{feff}').unwrap_or(&text);
    match kind {
        ManifestKind::Cargo => cargo(text),
        ManifestKind::Npm | ManifestKind::Composer | ManifestKind::Deno => package_json(text),
        ManifestKind::Pyproject => pyproject(text),
        ManifestKind::Setuptools if file_name == "setup.cfg" => named(setup_cfg(text)),
        ManifestKind::Setuptools => named(keyword_string(text, "name")),
        ManifestKind::GoModule => named(go_module(text)),
        ManifestKind::Maven => named(pom_artifact(text)),
        ManifestKind::Gradle => named(gradle_root_name(text)),
        ManifestKind::Cmake => named(call_first_arg(text, "project")),
        ManifestKind::Meson => named(call_first_arg(text, "project")),
        ManifestKind::Make => Declared::default(),
        ManifestKind::Ruby if file_name == "Gemfile" => Declared::default(),
        ManifestKind::Ruby => named(gemspec_name(text)),
        ManifestKind::Pub => named(yaml_top_level(text, "name")),
        ManifestKind::SwiftPm => named(keyword_string(text, "name")),
        ManifestKind::Mix => named(mix_app(text)),
        ManifestKind::Zig if file_name == "build.zig" => Declared::default(),
        ManifestKind::Zig => named(zon_name(text)),
        ManifestKind::Dotnet => named(
            file_name
                .rsplit_once('.')
                .map(|(stem, _)| stem.to_string())
                .filter(|s| !s.is_empty()),
        ),
    }
}

fn named(name: Option<String>) -> Declared {
    Declared {
        name: name.filter(|n| !n.is_empty()),
        workspace: false,
    }
}

fn cargo(text: &str) -> Declared {
    let Ok(doc) = toml::from_str::<toml::Table>(text) else {
        return Declared::default();
    };
    let name = doc
        .get("package")
        .and_then(|p| p.get("name"))
        .and_then(Toml::as_str)
        .map(str::to_string);
    Declared {
        name,
        workspace: doc.contains_key("workspace"),
    }
}

fn package_json(text: &str) -> Declared {
    let Ok(doc) = serde_json::from_str::<Json>(text) else {
        return Declared::default();
    };
    Declared {
        name: doc
            .get("name")
            .and_then(Json::as_str)
            .map(str::to_string)
            .filter(|n| !n.is_empty()),
        workspace: doc.get("workspaces").is_some() || doc.get("workspace").is_some(),
    }
}

fn pyproject(text: &str) -> Declared {
    let Ok(doc) = toml::from_str::<toml::Table>(text) else {
        return Declared::default();
    };
    let project = doc.get("project").and_then(|p| p.get("name"));
    let poetry = doc
        .get("tool")
        .and_then(|t| t.get("poetry"))
        .and_then(|p| p.get("name"));
    named(
        project
            .or(poetry)
            .and_then(Toml::as_str)
            .map(str::to_string),
    )
}

/// `name = x` in the `[metadata]` section of a `setup.cfg`.
fn setup_cfg(text: &str) -> Option<String> {
    let mut in_metadata = false;
    for line in text.lines() {
        let line = line.trim();
        if line.starts_with('[') {
            in_metadata = line == "[metadata]";
        } else if in_metadata
            && let Some((key, value)) = line.split_once(['=', ':'])
            && key.trim() == "name"
        {
            return Some(value.trim().to_string());
        }
    }
    None
}

/// `module example.com/x` in a `go.mod`.
fn go_module(text: &str) -> Option<String> {
    text.lines().find_map(|line| {
        let rest = line.trim().strip_prefix("module")?;
        if !rest.starts_with([' ', '\t']) {
            return None;
        }
        let rest = rest.split("//").next().unwrap_or(rest).trim();
        Some(rest.trim_matches('"').to_string())
    })
}

/// The `<artifactId>` that is a direct child of `<project>` (not the parent's, nor a
/// dependency's).
fn pom_artifact(text: &str) -> Option<String> {
    let mut depth = 0usize;
    let mut rest = text;
    while let Some(open) = rest.find('<') {
        rest = &rest[open + 1..];
        if let Some(comment) = rest.strip_prefix("!--") {
            rest = comment.split_once("-->").map_or("", |(_, after)| after);
            continue;
        }
        let end = rest.find('>')?;
        let tag = &rest[..end];
        rest = &rest[end + 1..];
        if tag.starts_with('?') || tag.starts_with('!') || tag.ends_with('/') {
            continue;
        }
        if tag.starts_with('/') {
            depth = depth.saturating_sub(1);
            continue;
        }
        depth += 1;
        let name = tag.split_whitespace().next().unwrap_or(tag);
        if depth == 2 && name == "artifactId" {
            let value = rest.split('<').next().unwrap_or("").trim();
            return Some(value.to_string());
        }
    }
    None
}

/// `rootProject.name = "x"` in a Gradle settings script.
fn gradle_root_name(text: &str) -> Option<String> {
    text.lines().find_map(|line| {
        let rest = line.trim().strip_prefix("rootProject.name")?;
        let rest = rest.trim_start().strip_prefix('=')?;
        first_quoted(rest)
    })
}

/// The first argument of a `name(...)` call at the start of a line, case-insensitively,
/// outside `#` comments: CMake's and Meson's `project(x ...)`.
fn call_first_arg(text: &str, call: &str) -> Option<String> {
    text.lines().find_map(|line| {
        let line = line.trim_start();
        if line.len() < call.len() || !line[..call.len()].eq_ignore_ascii_case(call) {
            return None;
        }
        let rest = line[call.len()..].trim_start().strip_prefix('(')?;
        let rest = rest.trim_start();
        if rest.starts_with(['"', '\'']) {
            return first_quoted(rest);
        }
        let arg: String = rest
            .chars()
            .take_while(|c| !c.is_whitespace() && *c != ')')
            .collect();
        (!arg.is_empty() && !arg.starts_with('$')).then_some(arg)
    })
}

/// The string given to `keyword` as in `name="x"`, `name = 'x'` or `name: "x"` (setup.py,
/// Package.swift): the first occurrence in the file.
fn keyword_string(text: &str, keyword: &str) -> Option<String> {
    let mut from = 0;
    while let Some(at) = text[from..].find(keyword) {
        let start = from + at;
        from = start + keyword.len();
        let before_ok = text[..start]
            .chars()
            .next_back()
            .is_none_or(|c| !c.is_alphanumeric() && c != '_' && c != '.');
        let rest = text[from..].trim_start();
        if let (true, Some(value)) = (before_ok, rest.strip_prefix(['=', ':']))
            && let Some(name) = first_quoted_here(value.trim_start())
        {
            return Some(name);
        }
    }
    None
}

/// `spec.name = "x"` (any receiver) in a gemspec.
fn gemspec_name(text: &str) -> Option<String> {
    text.lines().find_map(|line| {
        let (_, rest) = line.split_once(".name")?;
        let rest = rest.trim_start().strip_prefix('=')?;
        first_quoted_here(rest.trim_start())
    })
}

/// `app: :x` in a Mix project.
fn mix_app(text: &str) -> Option<String> {
    let (_, rest) = text.split_once("app:")?;
    let rest = rest.trim_start().strip_prefix(':')?;
    let name: String = rest
        .chars()
        .take_while(|c| c.is_alphanumeric() || *c == '_')
        .collect();
    Some(name)
}

/// `.name = .x` or `.name = "x"` in a `build.zig.zon`.
fn zon_name(text: &str) -> Option<String> {
    let (_, rest) = text.split_once(".name")?;
    let rest = rest.trim_start().strip_prefix('=')?.trim_start();
    if let Some(tag) = rest.strip_prefix('.') {
        let tag = tag.strip_prefix('@').unwrap_or(tag);
        if tag.starts_with('"') {
            return first_quoted_here(tag);
        }
        let name: String = tag
            .chars()
            .take_while(|c| c.is_alphanumeric() || *c == '_')
            .collect();
        return Some(name);
    }
    first_quoted_here(rest)
}

/// `key: value` at the top level (no indentation) of a YAML file.
fn yaml_top_level(text: &str, key: &str) -> Option<String> {
    text.lines().find_map(|line| {
        let rest = line.strip_prefix(key)?.strip_prefix(':')?;
        let value = rest.split(" #").next().unwrap_or(rest).trim();
        Some(value.trim_matches(['"', '\'']).to_string())
    })
}

/// The contents of the first quoted string in `text`.
fn first_quoted(text: &str) -> Option<String> {
    let start = text.find(['"', '\''])?;
    first_quoted_here(&text[start..])
}

/// The contents of the string `text` starts with.
fn first_quoted_here(text: &str) -> Option<String> {
    let quote = text.chars().next().filter(|c| *c == '"' || *c == '\'')?;
    let body = &text[1..];
    let end = body.find(quote)?;
    Some(body[..end].to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn name(file: &str, text: &str) -> Option<String> {
        let kind = ManifestKind::of_file_name(file);
        assert!(kind.is_some(), "{file} is a manifest");
        kind.and_then(|k| read(k, file, text.as_bytes()).name)
    }

    #[test]
    fn recognises_manifests_by_file_name() {
        assert_eq!(
            ManifestKind::of_file_name("Cargo.toml"),
            Some(ManifestKind::Cargo)
        );
        assert_eq!(
            ManifestKind::of_file_name("app.csproj"),
            Some(ManifestKind::Dotnet)
        );
        assert_eq!(
            ManifestKind::of_file_name("x.gemspec"),
            Some(ManifestKind::Ruby)
        );
        assert_eq!(ManifestKind::of_file_name("Cargo.toml.orig"), None);
        assert_eq!(ManifestKind::of_file_name("cargo.toml"), None);
        assert_eq!(ManifestKind::of_file_name("README.md"), None);
    }

    #[test]
    fn cargo_packages_and_workspaces() {
        let package = "[package]\nname = \"switchyard\"\nversion = \"0.1.0\"\n";
        assert_eq!(
            read(ManifestKind::Cargo, "Cargo.toml", package.as_bytes()),
            Declared {
                name: Some("switchyard".into()),
                workspace: false
            }
        );
        let workspace = "[workspace]\nmembers = [\"server\"]\n";
        assert_eq!(
            read(ManifestKind::Cargo, "Cargo.toml", workspace.as_bytes()),
            Declared {
                name: None,
                workspace: true
            }
        );
        assert_eq!(name("Cargo.toml", "this is [not toml"), None);
    }

    #[test]
    fn json_manifests() {
        let npm = r#"{"name": "@acme/web", "workspaces": ["packages/*"]}"#;
        assert_eq!(
            read(ManifestKind::Npm, "package.json", npm.as_bytes()),
            Declared {
                name: Some("@acme/web".into()),
                workspace: true
            }
        );
        assert_eq!(
            name("composer.json", r#"{"name": "acme/lib"}"#),
            Some("acme/lib".into())
        );
        assert_eq!(name("package.json", r#"{"private": true}"#), None);
    }

    #[test]
    fn python_manifests() {
        assert_eq!(
            name("pyproject.toml", "[project]\nname = \"acme-tools\"\n"),
            Some("acme-tools".into())
        );
        assert_eq!(
            name("pyproject.toml", "[tool.poetry]\nname = \"poetic\"\n"),
            Some("poetic".into())
        );
        assert_eq!(
            name(
                "setup.cfg",
                "[options]\nname = no\n[metadata]\nname = acme\n"
            ),
            Some("acme".into())
        );
        assert_eq!(
            name(
                "setup.py",
                "from setuptools import setup\nsetup(\n    name='acme',\n    version=version,\n)\n"
            ),
            Some("acme".into())
        );
    }

    #[test]
    fn line_oriented_manifests() {
        assert_eq!(
            name(
                "go.mod",
                "// header\nmodule github.com/acme/tool // the tool\n\ngo 1.22\n"
            ),
            Some("github.com/acme/tool".into())
        );
        assert_eq!(
            name(
                "CMakeLists.txt",
                "# project(wrong)\ncmake_minimum_required(VERSION 3.10)\nPROJECT(Engine VERSION 1.0 LANGUAGES CXX)\n"
            ),
            Some("Engine".into())
        );
        assert_eq!(
            name(
                "meson.build",
                "project('gadget', 'c',\n  version : '1.0')\n"
            ),
            Some("gadget".into())
        );
        assert_eq!(
            name(
                "settings.gradle.kts",
                "rootProject.name = \"acme-app\"\ninclude(\":core\")\n"
            ),
            Some("acme-app".into())
        );
        assert_eq!(name("build.gradle", "plugins { id 'java' }\n"), None);
        assert_eq!(name("Makefile", "all:\n\tcc main.c\n"), None);
        assert_eq!(name("Gemfile", "gem 'rails'\n"), None);
        assert_eq!(
            name(
                "acme.gemspec",
                "Gem::Specification.new do |s|\n  s.name        = \"acme\"\nend\n"
            ),
            Some("acme".into())
        );
        assert_eq!(
            name(
                "pubspec.yaml",
                "# app\nname: flutter_app\ndependencies:\n  name: no\n"
            ),
            Some("flutter_app".into())
        );
        assert_eq!(
            name(
                "Package.swift",
                "let package = Package(\n    name: \"Kit\",\n    targets: [.target(name: \"Inner\")]\n)\n"
            ),
            Some("Kit".into())
        );
        assert_eq!(
            name(
                "mix.exs",
                "def project do\n  [app: :phoenix_app, version: \"0.1.0\"]\n"
            ),
            Some("phoenix_app".into())
        );
        assert_eq!(
            name("build.zig.zon", ".{\n    .name = .zigzag,\n}\n"),
            Some("zigzag".into())
        );
        assert_eq!(
            name("build.zig.zon", ".{ .name = \"old\", }"),
            Some("old".into())
        );
        assert_eq!(name("Tool.csproj", "<Project/>"), Some("Tool".into()));
    }

    #[test]
    fn pom_takes_the_projects_own_artifact() {
        let pom = r#"<?xml version="1.0"?>
<!-- <artifactId>comment</artifactId> -->
<project xmlns="http://maven.apache.org/POM/4.0.0">
  <parent>
    <artifactId>parent-pom</artifactId>
  </parent>
  <modelVersion>4.0.0</modelVersion>
  <artifactId>acme-core</artifactId>
  <dependencies><dependency><artifactId>junit</artifactId></dependency></dependencies>
</project>"#;
        assert_eq!(name("pom.xml", pom), Some("acme-core".into()));
    }
}
