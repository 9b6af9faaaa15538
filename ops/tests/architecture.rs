//! The architecture of the Rust crates, checked from their parsed sources (see
//! `ops_checks::architecture` for how imports are resolved): inside a crate, files and top-level
//! modules import each other in no circle, and no source file or function outgrows its limit.
//! Each failure lists every offender, so one run is the whole to-do list.

use ops_checks::architecture::{Crate, listing};

/// The crates whose `src/` trees are checked.
const CRATES: [&str; 4] = ["gateway", "shared", "messages", "loadgen"];
/// The most lines a source file outside tests may have.
const MAX_FILE_LINES: usize = 600;
/// The most lines a function may have, from its `fn` keyword to its closing brace.
const MAX_FUNCTION_LINES: usize = 80;

fn crates() -> Vec<Crate> {
    CRATES
        .iter()
        .map(|name| Crate::read(name).unwrap_or_else(|e| panic!("cannot analyse {name}: {e}")))
        .collect()
}

fn assert_none<T: std::fmt::Display>(offenders: Vec<T>, what: &str) {
    assert!(offenders.is_empty(), "{} {what}:\n{}", offenders.len(), listing(&offenders));
}

#[test]
fn the_files_of_a_crate_import_each_other_in_no_circle() {
    let cycles = crates().iter().flat_map(Crate::file_cycles).collect();
    assert_none(
        cycles,
        "circles of imports between files (each: its files, one way round, every import among them)",
    );
}

#[test]
fn the_top_level_modules_of_a_crate_import_each_other_in_no_circle() {
    let cycles = crates().iter().flat_map(Crate::module_cycles).collect();
    assert_none(
        cycles,
        "circles of imports between top-level modules (each: its modules, one way round, every import among them)",
    );
}

#[test]
fn no_source_file_is_longer_than_the_limit() {
    let files = crates().iter().flat_map(|c| c.long_files(MAX_FILE_LINES)).collect();
    assert_none(files, &format!("source files over {MAX_FILE_LINES} lines"));
}

#[test]
fn no_function_is_longer_than_the_limit() {
    let functions = crates().iter().flat_map(|c| c.long_functions(MAX_FUNCTION_LINES)).collect();
    assert_none(functions, &format!("functions over {MAX_FUNCTION_LINES} lines"));
}
