//! The layering rules of ARCHITECTURE.md, checked on the sources: a rule that breaks fails here,
//! in milliseconds, before anyone has to notice it in review.
//!
//! Each rule names what may use a thing; everything else may not. The checks read manifests and
//! source text (comments and string literals are not told apart from code, so the patterns are
//! chosen to be unmistakable).

use std::path::{Path, PathBuf};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// Every `.rs` file under `directory`, as (path relative to the root, text).
fn sources(directory: &str) -> Vec<(String, String)> {
    let mut found = Vec::new();
    let mut pending = vec![root().join(directory)];
    while let Some(folder) = pending.pop() {
        for entry in
            std::fs::read_dir(&folder).unwrap_or_else(|error| panic!("{}: {error}", folder.display()))
        {
            let path = entry.expect("a directory entry").path();
            if path.is_dir() {
                pending.push(path);
            } else if path.extension().is_some_and(|extension| extension == "rs") {
                let text = std::fs::read_to_string(&path).expect("a source file");
                let relative = path.strip_prefix(root()).unwrap_or(&path).display().to_string();
                found.push((relative.replace("/./", "/").replace("../", ""), text));
            }
        }
    }
    found
}

/// The `[dependencies]` names of a crate's manifest.
fn dependencies(krate: &str) -> Vec<String> {
    let manifest =
        std::fs::read_to_string(root().join("crates").join(krate).join("Cargo.toml")).expect("a manifest");
    let mut names = Vec::new();
    let mut inside = false;
    for line in manifest.lines() {
        let line = line.trim();
        if line.starts_with('[') {
            inside = line == "[dependencies]";
            continue;
        }
        if inside && let Some((name, _)) = line.split_once('=') {
            names.push(name.trim().trim_end_matches(".workspace").to_owned());
        }
    }
    names
}

fn crates() -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(root().join("crates"))
        .expect("crates/")
        .map(|entry| {
            entry
                .expect("an entry")
                .file_name()
                .to_string_lossy()
                .into_owned()
        })
        .collect();
    names.sort();
    names
}

/// Lines of `text` containing `pattern`, outside `//` comments.
fn uses<'a>(text: &'a str, pattern: &str) -> Vec<&'a str> {
    text.lines()
        .filter(|line| !line.trim_start().starts_with("//"))
        .filter(|line| line.contains(pattern))
        .collect()
}

/// Checks that `krate` depends only on `allowed` and that no source uses any of `banned`.
fn assert_pure(krate: &str, allowed: &[&str], banned: &[&str], why: &str) {
    for name in dependencies(krate) {
        assert!(
            allowed.contains(&name.as_str()),
            "{krate} depends on {name}; it must stay pure"
        );
    }
    for (path, text) in sources(&format!("crates/{krate}/src")) {
        for pattern in banned {
            assert!(uses(&text, pattern).is_empty(), "{path} uses {pattern}: {why}");
        }
    }
}

const IO_AND_ASYNC: &[&str] = &[
    "std::fs",
    "std::net",
    "std::process",
    "tokio",
    "async fn",
    ".await",
];

#[test]
fn comfy_workflow_is_pure() {
    assert_pure(
        "comfy-workflow",
        &["serde", "serde_json", "thiserror"],
        IO_AND_ASYNC,
        "comfy-workflow does no IO and no async",
    );
}

#[test]
fn comfy_imaging_is_pure() {
    let banned: Vec<&str> = IO_AND_ASYNC
        .iter()
        .copied()
        .chain(["load_from_memory", "ImageReader"])
        .collect();
    assert_pure(
        "comfy-imaging",
        &["font8x8", "image", "schemars", "serde", "thiserror"],
        &banned,
        "comfy-imaging does no IO, no async and no decoding",
    );
}

#[test]
fn comfy_text_is_pure() {
    assert_pure(
        "comfy-text",
        &["instant-clip-tokenizer", "schemars", "serde", "thiserror"],
        IO_AND_ASYNC,
        "comfy-text does no IO and no async",
    );
}

#[test]
fn only_comfy_store_speaks_sql() {
    for krate in crates() {
        if krate != "comfy-store" {
            assert!(
                !dependencies(&krate).contains(&"rusqlite".to_owned()),
                "{krate} depends on rusqlite"
            );
            for (path, text) in sources(&format!("crates/{krate}/src")) {
                assert!(uses(&text, "rusqlite").is_empty(), "{path} uses rusqlite");
            }
        }
    }
}

#[test]
fn only_comfy_api_speaks_to_comfyui() {
    // The benchmark's independent direct client is the one deliberate exception: it measures
    // ComfyUI without going through our stack.
    for krate in crates() {
        if ["comfy-api", "bench"].contains(&krate.as_str()) {
            continue;
        }
        for forbidden in ["reqwest", "tokio-tungstenite"] {
            assert!(
                !dependencies(&krate).contains(&forbidden.to_owned()),
                "{krate} depends on {forbidden}"
            );
        }
    }
}

#[test]
fn only_the_front_end_knows_rmcp() {
    for krate in crates() {
        if ["comfyui-mcp", "bench"].contains(&krate.as_str()) {
            continue;
        }
        assert!(
            !dependencies(&krate).contains(&"rmcp".to_owned()),
            "{krate} depends on rmcp"
        );
    }
    for (path, text) in sources("crates/comfyui-mcp/src") {
        let front_end =
            path.contains("/src/mcp/") || path.contains("/src/serve") || path.ends_with("/main.rs");
        if !front_end {
            let lines = uses(&text, "rmcp::");
            assert!(
                lines.is_empty(),
                "{path} uses rmcp outside the front end: {lines:?}"
            );
        }
    }
}

#[test]
fn the_engine_knows_no_front_end() {
    // schemars is allowed: it only describes data, so the engine's result types derive their JSON
    // Schema next to their Serialize and a front end publishes it (MCP output schemas).
    for forbidden in [
        "rmcp",
        "clap",
        "axum",
        "hyper",
        "hyper-util",
        "tracing-subscriber",
    ] {
        assert!(
            !dependencies("comfy-engine").contains(&forbidden.to_owned()),
            "comfy-engine depends on {forbidden}: the engine serves every front end and knows none"
        );
    }
}

#[test]
fn front_ends_reach_comfyui_and_the_database_only_through_the_engine() {
    for forbidden in ["comfy-api", "comfy-store", "reqwest", "rusqlite", "image"] {
        assert!(
            !dependencies("comfyui-mcp").contains(&forbidden.to_owned()),
            "comfyui-mcp depends on {forbidden}: front ends call engine services"
        );
    }
    for (path, text) in sources("crates/comfyui-mcp/src") {
        for pattern in ["comfy_api::", "comfy_store::", ".client()"] {
            let lines = uses(&text, pattern);
            assert!(
                lines.is_empty(),
                "{path} reaches past the engine ({pattern}): {lines:?}"
            );
        }
    }
}

#[test]
fn rendering_is_pure() {
    for (path, text) in sources("crates/comfyui-mcp/src/mcp") {
        if path.ends_with("/render.rs") {
            for pattern in ["async fn", ".await", "tokio::", "std::fs"] {
                let lines = uses(&text, pattern);
                assert!(lines.is_empty(), "{path} does IO or waits ({pattern}): {lines:?}");
            }
        }
    }
}

#[test]
fn every_task_has_an_owner() {
    // Spawned tasks belong to a TaskTracker and stop on a CancellationToken; a bare spawn outlives
    // shutdown and cannot be waited for.
    for krate in crates() {
        if ["bench", "test-support"].contains(&krate.as_str()) {
            continue;
        }
        for (path, text) in sources(&format!("crates/{krate}/src")) {
            for pattern in ["tokio::spawn(", "std::thread::spawn("] {
                let lines = uses(&text, pattern);
                assert!(lines.is_empty(), "{path}: {pattern} outside a tracker: {lines:?}");
            }
        }
    }
}

#[test]
fn the_code_map_names_every_module() {
    let map = std::fs::read_to_string(root().join("ARCHITECTURE.md")).expect("ARCHITECTURE.md");
    let mut missing = Vec::new();
    for krate in crates() {
        if !map.contains(&format!("crates/{krate}")) {
            missing.push(format!("crates/{krate}"));
        }
        for (path, _) in sources(&format!("crates/{krate}/src")) {
            let file = Path::new(&path);
            let name = file
                .file_name()
                .expect("a file name")
                .to_string_lossy()
                .into_owned();
            if ["lib.rs", "main.rs", "mod.rs", "tests.rs"].contains(&name.as_str()) {
                continue;
            }
            let module = file.file_stem().expect("a stem").to_string_lossy().into_owned();
            if !map.contains(&format!("{module}.rs")) && !map.contains(&format!("`{module}/`")) {
                missing.push(path);
            }
        }
    }
    missing.sort();
    assert!(
        missing.is_empty(),
        "ARCHITECTURE.md's code map misses {missing:#?}"
    );
}

/// The modules of `directory` (file stems of its `.rs` files) and, for each, the siblings it names
/// through `super::NAME` or `crate::...::NAME`.
fn sibling_references(directory: &Path) -> Vec<(String, Vec<String>)> {
    let Ok(entries) = std::fs::read_dir(directory) else {
        return Vec::new();
    };
    // `comfy_engine::` for crates/NAME/src/engine, `crate::` for crates/NAME/src.
    let text = directory.display().to_string();
    let Some((_, inside)) = text.split_once("/src") else {
        return Vec::new();
    };
    let prefix = format!("crate{}::", inside.replace('/', "::"));
    let files: Vec<PathBuf> = entries
        .map(|entry| entry.expect("an entry").path())
        .filter(|path| path.extension().is_some_and(|extension| extension == "rs"))
        .collect();
    let stems: Vec<String> = files
        .iter()
        .map(|path| path.file_stem().expect("a stem").to_string_lossy().into_owned())
        .filter(|stem| !["mod", "lib", "main", "tests"].contains(&stem.as_str()))
        .collect();
    files
        .iter()
        .filter_map(|path| {
            let stem = path.file_stem()?.to_string_lossy().into_owned();
            if !stems.contains(&stem) {
                return None;
            }
            let text = std::fs::read_to_string(path).ok()?;
            // Test modules may use anything; only the code itself counts.
            let code = text.split("#[cfg(test)]").next().unwrap_or_default();
            let named: Vec<String> = stems
                .iter()
                .filter(|other| **other != stem)
                .filter(|other| {
                    code.contains(&format!("super::{other}::"))
                        || code.contains(&format!("super::{other};"))
                        || code.contains(&format!("super::{{{other}"))
                        || code.contains(&format!("{prefix}{other}::"))
                        || code.contains(&format!("{prefix}{other};"))
                        || code.contains(&format!("{prefix}{{{other}"))
                })
                .cloned()
                .collect();
            Some((stem, named))
        })
        .collect()
}

#[test]
fn no_two_sibling_modules_import_each_other() {
    let mut circles = Vec::new();
    let mut folders = vec![root().join("crates")];
    while let Some(folder) = folders.pop() {
        for entry in std::fs::read_dir(&folder).expect("a folder") {
            let path = entry.expect("an entry").path();
            if path.is_dir() && !path.ends_with("target") {
                folders.push(path);
            }
        }
        let references = sibling_references(&folder);
        for (module, named) in &references {
            for other in named {
                let back = references
                    .iter()
                    .any(|(candidate, names)| candidate == other && names.contains(module));
                if back && module < other {
                    circles.push(format!("{}: {module} <-> {other}", folder.display()));
                }
            }
        }
    }
    assert!(circles.is_empty(), "modules that import each other: {circles:#?}");
}

#[test]
fn no_child_module_imports_its_parent() {
    // A parent declares its children; a child that named the parent's own items back would make a
    // circle. Children share plumbing through sibling modules instead.
    let mut found = Vec::new();
    let mut folders = vec![root().join("crates")];
    while let Some(folder) = folders.pop() {
        let mut children = Vec::new();
        for entry in std::fs::read_dir(&folder).expect("a folder") {
            let path = entry.expect("an entry").path();
            if path.is_dir() && !path.ends_with("target") {
                folders.push(path);
            } else if path.extension().is_some_and(|extension| extension == "rs") {
                children.push(path);
            }
        }
        if !folder.join("mod.rs").exists() {
            continue;
        }
        let stems: Vec<String> = children
            .iter()
            .map(|path| path.file_stem().expect("a stem").to_string_lossy().into_owned())
            .collect();
        for child in children.iter().filter(|path| !path.ends_with("mod.rs")) {
            let text = std::fs::read_to_string(child).expect("a source file");
            let code = text.split("#[cfg(test)]").next().unwrap_or_default();
            for (index, _) in code.match_indices("super::") {
                let rest = &code[index + "super::".len()..];
                let name: String = rest
                    .chars()
                    .take_while(|character| {
                        character.is_alphanumeric() || *character == '_' || *character == '{'
                    })
                    .collect();
                let names: Vec<&str> = if let Some(group) = name.strip_prefix('{') {
                    let inside = rest[1..].split('}').next().unwrap_or_default();
                    let _ = group;
                    inside
                        .split(',')
                        .map(|item| item.trim().split("::").next().unwrap_or_default())
                        .collect()
                } else {
                    vec![name.as_str()]
                };
                for name in names {
                    if !name.is_empty() && !stems.iter().any(|stem| stem == name) {
                        found.push(format!("{}: super::{name}", child.display()));
                    }
                }
            }
        }
    }
    found.sort();
    found.dedup();
    assert!(
        found.is_empty(),
        "child modules that import their parent: {found:#?}"
    );
}

#[test]
fn file_errors_carry_their_path() {
    // fs-err wraps std's and tokio's file calls so every error names the file it is about.
    for krate in ["comfy-engine", "comfyui-mcp"] {
        for (path, text) in sources(&format!("crates/{krate}/src")) {
            let code = text.split("#[cfg(test)]").next().unwrap_or_default();
            for pattern in ["tokio::fs::", "std::fs::"] {
                let lines: Vec<&str> = uses(code, pattern)
                    .into_iter()
                    .filter(|line| !line.contains("std::fs::FileType"))
                    .collect();
                assert!(
                    lines.is_empty(),
                    "{path} uses {pattern} (use fs_err, whose errors name the path): {lines:?}"
                );
            }
        }
    }
}
