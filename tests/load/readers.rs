//! Reader threads: every pod's set read through one resolution of `..data` and every file read
//! alone through its visible link, each read checked; what they found is tallied.

use crate::set::{FILES, check_file, check_set};
use std::collections::HashMap;
use std::fs::File;
use std::io::Read as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

/// What the soak counted; every problem's first few descriptions are kept.
#[derive(Default)]
pub struct Tally {
    pub mounts: AtomicU64,
    pub failed_mounts: AtomicU64,
    /// Whole sets read through one resolution of `..data` and checked.
    pub sets_checked: AtomicU64,
    /// Files read alone through their visible links and checked.
    pub files_checked: AtomicU64,
    /// Sets replaced and removed while being read (the reader resolves `..data` again).
    pub sets_gone: AtomicU64,
    /// Times a reader found a pod's set at a newer generation than it last saw there.
    pub swaps_seen: AtomicU64,
    /// Torn sets, malformed or missing files: the atomic swap failed.
    pub inconsistent: AtomicU64,
    /// A set older than one the same reader saw before in the same pod.
    pub regressions: AtomicU64,
    pub problems: std::sync::Mutex<Vec<String>>,
}

impl Tally {
    pub fn problem(&self, counter: &AtomicU64, what: String) {
        counter.fetch_add(1, Ordering::Relaxed);
        let mut problems = self.problems.lock().unwrap_or_else(|p| p.into_inner());
        if problems.len() < 10 {
            problems.push(what);
        }
    }

    pub fn get(counter: &AtomicU64) -> u64 {
        counter.load(Ordering::Relaxed)
    }
}

/// A set read through one resolution of `..data`: the directory is opened once and every file
/// opened relative to it, so all of them come from the same set (what an application that reads
/// `..data/<file>` after resolving it gets). The reader pauses between files, so it is often
/// still reading a set when the next one is swapped in and the old one removed.
enum SetRead {
    Generation(u64),
    /// The set was replaced and removed while it was read.
    Gone,
}

/// The pause between two files of one set.
const BETWEEN_FILES: Duration = Duration::from_millis(1);

fn read_through_data(target: &Path) -> Result<SetRead, String> {
    let dir = match File::open(target.join("..data")) {
        Ok(dir) => dir,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Err("..data is missing".into()),
        Err(e) => return Err(format!("open ..data: {e}")),
    };
    let mut files = HashMap::new();
    for name in FILES {
        let flags = rustix::fs::OFlags::RDONLY | rustix::fs::OFlags::CLOEXEC;
        let fd = match rustix::fs::openat(&dir, name, flags, rustix::fs::Mode::empty()) {
            Ok(fd) => fd,
            Err(rustix::io::Errno::NOENT) => return Ok(SetRead::Gone),
            Err(e) => return Err(format!("open ..data/{name}: {e}")),
        };
        let mut text = String::new();
        File::from(fd).read_to_string(&mut text).map_err(|e| format!("read ..data/{name}: {e}"))?;
        files.insert(name, text);
        std::thread::sleep(BETWEEN_FILES);
    }
    check_set(&files).map(SetRead::Generation)
}

/// Every file read alone through its visible link: each must be there, whole and well formed.
fn read_visible(target: &Path) -> Result<(), String> {
    for name in FILES {
        let text = std::fs::read_to_string(target.join(name)).map_err(|e| format!("{name}: {e}"))?;
        check_file(name, &text)?;
    }
    Ok(())
}

/// A reader thread: visits every pod in turn until `stop`, reading its set both ways.
pub fn reader(targets: Arc<Vec<PathBuf>>, tally: Arc<Tally>, stop: Arc<AtomicBool>) -> std::thread::JoinHandle<()> {
    std::thread::spawn(move || {
        let mut last_seen = vec![0u64; targets.len()];
        while !stop.load(Ordering::Relaxed) {
            for (i, target) in targets.iter().enumerate() {
                read_pod(i, target, &mut last_seen[i], &tally);
            }
        }
    })
}

fn read_pod(i: usize, target: &Path, last_seen: &mut u64, tally: &Tally) {
    match read_through_data(target) {
        Ok(SetRead::Generation(g)) => {
            tally.sets_checked.fetch_add(1, Ordering::Relaxed);
            if g < *last_seen {
                tally.problem(&tally.regressions, format!("pod {i}: generation {g} after {last_seen}"));
            } else if g > *last_seen {
                tally.swaps_seen.fetch_add(1, Ordering::Relaxed);
                *last_seen = g;
            }
        }
        Ok(SetRead::Gone) => {
            tally.sets_gone.fetch_add(1, Ordering::Relaxed);
        }
        Err(e) => tally.problem(&tally.inconsistent, format!("pod {i} via ..data: {e}")),
    }
    match read_visible(target) {
        Ok(()) => {
            tally.files_checked.fetch_add(FILES.len() as u64, Ordering::Relaxed);
        }
        Err(e) => tally.problem(&tally.inconsistent, format!("pod {i} via its links: {e}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::set::files_at;
    use std::time::Instant;

    fn write(set: &Path, generation: u64) {
        for (name, text) in files_at(generation) {
            std::fs::write(set.join(name), text).expect("write");
        }
    }

    /// The readers are not blind: a writer that rewrites the files of the current set in place
    /// (what the swap of `..data` exists to prevent) is caught within moments.
    #[test]
    fn a_writer_that_rewrites_files_in_place_is_caught() {
        let target = tempfile::tempdir().expect("temp dir");
        let set = target.path().join("..set");
        std::fs::create_dir(&set).expect("set dir");
        write(&set, 0);
        std::os::unix::fs::symlink("..set", target.path().join("..data")).expect("..data");
        for name in FILES {
            std::os::unix::fs::symlink(format!("..data/{name}"), target.path().join(name)).expect("link");
        }
        let stop = Arc::new(AtomicBool::new(false));
        let writer = {
            let (set, stop) = (set.clone(), stop.clone());
            std::thread::spawn(move || (1..).take_while(|_| !stop.load(Ordering::Relaxed)).for_each(|g| write(&set, g)))
        };
        let (tally, mut last_seen) = (Tally::default(), 0);
        let deadline = Instant::now() + Duration::from_secs(10);
        while Tally::get(&tally.inconsistent) == 0 && Instant::now() < deadline {
            read_pod(0, target.path(), &mut last_seen, &tally);
        }
        stop.store(true, Ordering::Relaxed);
        writer.join().expect("writer");
        assert!(Tally::get(&tally.inconsistent) > 0, "an in-place writer went unnoticed");
    }
}
