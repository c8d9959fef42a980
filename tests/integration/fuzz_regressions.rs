//! The fuzz targets' bodies (`fuzz/src/targets.rs`) over every committed seed
//! (`fuzz/corpus/<target>/`) and every saved crash (`fuzz/regressions/<target>/`), without
//! cargo-fuzz: a crash found once stays fixed, and the targets' own checks stay true of the seeds.

#[path = "../../fuzz/src/targets.rs"]
mod fuzz_targets;

use std::path::{Path, PathBuf};

/// The files of `fuzz/<kind>/<target>/`, sorted (none when the directory does not exist).
fn inputs(kind: &str, target: &str) -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz").join(kind).join(target);
    let Ok(entries) = std::fs::read_dir(&dir) else {
        return Vec::new();
    };
    let mut files: Vec<PathBuf> = entries.map(|e| e.expect("directory entry").path()).collect();
    files.retain(|path| path.is_file() && !path.file_name().is_some_and(|n| n.to_string_lossy().starts_with('.')));
    files.sort();
    files
}

fn run_all(kind: &str) -> usize {
    let mut count = 0;
    for (target, run) in fuzz_targets::TARGETS {
        for path in inputs(kind, target) {
            // Named before it runs: a panic (or an abort) shows which input it was.
            eprintln!("{target}: {}", path.display());
            run(&std::fs::read(&path).expect("read input"));
            count += 1;
        }
    }
    count
}

#[test]
fn seed_corpora() {
    assert!(run_all("corpus") > 0, "no seeds under fuzz/corpus");
}

#[test]
fn regressions() {
    run_all("regressions");
}
