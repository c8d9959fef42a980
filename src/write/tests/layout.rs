//! The `..data` layout: first write, no-op rewrite, swaps, removals, nested files, leftovers.

use super::*;

fn user_pass(user: &str, pass: &str) -> Vec<OutFile> {
    vec![file("user", 0o600, user), file("pass", 0o400, pass)]
}

#[test]
fn first_write_creates_the_layout() {
    let (_dir, target) = target();
    let outcome = write_atomic(&target, &user_pass("alice", "s3cret")).unwrap();
    assert_eq!(outcome, written(&["pass", "user"]));

    let set = data_link(&target);
    assert!(is_timestamped(&set), "{set}");
    assert_eq!(names(&target), vec![set.clone(), DATA.to_string(), "pass".into(), "user".into()]);
    assert_eq!(mode_of(&target.join(&set)), 0o755);
    assert_eq!(link_of(&target.join("user")), "..data/user");
    assert_eq!(link_of(&target.join("pass")), "..data/pass");
    assert_eq!(mode_of(&target.join(&set).join("user")), 0o600);
    assert_eq!(mode_of(&target.join(&set).join("pass")), 0o400);
    assert_eq!(read(&target.join("user")), "alice");
    assert_eq!(read(&target.join("pass")), "s3cret");
}

#[test]
fn modes_are_exact_whatever_the_umask() {
    let (_dir, target) = target();
    let files = [file("open", 0o666, "a"), file("exec", 0o4755, "b"), file("d/none", 0o000, "c")];
    write_atomic(&target, &files).unwrap();
    let set = target.join(data_link(&target));
    assert_eq!(mode_of(&set.join("open")), 0o666);
    assert_eq!(mode_of(&set.join("exec")), 0o755, "setuid is dropped");
    assert_eq!(mode_of(&set.join("d/none")), 0o000);
    assert_eq!(mode_of(&set.join("d")), 0o755);
    assert_eq!(write_atomic(&target, &files).unwrap(), WriteOutcome::Unchanged);
}

#[test]
fn the_same_set_is_unchanged_and_touches_nothing() {
    let (_dir, target) = target();
    write_atomic(&target, &user_pass("alice", "s3cret")).unwrap();
    let link = data_link(&target);
    let before = snapshot(&target);
    std::thread::sleep(std::time::Duration::from_millis(20));

    let outcome = write_atomic(&target, &user_pass("alice", "s3cret")).unwrap();
    assert_eq!(outcome, WriteOutcome::Unchanged);
    assert_eq!(data_link(&target), link);
    assert_eq!(snapshot(&target), before);
}

#[test]
fn a_changed_file_swaps_the_whole_set() {
    let (_dir, target) = target();
    write_atomic(&target, &user_pass("alice", "s3cret")).unwrap();
    let old = data_link(&target);

    let outcome = write_atomic(&target, &user_pass("alice", "n3w")).unwrap();
    assert_eq!(outcome, written(&["pass"]));
    let new = data_link(&target);
    assert_ne!(new, old);
    assert!(!target.join(&old).exists(), "old set {old} still there");
    assert_eq!(names(&target), vec![new.clone(), DATA.to_string(), "pass".into(), "user".into()]);
    assert_eq!(read(&target.join(&new).join("user")), "alice");
    assert_eq!(read(&target.join("pass")), "n3w");
}

#[test]
fn a_mode_change_alone_is_a_change() {
    let (_dir, target) = target();
    write_atomic(&target, &user_pass("alice", "s3cret")).unwrap();
    let files = [file("user", 0o644, "alice"), file("pass", 0o400, "s3cret")];
    assert_eq!(write_atomic(&target, &files).unwrap(), written(&["user"]));
    assert_eq!(mode_of(&target.join(data_link(&target)).join("user")), 0o644);
}

#[test]
fn a_dropped_file_disappears() {
    let (_dir, target) = target();
    write_atomic(&target, &user_pass("alice", "s3cret")).unwrap();

    let outcome = write_atomic(&target, &[file("user", 0o600, "alice")]).unwrap();
    assert_eq!(outcome, written(&["pass"]));
    assert!(fs::symlink_metadata(target.join("pass")).is_err(), "pass still visible");
    assert_eq!(names(&target), vec![data_link(&target), DATA.to_string(), "user".into()]);
    assert_eq!(read_current(&target).unwrap(), vec![file("user", 0o600, "alice")]);
}

#[test]
fn nested_files_are_visible_through_their_first_element() {
    let (_dir, target) = target();
    let files = [file("app/config", 0o640, "cfg"), file("app/sub/key", 0o600, "k"), file("token", 0o600, "t")];
    assert_eq!(write_atomic(&target, &files).unwrap(), written(&["app/config", "app/sub/key", "token"]));
    assert_eq!(link_of(&target.join("app")), "..data/app");
    assert_eq!(read(&target.join("app/config")), "cfg");
    assert_eq!(read(&target.join("app/sub/key")), "k");
    let set = target.join(data_link(&target));
    assert_eq!(mode_of(&set.join("app")), 0o755);
    assert_eq!(mode_of(&set.join("app/sub")), 0o755);
    assert_eq!(mode_of(&set.join("app/config")), 0o640);

    write_atomic(&target, &[file("token", 0o600, "t")]).unwrap();
    assert!(fs::symlink_metadata(target.join("app")).is_err(), "app still visible");
}

#[test]
fn go_provider_leftovers_are_replaced() {
    let (_dir, target) = target();
    fs::write(target.join("user"), "old-user").unwrap();
    fs::create_dir_all(target.join("app")).unwrap();
    fs::write(target.join("app/config"), "old-config").unwrap();
    std::os::unix::fs::symlink("/etc/hostname", target.join("pass")).unwrap();
    fs::write(target.join("unrelated"), "kept").unwrap();

    let files = [file("user", 0o600, "alice"), file("pass", 0o400, "pw"), file("app/config", 0o644, "new")];
    write_atomic(&target, &files).unwrap();
    assert_eq!(link_of(&target.join("user")), "..data/user");
    assert_eq!(link_of(&target.join("pass")), "..data/pass");
    assert_eq!(link_of(&target.join("app")), "..data/app");
    assert_eq!(read(&target.join("user")), "alice");
    assert_eq!(read(&target.join("pass")), "pw");
    assert_eq!(read(&target.join("app/config")), "new");
    assert_eq!(read(&target.join("unrelated")), "kept", "entries not ours are left alone");
}

#[test]
fn an_unchanged_set_repairs_its_visible_links() {
    let (_dir, target) = target();
    write_atomic(&target, &user_pass("alice", "s3cret")).unwrap();
    let link = data_link(&target);
    fs::remove_file(target.join("user")).unwrap();
    std::os::unix::fs::symlink("..data/gone", target.join("gone")).unwrap();

    assert_eq!(write_atomic(&target, &user_pass("alice", "s3cret")).unwrap(), WriteOutcome::Unchanged);
    assert_eq!(data_link(&target), link);
    assert_eq!(link_of(&target.join("user")), "..data/user");
    assert!(fs::symlink_metadata(target.join("gone")).is_err(), "stale link kept");
}

#[test]
fn read_current_returns_the_set() {
    let (_dir, target) = target();
    assert!(read_current(&target).unwrap().is_empty());
    write_atomic(&target, &[file("b/c", 0o640, "2"), file("a", 0o600, "1")]).unwrap();
    assert_eq!(read_current(&target).unwrap(), vec![file("a", 0o600, "1"), file("b/c", 0o640, "2")]);
}

#[test]
fn a_symlink_inside_the_set_is_not_followed() {
    let (_dir, target) = target();
    write_atomic(&target, &[file("a", 0o600, "1")]).unwrap();
    let set = target.join(data_link(&target));
    fs::remove_file(set.join("a")).unwrap();
    std::os::unix::fs::symlink("/etc/hostname", set.join("a")).unwrap();
    assert_eq!(read_current(&target).unwrap_err().code(), ErrorCode::WriteFailed);
    // The writer replaces such a set instead of trusting it.
    assert_eq!(write_atomic(&target, &[file("a", 0o600, "1")]).unwrap(), written(&["a"]));
    assert_eq!(read_current(&target).unwrap(), vec![file("a", 0o600, "1")]);
}

#[test]
fn a_data_link_outside_the_target_is_never_followed() {
    let (dir, target) = target();
    fs::create_dir(dir.path().join("..2025_outside")).unwrap();
    std::os::unix::fs::symlink("../..2025_outside", target.join(DATA)).unwrap();
    assert_eq!(read_current(&target).unwrap_err().code(), ErrorCode::WriteFailed);
    write_atomic(&target, &[file("a", 0o600, "1")]).unwrap();
    assert!(is_timestamped(&data_link(&target)));
    assert!(dir.path().join("..2025_outside").is_dir(), "touched outside the target");
}

#[test]
fn a_failure_before_the_swap_leaves_the_target_as_it_was() {
    let (_dir, target) = target();
    write_atomic(&target, &user_pass("alice", "s3cret")).unwrap();
    let before = snapshot(&target);
    // Twice the same path gets past no validation; staged directly, the second create fails.
    let twice = [file("x", 0o600, "hunter1"), file("x", 0o600, "hunter2")];
    let error = stage::stage_and_swap(&target, &twice).unwrap_err();
    assert_eq!(error.code(), ErrorCode::WriteFailed);
    assert!(error.to_string().contains("\"x\""), "{error}");
    assert!(!error.to_string().contains("hunter"), "{error}");
    assert_eq!(snapshot(&target).keys().collect::<Vec<_>>(), before.keys().collect::<Vec<_>>());
}

#[test]
fn invalid_files_are_rejected_before_anything_is_written() {
    let (_dir, target) = target();
    for bad in ["", "/abs", "..hidden", "a/../b", "a//b", "a/", "./a"] {
        let error = write_atomic(&target, &[file(bad, 0o600, "x")]).unwrap_err();
        assert_eq!(error.code(), ErrorCode::Internal, "{bad:?}");
    }
    let collision = [file("a/b", 0o600, "x"), file("a", 0o600, "y")];
    assert_eq!(write_atomic(&target, &collision).unwrap_err().code(), ErrorCode::Internal);
    let twice = [file("a", 0o600, "x"), file("a", 0o600, "y")];
    assert_eq!(write_atomic(&target, &twice).unwrap_err().code(), ErrorCode::Internal);
    assert!(names(&target).is_empty());
}

#[test]
fn sets_left_by_an_interrupted_write_are_removed_by_the_next_write() {
    let (_dir, target) = target();
    write_atomic(&target, &[file("a", 0o600, "1")]).unwrap();
    fs::create_dir_all(target.join("..2020_01_01_00_00_00.42/half")).unwrap();
    std::os::unix::fs::symlink("..2020_01_01_00_00_00.42", target.join(DATA_TMP)).unwrap();
    write_atomic(&target, &[file("a", 0o600, "2")]).unwrap();
    assert_eq!(names(&target), vec![data_link(&target), DATA.to_string(), "a".into()]);
}
