//! The checks on tiny crates held in memory: each can fail, and passes when it should.

use super::*;

fn demo(files: &[(&str, &str)]) -> Crate {
    let files = files.iter().map(|(name, text)| (format!("demo/src/{name}"), text.to_string())).collect();
    Crate::from_sources("demo", files).expect("the demo crate is analysed")
}

fn function_of(name: &str, lines: usize) -> String {
    let body: String = (2..lines).map(|i| format!("    let _x{i} = {i};\n")).collect();
    format!("fn {name}() {{\n{body}}}\n")
}

#[test]
fn two_files_importing_each_other_are_a_cycle_with_the_paths_that_made_it() {
    let krate = demo(&[
        ("lib.rs", "mod a;\nmod b;\n"),
        ("a.rs", "use crate::b::B;\npub struct A;\n"),
        ("b.rs", "pub struct B;\nfn f() {\n    let _ = crate::a::A;\n}\n"),
    ]);
    let cycles = krate.file_cycles();
    assert_eq!(cycles.len(), 1, "{}", listing(&cycles));
    assert_eq!(cycles[0].members, ["demo/src/a.rs", "demo/src/b.rs"]);
    assert_eq!(cycles[0].way_round, ["demo/src/a.rs", "demo/src/b.rs", "demo/src/a.rs"]);
    let edges: Vec<_> =
        cycles[0].edges.iter().map(|s| (s.to.as_str(), s.evidence.text.as_str(), s.evidence.line)).collect();
    assert_eq!(edges, [("demo/src/b.rs", "crate::b::B", 1), ("demo/src/a.rs", "crate::a::A", 3)]);
    assert_eq!(krate.module_cycles()[0].members, ["a", "b"]);
    let shown = listing(&cycles);
    assert!(shown.contains("demo/src/b.rs → demo/src/a.rs   `crate::a::A` at demo/src/b.rs:3"), "{shown}");
}

#[test]
fn imports_pointing_one_way_are_no_cycle_and_test_modules_do_not_count() {
    let krate = demo(&[
        ("lib.rs", "mod a;\nmod b;\n"),
        ("a.rs", "use crate::b::B;\n#[cfg(test)]\nmod tests {\n    use super::*;\n}\n"),
        ("b.rs", "pub struct B;\n#[cfg(test)]\nmod tests {\n    use crate::a::*;\n}\n"),
    ]);
    assert!(krate.file_cycles().is_empty());
    assert!(krate.module_cycles().is_empty());
}

#[test]
fn files_of_one_folder_importing_each_other_are_no_top_level_cycle() {
    let krate = demo(&[
        ("lib.rs", "mod ws;\nmod state;\n"),
        ("ws/mod.rs", "mod conn;\npub struct Hub;\nfn f(_: conn::Handle) {}\n"),
        ("ws/conn.rs", "pub struct Handle;\nfn g(_: super::Hub) {}\n"),
        ("state.rs", "use crate::ws::Hub;\n"),
    ]);
    assert_eq!(krate.file_cycles()[0].members, ["demo/src/ws/conn.rs", "demo/src/ws/mod.rs"]);
    assert!(krate.module_cycles().is_empty());
}

#[test]
fn the_root_is_a_top_level_module_of_its_own() {
    let krate = demo(&[
        ("lib.rs", "mod ws;\npub struct Config;\nfn run() { ws::serve(); }\n"),
        ("ws.rs", "pub fn serve(_: crate::Config) {}\n"),
    ]);
    let cycles = krate.module_cycles();
    assert_eq!(cycles.len(), 1);
    assert_eq!(cycles[0].members, ["crate", "ws"]);
    assert_eq!(cycles[0].edges[0].evidence.text, "ws::serve");
}

#[test]
fn an_81_line_function_is_reported_and_an_80_line_one_is_not() {
    let lib = format!("mod a;\n{}", function_of("short", 80));
    let krate = demo(&[("lib.rs", &lib), ("a.rs", &format!("\n{}", function_of("long", 81)))]);
    let long = krate.long_functions(80);
    assert_eq!(long.len(), 1);
    assert_eq!(listing(&long), "demo/src/a.rs:2 `long`: 81 lines\n");
}

#[test]
fn files_over_the_limit_are_reported_but_not_test_files() {
    let lines = |n: usize| "// line\n".repeat(n);
    let lib = format!("mod a;\nmod b;\n#[cfg(test)]\nmod tests;\n{}", lines(10));
    let krate =
        demo(&[("lib.rs", &lib), ("a.rs", &lines(11)), ("b.rs", &lines(10)), ("tests.rs", &lines(50))]);
    assert_eq!(krate.long_files(12), [LongFile { file: "demo/src/lib.rs".into(), lines: 14 }]);
    assert_eq!(krate.long_files(10).len(), 2);
}

#[test]
fn a_missing_module_file_or_a_syntax_error_is_an_error() {
    let files = |text: &str| BTreeMap::from([("demo/src/lib.rs".to_string(), text.to_string())]);
    let missing = Crate::from_sources("demo", files("mod gone;\n")).err().expect("gone.rs is missing");
    assert!(matches!(missing, Error::MissingModule { .. }), "{missing}");
    let broken = Crate::from_sources("demo", files("fn f( {\n")).err().expect("it does not parse");
    assert!(matches!(broken, Error::Parse { line: 1, .. }), "{broken}");
}
