//! A reader that resolves `..data` once never sees a mixed set while versions are swapped in.

use super::*;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

const VERSIONS: usize = 200;

fn version(n: usize) -> [OutFile; 2] {
    [file("user", 0o600, &format!("user-{n}")), file("pass", 0o600, &format!("pass-{n}"))]
}

/// Reads `user` and `pass` through one resolution of `..data`: `None` when the set vanished
/// in between (an old set being removed), else the two versions.
fn read_pair(target: &Path) -> Option<(String, String)> {
    let set = target.join(fs::read_link(target.join(DATA)).ok()?);
    let user = fs::read_to_string(set.join("user")).ok()?;
    let pass = fs::read_to_string(set.join("pass")).ok()?;
    Some((user.strip_prefix("user-")?.to_string(), pass.strip_prefix("pass-")?.to_string()))
}

/// Reads until `stop`; panics on a mixed pair; returns how many pairs were read.
fn reader(target: PathBuf, stop: Arc<AtomicBool>) -> usize {
    let mut pairs = 0;
    while !stop.load(Ordering::Relaxed) {
        if let Some((user, pass)) = read_pair(&target) {
            assert_eq!(user, pass, "mixed set: user-{user} with pass-{pass}");
            pairs += 1;
        }
    }
    pairs
}

#[test]
fn readers_never_see_a_mixed_set() {
    let (_dir, target) = target();
    write_atomic(&target, &version(0)).unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let thread = std::thread::spawn({
        let (target, stop) = (target.clone(), stop.clone());
        move || reader(target, stop)
    });
    for n in 1..=VERSIONS {
        assert_eq!(write_atomic(&target, &version(n)).unwrap(), written(&["pass", "user"]));
    }
    stop.store(true, Ordering::Relaxed);
    let pairs = thread.join().expect("the reader saw a mixed set");
    assert!(pairs > 0, "the reader never read a pair");
    assert_eq!(read(&target.join("user")), format!("user-{VERSIONS}"));
    assert_eq!(names(&target).len(), 4, "{:?}", names(&target));
}
