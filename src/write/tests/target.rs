//! `check_target`.

use super::*;
use std::os::unix::fs::symlink;

const MOUNT: &str = "pods/uid/volumes/kubernetes.io~csi/v/mount";

/// A kubelet directory holding one volume's mount directory.
fn kubelet() -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let kubelet = dir.path().join("kubelet");
    fs::create_dir_all(kubelet.join(MOUNT)).unwrap();
    (dir, kubelet)
}

fn rejected(kubelet: &Path, target: &str, why: &str) {
    let error = check_target(kubelet, target).expect_err(target);
    assert_eq!(error.code(), ErrorCode::InvalidTarget, "{error}");
    let message = error.to_string();
    assert!(message.contains(target), "{message}");
    assert!(message.contains(why), "{message} (expected {why:?})");
}

fn path(base: &Path, rel: &str) -> String {
    format!("{}/{rel}", base.display())
}

#[test]
fn accepts_a_volume_mount_dir() {
    let (_dir, kubelet) = kubelet();
    let target = path(&kubelet, MOUNT);
    assert_eq!(check_target(&kubelet, &target).unwrap(), PathBuf::from(&target));
}

#[test]
fn accepts_a_symlinked_kubelet_dir() {
    let (dir, kubelet) = kubelet();
    let link = dir.path().join("kubelet-link");
    symlink(&kubelet, &link).unwrap();
    check_target(&link, &path(&link, MOUNT)).unwrap();
}

#[test]
fn rejects_paths_outside_pods() {
    let (_dir, kubelet) = kubelet();
    fs::create_dir_all(kubelet.join("plugins/x")).unwrap();
    fs::create_dir_all(kubelet.join("pods-other/x")).unwrap();
    rejected(&kubelet, &path(&kubelet, "plugins/x"), "not under");
    rejected(&kubelet, &path(&kubelet, "pods-other/x"), "not under");
    rejected(&kubelet, &path(&kubelet, "pods"), "pods directory itself");
    rejected(&kubelet, "/etc", "not under");
}

#[test]
fn rejects_unclean_or_relative_paths() {
    let (_dir, kubelet) = kubelet();
    let dotdot = path(&kubelet, "pods/uid/../uid/volumes/kubernetes.io~csi/v/mount");
    rejected(&kubelet, &dotdot, "\"..\" element");
    rejected(&kubelet, &path(&kubelet, "pods/uid/./volumes/kubernetes.io~csi/v/mount"), "\".\" element");
    rejected(&kubelet, &path(&kubelet, "pods//uid/volumes/kubernetes.io~csi/v/mount"), "empty");
    rejected(&kubelet, &format!("{}/", path(&kubelet, MOUNT)), "empty");
    rejected(&kubelet, MOUNT, "not an absolute path");
}

#[test]
fn rejects_a_symlink_component() {
    let (dir, kubelet) = kubelet();
    let elsewhere = dir.path().join("elsewhere");
    fs::create_dir(&elsewhere).unwrap();
    let volume = kubelet.join("pods/uid/volumes/kubernetes.io~csi/w");
    fs::create_dir(&volume).unwrap();
    symlink(&elsewhere, volume.join("mount")).unwrap();
    rejected(&kubelet, &path(&kubelet, "pods/uid/volumes/kubernetes.io~csi/w/mount"), "is a symlink");

    fs::create_dir_all(elsewhere.join("volumes/kubernetes.io~csi/v/mount")).unwrap();
    symlink(&elsewhere, kubelet.join("pods/uid2")).unwrap();
    rejected(&kubelet, &path(&kubelet, "pods/uid2/volumes/kubernetes.io~csi/v/mount"), "is a symlink");
}

#[test]
fn rejects_a_symlinked_pods_dir() {
    let (dir, kubelet) = kubelet();
    let other = dir.path().join("other");
    fs::create_dir(&other).unwrap();
    fs::rename(kubelet.join("pods"), other.join("pods")).unwrap();
    symlink(other.join("pods"), kubelet.join("pods")).unwrap();
    rejected(&kubelet, &path(&kubelet, MOUNT), "is a symlink");
}

#[test]
fn rejects_a_missing_target_or_a_file() {
    let (_dir, kubelet) = kubelet();
    rejected(&kubelet, &path(&kubelet, "pods/uid/volumes/kubernetes.io~csi/v/nope"), "does not exist");
    fs::write(kubelet.join("pods/uid/volumes/kubernetes.io~csi/v/file"), "x").unwrap();
    rejected(&kubelet, &path(&kubelet, "pods/uid/volumes/kubernetes.io~csi/v/file"), "not a directory");
}

#[test]
fn write_atomic_refuses_a_symlinked_target() {
    let (_dir, target) = super::target();
    let link = target.with_file_name("link");
    symlink(&target, &link).unwrap();
    let error = write_atomic(&link, &[file("a", 0o600, "1")]).unwrap_err();
    assert_eq!(error.code(), ErrorCode::InvalidTarget, "{error}");
    assert!(names(&target).is_empty());
}

/// `Targets` accepts a proven directory again from its `lstat`, and checks in full whatever
/// no longer leads to that directory.
#[test]
fn a_proven_target_is_rechecked_once_it_leads_elsewhere() {
    let (dir, kubelet) = kubelet();
    let targets = Targets::new(kubelet.clone());
    let target = path(&kubelet, MOUNT);
    let first = targets.check(&target).unwrap();
    assert_eq!(first.path, PathBuf::from(&target));
    assert!(first.stamp.is_some());
    assert_eq!(targets.check(&target).unwrap().stamp.map(|s| s.ino), first.stamp.map(|s| s.ino));
    // The pod's directory replaced by a symlink to another tree of the same shape.
    let elsewhere = dir.path().join("elsewhere");
    fs::create_dir_all(elsewhere.join("volumes/kubernetes.io~csi/v/mount")).unwrap();
    fs::rename(kubelet.join("pods/uid"), dir.path().join("moved")).unwrap();
    symlink(&elsewhere, kubelet.join("pods/uid")).unwrap();
    let error = targets.check(&target).expect_err("a symlinked component");
    assert!(error.to_string().contains("is a symlink"), "{error}");
}

#[test]
fn a_target_replaced_by_a_symlink_is_refused_after_being_proven() {
    let (dir, kubelet) = kubelet();
    let targets = Targets::new(kubelet.clone());
    let target = path(&kubelet, MOUNT);
    targets.check(&target).unwrap();
    let other = dir.path().join("other");
    fs::create_dir(&other).unwrap();
    fs::remove_dir(&target).unwrap();
    symlink(&other, &target).unwrap();
    assert!(targets.check(&target).is_err());
}
