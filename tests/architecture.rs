//! The arrows between kwatch's parts, read from the `crate::` paths of every source file: no import cycle between
//! top-level modules, and none of the arrows ARCHITECTURE.md says must never exist.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::{Path, PathBuf};

/// One source file: its path under src/ (`tui/render/header.rs`) and the crate paths it names: all of them, and
/// those outside unit-test code (`#[cfg(test)]` items, and files only such an item declares).
struct Source {
    rel: String,
    uses: BTreeSet<Vec<String>>,
    shipped_uses: BTreeSet<Vec<String>>,
}

/// The screen of the live view: what draws and what the UI thread runs (not `tui/event.rs`, `tui/event_log.rs` and
/// `tui/perform.rs`, which run on the collector thread, nor `tui/playback.rs`, replay's source thread).
const SCREEN: &[&str] = &[
    "tui/act",
    "tui/app",
    "tui/render",
    "tui/explain",
    "tui/format",
    "tui/history",
    "tui/keys",
    "tui/prepare",
    "tui/replay",
];

/// What reaches the kernel, /proc or other processes.
const IO: &[&str] = &[
    "diag",
    "proc",
    "netns",
    "sockopt",
    "sysctl",
    "held_dead",
    "rlimit",
    "collect",
    "act",
    "events::listener",
    "events::feed",
];

/// Pure parts of modules that do I/O, which anyone may name: what `kill` and `keepalive` act on and how they say it.
const PURE_PARTS: &[&str] = &["act::plan"];

/// The modes only `run` starts.
const MODES: &[&str] = &[
    "once", "watch", "serve", "generate", "tui", "record", "replay", "run",
];

/// Who may read the command line: `run`, `config` and the modes that take their own arguments or the `Config`.
const COMMAND_LINE_READERS: &[&str] = &[
    "run", "config", "act", "serve", "generate", "once", "watch", "record", "replay",
];

/// An arrow that must never exist: a file under one of `from` (path prefixes under src/; empty: every file except
/// those under `except`) naming a path that starts with one of `to`.
struct Never {
    from: &'static [&'static str],
    except: &'static [&'static str],
    to: &'static [&'static str],
    why: &'static str,
}

const NEVER: &[Never] = &[
    Never {
        from: &["output"],
        except: &[],
        to: IO,
        why: "the reports never reach the kernel or /proc",
    },
    Never {
        from: SCREEN,
        except: &[],
        to: IO,
        why: "the screen never reaches the kernel or /proc",
    },
    Never {
        from: SCREEN,
        except: &[],
        to: &["recording"],
        why: "the screen never reads the recording: replay's source thread (tui/playback.rs) does",
    },
    Never {
        from: &["output"],
        except: &[],
        to: &["recording"],
        why: "the reports render a snapshot, wherever it came from",
    },
    Never {
        from: &["events"],
        except: &[],
        to: &["output"],
        why: "events are their own data: the reports and the --watch line format sit above them",
    },
    Never {
        from: &[],
        except: &["run"],
        to: MODES,
        why: "only run starts a mode",
    },
    Never {
        from: &[],
        except: COMMAND_LINE_READERS,
        to: &["cli", "config"],
        why: "below the command line nothing reads it",
    },
];

/// What the pure layers may name: the model nothing of kwatch, analysis only the model and pure helpers.
const ONLY: &[(&str, &[&str], &str)] = &[
    (
        "model",
        &["model"],
        "the model is plain data and imports nothing of kwatch",
    ),
    (
        "analyze",
        &["analyze", "model", "duration", "format"],
        "analysis is pure: the model and formatting only",
    ),
    (
        "testing",
        &["testing", "model"],
        "test support names only the model, so any module's tests may use it without a cycle",
    ),
];

/// Whether the file `rel` (`tui/render/header.rs`) is `prefix` (`tui/render`, `tui/app`) or under it.
fn is_under(rel: &str, prefix: &str) -> bool {
    let rel = rel.strip_suffix(".rs").unwrap_or(rel);
    rel == prefix || rel.starts_with(&format!("{prefix}/"))
}

/// Whether the crate path `path` (`[events, listener, Listener]`) is the module `module` (`events::listener`) or
/// inside it.
fn names(path: &[String], module: &str) -> bool {
    let module: Vec<&str> = module.split("::").collect();
    path.len() >= module.len() && path.iter().zip(&module).all(|(a, b)| a == b)
}

fn sources() -> Vec<Source> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    walk(&root, &mut files);
    let mut read = Vec::new();
    let mut test_files = BTreeSet::new();
    for path in files {
        if path.ends_with("main.rs") || path.ends_with("lib.rs") {
            continue;
        }
        let rel = path
            .strip_prefix(&root)
            .expect("under src")
            .to_string_lossy()
            .into_owned();
        let code = code_only(&fs::read_to_string(&path).expect("read source"));
        let (shipped, test_mods) = without_test_items(&code);
        let dir = rel.strip_suffix(".rs").unwrap_or(&rel).to_string();
        test_files.extend(test_mods.into_iter().map(|m| format!("{dir}/{m}.rs")));
        read.push((rel, code, shipped));
    }
    read.into_iter()
        .map(|(rel, code, shipped)| {
            let own = module_path(&rel);
            // A test file and everything under it is test code.
            let test = test_files
                .iter()
                .any(|t| rel == *t || is_under(&rel, t.strip_suffix(".rs").unwrap_or(t)));
            Source {
                uses: crate_paths(&code, &own),
                shipped_uses: if test {
                    BTreeSet::new()
                } else {
                    crate_paths(&shipped, &own)
                },
                rel,
            }
        })
        .collect()
}

/// `code` (from [`code_only`]) with every `#[cfg(test)]` item blanked out, and the names of the file modules such
/// items declare (`#[cfg(test)] mod tests;`).
fn without_test_items(code: &str) -> (String, Vec<String>) {
    const MARK: &str = "#[cfg(test)]";
    let mut out = code.as_bytes().to_vec();
    let mut test_mods = Vec::new();
    let bytes = code.as_bytes();
    let mut from = 0;
    while let Some(at) = code[from..].find(MARK).map(|k| from + k) {
        let mut i = at + MARK.len();
        // Further attributes, then the item: up to `;` or the end of its first braced block.
        loop {
            while i < bytes.len() && bytes[i].is_ascii_whitespace() {
                i += 1;
            }
            if !code[i..].starts_with("#[") {
                break;
            }
            i = code[i..].find(']').map_or(bytes.len(), |k| i + k + 1);
        }
        let item = i;
        let mut depth = 0usize;
        while i < bytes.len() {
            match bytes[i] {
                b'{' => depth += 1,
                b'}' => {
                    depth = depth.saturating_sub(1);
                    if depth == 0 {
                        break;
                    }
                }
                b';' if depth == 0 => break,
                _ => {}
            }
            i += 1;
        }
        let end = (i + 1).min(bytes.len());
        let words: Vec<&str> = code[item..end]
            .split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .filter(|w| !w.is_empty())
            .collect();
        if code[item..end].ends_with(';') {
            if let [.., "mod", name] = words.as_slice() {
                test_mods.push((*name).to_string());
            }
        }
        for b in &mut out[at..end] {
            if *b != b'\n' {
                *b = b' ';
            }
        }
        from = end;
    }
    (String::from_utf8(out).expect("ascii"), test_mods)
}

fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in fs::read_dir(dir).expect("read src") {
        let path = entry.expect("dir entry").path();
        if path.is_dir() {
            walk(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// `tui/render/header.rs` -> [tui, render, header]; `tui.rs` -> [tui].
fn module_path(rel: &str) -> Vec<String> {
    let stem = rel.strip_suffix(".rs").unwrap_or(rel);
    let stem = stem.strip_suffix("/mod").unwrap_or(stem);
    stem.split('/').map(str::to_string).collect()
}

/// The source without comments and string literals, so prose and messages that mention a path are not arrows.
fn code_only(text: &str) -> String {
    let mut out = Vec::with_capacity(text.len());
    let bytes = text.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i..].starts_with(b"//") {
            while i < bytes.len() && bytes[i] != b'\n' {
                i += 1;
            }
        } else if bytes[i..].starts_with(b"/*") {
            i += 2;
            while i < bytes.len() && !bytes[i..].starts_with(b"*/") {
                i += 1;
            }
            i += 2;
        } else if bytes[i] == b'"' && !(i > 0 && bytes[i - 1] == b'\'') {
            let raw = i > 0 && (bytes[i - 1] == b'r' || bytes[i - 1] == b'#');
            i += 1;
            while i < bytes.len() && bytes[i] != b'"' {
                if bytes[i] == b'\\' && !raw {
                    i += 1;
                }
                i += 1;
            }
            i += 1;
            out.extend_from_slice(b"\"\"");
        } else {
            // Paths are ASCII: anything else becomes a space, so every byte offset is a character boundary.
            out.push(if bytes[i].is_ascii() { bytes[i] } else { b' ' });
            i += 1;
        }
    }
    String::from_utf8(out).expect("ascii")
}

/// Every `crate::a::b` path (braced groups expanded one level) and `super::` path resolved against `own`.
fn crate_paths(code: &str, own: &[String]) -> BTreeSet<Vec<String>> {
    let mut paths = BTreeSet::new();
    let bytes = code.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        let ident_start =
            i == 0 || !is_ident(bytes[i - 1]) && bytes[i - 1] != b'$' && bytes[i - 1] != b':';
        if ident_start && code[i..].starts_with("crate::") {
            collect_after(code, i + "crate::".len(), Vec::new(), &mut paths);
            i += "crate::".len();
        } else if ident_start && code[i..].starts_with("super::") {
            // A file `a/b/c.rs` is module a::b::c; `super` is a::b.
            let mut base: Vec<String> = own[..own.len().saturating_sub(1)].to_vec();
            let mut j = i + "super::".len();
            while code[j..].starts_with("super::") {
                base.pop();
                j += "super::".len();
            }
            collect_after(code, j, base, &mut paths);
            i = j;
        } else {
            i += 1;
        }
    }
    paths
}

fn is_ident(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_'
}

/// Reads `a::b::{c, d::e}` from `start`, adding each full path (below `prefix`) to `out`.
fn collect_after(code: &str, start: usize, prefix: Vec<String>, out: &mut BTreeSet<Vec<String>>) {
    let bytes = code.as_bytes();
    let mut path = prefix;
    let mut i = start;
    loop {
        while i < bytes.len() && bytes[i].is_ascii_whitespace() {
            i += 1;
        }
        if i < bytes.len() && bytes[i] == b'{' {
            // Split the group at depth one and read each member.
            let mut depth = 0;
            let mut member_start = i + 1;
            let mut j = i;
            while j < bytes.len() {
                match bytes[j] {
                    b'{' => depth += 1,
                    b'}' | b',' if depth == 1 => {
                        let member = &code[member_start..j];
                        if !member.trim().is_empty() && member.trim() != "self" {
                            let mut inner = BTreeSet::new();
                            collect_after(member, 0, path.clone(), &mut inner);
                            out.extend(inner);
                        }
                        member_start = j + 1;
                        if bytes[j] == b'}' {
                            break;
                        }
                    }
                    b'}' => depth -= 1,
                    _ => {}
                }
                j += 1;
            }
            if !path.is_empty() {
                out.insert(path);
            }
            return;
        }
        let ident_end = (i..bytes.len())
            .find(|&k| !is_ident(bytes[k]))
            .unwrap_or(bytes.len());
        if ident_end == i {
            break;
        }
        path.push(code[i..ident_end].to_string());
        i = ident_end;
        if code[i..].starts_with("::") {
            i += 2;
        } else {
            break;
        }
    }
    if !path.is_empty() {
        out.insert(path);
    }
}

/// The top-level module graph: `from -> {to}`, leaving out a module's arrows to itself.
fn top_level_graph(sources: &[Source]) -> BTreeMap<String, BTreeMap<String, BTreeSet<String>>> {
    let mut graph: BTreeMap<String, BTreeMap<String, BTreeSet<String>>> = BTreeMap::new();
    for source in sources {
        let from = module_path(&source.rel)[0].clone();
        graph.entry(from.clone()).or_default();
        for path in &source.uses {
            let to = &path[0];
            if *to != from && is_module(to) {
                graph
                    .entry(from.clone())
                    .or_default()
                    .entry(to.clone())
                    .or_default()
                    .insert(source.rel.clone());
            }
        }
    }
    graph
}

/// Whether `name` is a top-level module (a file or directory under src/), not an item re-exported at the root.
fn is_module(name: &str) -> bool {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    root.join(format!("{name}.rs")).exists() || root.join(name).is_dir()
}

/// Strongly connected components with more than one module (Tarjan), each sorted.
fn cycles(graph: &BTreeMap<String, BTreeMap<String, BTreeSet<String>>>) -> Vec<Vec<String>> {
    struct State<'a> {
        graph: &'a BTreeMap<String, BTreeMap<String, BTreeSet<String>>>,
        index: BTreeMap<&'a str, usize>,
        low: BTreeMap<&'a str, usize>,
        stack: Vec<&'a str>,
        on_stack: BTreeSet<&'a str>,
        next: usize,
        found: Vec<Vec<String>>,
    }
    fn visit<'a>(s: &mut State<'a>, v: &'a str) {
        s.index.insert(v, s.next);
        s.low.insert(v, s.next);
        s.next += 1;
        s.stack.push(v);
        s.on_stack.insert(v);
        if let Some(edges) = s.graph.get(v) {
            for w in edges.keys() {
                let w = w.as_str();
                if !s.graph.contains_key(w) {
                    continue;
                }
                if !s.index.contains_key(w) {
                    visit(s, w);
                    let low = s.low[v].min(s.low[w]);
                    s.low.insert(v, low);
                } else if s.on_stack.contains(w) {
                    let low = s.low[v].min(s.index[w]);
                    s.low.insert(v, low);
                }
            }
        }
        if s.low[v] == s.index[v] {
            let mut component = Vec::new();
            while let Some(w) = s.stack.pop() {
                s.on_stack.remove(w);
                component.push(w.to_string());
                if w == v {
                    break;
                }
            }
            if component.len() > 1 {
                component.sort();
                s.found.push(component);
            }
        }
    }
    let mut state = State {
        graph,
        index: BTreeMap::new(),
        low: BTreeMap::new(),
        stack: Vec::new(),
        on_stack: BTreeSet::new(),
        next: 0,
        found: Vec::new(),
    };
    for v in graph.keys() {
        if !state.index.contains_key(v.as_str()) {
            visit(&mut state, v);
        }
    }
    state.found
}

#[test]
fn no_import_cycle_between_top_level_modules() {
    let sources = sources();
    let graph = top_level_graph(&sources);
    let mut report = String::new();
    for component in cycles(&graph) {
        report.push_str(&format!("cycle among {}:\n", component.join(", ")));
        for from in &component {
            for (to, files) in &graph[from] {
                if component.contains(to) {
                    let files: Vec<&str> = files.iter().map(String::as_str).collect();
                    report.push_str(&format!("  {from} -> {to} ({})\n", files.join(", ")));
                }
            }
        }
    }
    assert!(
        report.is_empty(),
        "import cycles between top-level modules:\n{report}"
    );
}

/// The arrows of `sources` that a rule forbids, one line each.
fn forbidden(sources: &[Source]) -> String {
    let mut report = String::new();
    for source in sources {
        let top = &module_path(&source.rel)[0];
        for rule in NEVER {
            let inside = if rule.from.is_empty() {
                !rule.except.iter().any(|e| is_under(&source.rel, e))
            } else {
                rule.from.iter().any(|f| is_under(&source.rel, f))
                    && !rule.except.iter().any(|e| is_under(&source.rel, e))
            };
            if !inside {
                continue;
            }
            for path in &source.shipped_uses {
                // A module naming its own parts is no arrow.
                if path[0] == *top {
                    continue;
                }
                if rule.to.iter().any(|to| names(path, to))
                    && !PURE_PARTS.iter().any(|pure| names(path, pure))
                {
                    report.push_str(&format!(
                        "{}: crate::{} ({})\n",
                        source.rel,
                        path.join("::"),
                        rule.why
                    ));
                }
            }
        }
        for (layer, allowed, why) in ONLY {
            if top != layer {
                continue;
            }
            for path in &source.shipped_uses {
                if is_module(&path[0]) && !allowed.contains(&path[0].as_str()) {
                    report.push_str(&format!(
                        "{}: crate::{} ({why})\n",
                        source.rel,
                        path.join("::")
                    ));
                }
            }
        }
    }
    report
}

#[test]
fn the_never_arrows_do_not_exist() {
    let report = forbidden(&sources());
    assert!(report.is_empty(), "arrows that must never exist:\n{report}");
}

/// A rule naming a file or module that no longer exists would pass for ever: every name must be found.
#[test]
fn the_rules_name_what_exists() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let exists =
        |prefix: &str| root.join(format!("{prefix}.rs")).exists() || root.join(prefix).is_dir();
    let mut missing = Vec::new();
    for rule in NEVER {
        for name in rule.from.iter().chain(rule.except) {
            if !exists(name) {
                missing.push(name.to_string());
            }
        }
        for module in rule.to.iter().chain(PURE_PARTS) {
            if !exists(&module.replace("::", "/")) {
                missing.push(module.to_string());
            }
        }
    }
    for (layer, allowed, _) in ONLY {
        for name in std::iter::once(layer).chain(allowed.iter()) {
            if !exists(name) {
                missing.push(name.to_string());
            }
        }
    }
    assert!(
        missing.is_empty(),
        "rules name what does not exist: {missing:?}"
    );
    // And the checker sees arrows at all: the model is named from almost everywhere.
    let sources = sources();
    assert!(sources.len() > 50, "{} source files", sources.len());
    let graph = top_level_graph(&sources);
    assert!(graph["output"].contains_key("model"));
    assert!(graph["collect"].contains_key("diag"));
}

/// The checker itself: a cycle and a forbidden arrow planted in text are found.
#[test]
fn the_checker_reads_grouped_and_relative_paths() {
    let code = code_only(
        "use crate::{model::{Connection, State}, diag};\n// use crate::netns;\nlet s = \"crate::proc\";\n\
         use super::super::output::table;\nfn f() { crate::collect::collect() }",
    );
    let own = module_path("tui/render/header.rs");
    let paths: Vec<String> = crate_paths(&code, &own)
        .into_iter()
        .map(|p| p.join("::"))
        .collect();
    assert!(
        paths.contains(&"model::Connection".to_string()),
        "{paths:?}"
    );
    assert!(paths.contains(&"diag".to_string()), "{paths:?}");
    assert!(
        paths.contains(&"tui::output::table".to_string()),
        "{paths:?}"
    );
    assert!(paths.contains(&"collect::collect".to_string()), "{paths:?}");
    assert!(
        !paths
            .iter()
            .any(|p| p.starts_with("netns") || p.starts_with("proc")),
        "{paths:?}"
    );

    // Test items are left out of what ships, a planted arrow in shipped code is reported.
    let planted = code_only(
        "use crate::model::Snapshot;\n#[cfg(test)]\n#[allow(x)]\nmod tests {\n    use crate::proc::scan;\n    fn f() { { crate::diag::x(); } }\n}\n\
         #[cfg(test)]\nmod fixture;\nfn g() { crate::sockopt::fill() }",
    );
    let (shipped, test_mods) = without_test_items(&planted);
    assert_eq!(test_mods, ["fixture"]);
    let source = Source {
        rel: "output/table.rs".into(),
        uses: crate_paths(&planted, &module_path("output/table.rs")),
        shipped_uses: crate_paths(&shipped, &module_path("output/table.rs")),
    };
    assert_eq!(source.uses.len(), 4, "{:?}", source.uses);
    let report = forbidden(&[source]);
    assert_eq!(
        report,
        "output/table.rs: crate::sockopt::fill (the reports never reach the kernel or /proc)\n"
    );

    let mut graph: BTreeMap<String, BTreeMap<String, BTreeSet<String>>> = BTreeMap::new();
    for (from, to) in [("a", "b"), ("b", "c"), ("c", "a"), ("c", "d")] {
        graph
            .entry(from.into())
            .or_default()
            .entry(to.into())
            .or_default();
        graph.entry(to.into()).or_default();
    }
    assert_eq!(
        cycles(&graph),
        vec![vec!["a".to_string(), "b".to_string(), "c".to_string()]]
    );
}
