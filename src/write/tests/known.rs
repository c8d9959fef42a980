//! The record of sets written by this process: it shortcuts only what it can prove, and any
//! change made behind its back falls back to reading the files.

use super::*;

fn user_pass(user: &str, pass: &str) -> Vec<OutFile> {
    vec![file("user", 0o600, user), file("pass", 0o400, pass)]
}

#[test]
fn a_set_written_here_is_known_unchanged_without_reading_it() {
    let (_dir, target) = target();
    let known = KnownSets::default();
    write_known(&target, &user_pass("alice", "s3cret"), &known).unwrap();
    assert!(known.unchanged(&target, &user_pass("alice", "s3cret")));
    assert!(!known.unchanged(&target, &user_pass("alice", "n3w")), "other contents");
    assert!(!known.unchanged(&target, &[file("user", 0o644, "alice"), file("pass", 0o400, "s3cret")]), "other mode");
    assert!(!known.unchanged(&target, &[file("user", 0o600, "alice")]), "a file less");
    let before = snapshot(&target);
    assert_eq!(write_known(&target, &user_pass("alice", "s3cret"), &known).unwrap(), WriteOutcome::Unchanged);
    assert_eq!(snapshot(&target), before);
}

#[test]
fn a_set_swapped_by_someone_else_is_not_trusted() {
    let (_dir, target) = target();
    let known = KnownSets::default();
    write_known(&target, &user_pass("alice", "s3cret"), &known).unwrap();
    // Another writer (the driver, a second process) swaps in a different set.
    write_atomic(&target, &user_pass("mallory", "x")).unwrap();
    assert!(!known.unchanged(&target, &user_pass("alice", "s3cret")));
    let outcome = write_known(&target, &user_pass("alice", "s3cret"), &known).unwrap();
    assert_eq!(outcome, written(&["pass", "user"]));
    assert_eq!(read(&target.join("user")), "alice");
}

#[test]
fn a_removed_visible_link_is_repaired() {
    let (_dir, target) = target();
    let known = KnownSets::default();
    write_known(&target, &user_pass("alice", "s3cret"), &known).unwrap();
    fs::remove_file(target.join("user")).unwrap();
    assert!(!known.unchanged(&target, &user_pass("alice", "s3cret")));
    assert_eq!(write_known(&target, &user_pass("alice", "s3cret"), &known).unwrap(), WriteOutcome::Unchanged);
    assert_eq!(link_of(&target.join("user")), "..data/user");
}

#[test]
fn a_set_found_unchanged_on_disk_becomes_known() {
    let (_dir, target) = target();
    write_atomic(&target, &user_pass("alice", "s3cret")).unwrap();
    // A fresh process: nothing known until the files were read once.
    let known = KnownSets::default();
    assert!(!known.unchanged(&target, &user_pass("alice", "s3cret")));
    assert_eq!(write_known(&target, &user_pass("alice", "s3cret"), &known).unwrap(), WriteOutcome::Unchanged);
    assert!(known.unchanged(&target, &user_pass("alice", "s3cret")));
}

#[test]
fn a_failed_write_forgets_the_target() {
    let (_dir, target) = target();
    let known = KnownSets::default();
    write_known(&target, &user_pass("alice", "s3cret"), &known).unwrap();
    // `..data` replaced by a directory: the layout is broken and the write fails.
    let set = data_link(&target);
    fs::remove_file(target.join(DATA)).unwrap();
    fs::create_dir(target.join(DATA)).unwrap();
    assert!(write_known(&target, &user_pass("bob", "n3w"), &known).is_err());
    assert!(!known.unchanged(&target, &user_pass("alice", "s3cret")));
    assert!(target.join(&set).join("user").exists(), "the old set is still there");
}

/// Settled stamps for the tests below: long enough that the coarse ctime clock has ticked.
const TEST_SETTLE: std::time::Duration = std::time::Duration::from_millis(30);

/// Known unchanged once by listing (the stamp is kept), then by the stamp alone.
fn known_by_stamp(target: &Path, files: &[OutFile]) -> KnownSets {
    let known = KnownSets::with_settle(TEST_SETTLE);
    write_known(target, files, &known).unwrap();
    std::thread::sleep(TEST_SETTLE * 2);
    assert!(known.unchanged(target, files), "listed and stamped");
    assert!(known.unchanged(target, files), "by the stamp");
    known
}

#[test]
fn a_link_removed_after_the_stamp_is_noticed() {
    let (_dir, target) = target();
    let known = known_by_stamp(&target, &user_pass("alice", "s3cret"));
    fs::remove_file(target.join("user")).unwrap();
    assert!(!known.unchanged(&target, &user_pass("alice", "s3cret")), "the target's ctime changed");
    assert_eq!(write_known(&target, &user_pass("alice", "s3cret"), &known).unwrap(), WriteOutcome::Unchanged);
    assert_eq!(link_of(&target.join("user")), "..data/user");
}

#[test]
fn a_set_swapped_after_the_stamp_is_noticed() {
    let (_dir, target) = target();
    let known = known_by_stamp(&target, &user_pass("alice", "s3cret"));
    write_atomic(&target, &user_pass("mallory", "x")).unwrap();
    assert!(!known.unchanged(&target, &user_pass("alice", "s3cret")));
}

#[test]
fn a_fresh_stamp_is_not_kept() {
    let (_dir, target) = target();
    let known = KnownSets::with_settle(std::time::Duration::from_secs(3600));
    write_known(&target, &user_pass("alice", "s3cret"), &known).unwrap();
    assert!(known.unchanged(&target, &user_pass("alice", "s3cret")));
    // Not settled: the next check lists again and sees the removal at once.
    fs::remove_file(target.join("pass")).unwrap();
    assert!(!known.unchanged(&target, &user_pass("alice", "s3cret")));
}
