//! A stack overflow as a crash libFuzzer reports and saves.
//!
//! A libFuzzer binary starts in libFuzzer's C `main`, so Rust's runtime setup (an alternate
//! signal stack and a SIGSEGV handler that reports stack overflows) never runs. A stack overflow
//! then faults with nowhere to run libFuzzer's own SIGSEGV handler, and the kernel kills the
//! process: no report, no saved input. libFuzzer keeps `SA_ONSTACK` from the SIGSEGV disposition
//! it replaces (for ASan), so giving the main thread an alternate stack and a default
//! disposition flagged `SA_ONSTACK` before libFuzzer installs its handlers is enough for it to
//! print "deadly signal" and save the input like any other crash. Under a sanitizer, which
//! installs its own handler and alternate stack first, nothing is changed.

use std::ptr;

/// Size of the alternate signal stack libFuzzer's crash handler runs on.
const ALT_STACK: usize = 256 * 1024;

/// Call once from the target's `init`, on the thread that runs the inputs (libFuzzer's main
/// thread).
pub fn report_stack_overflows() {
    // SAFETY: plain libc calls on valid, fully initialised arguments; the alternate stack is a
    // fresh anonymous mapping that is never unmapped, so it outlives the thread.
    unsafe {
        let mut current: libc::sigaction = std::mem::zeroed();
        assert_eq!(libc::sigaction(libc::SIGSEGV, ptr::null(), &mut current), 0, "sigaction");
        if current.sa_sigaction != libc::SIG_DFL {
            return; // a sanitizer handles SIGSEGV (and has its own alternate stack)
        }
        let flags = libc::PROT_READ | libc::PROT_WRITE;
        let stack = libc::mmap(ptr::null_mut(), ALT_STACK, flags, libc::MAP_PRIVATE | libc::MAP_ANONYMOUS, -1, 0);
        assert_ne!(stack, libc::MAP_FAILED, "mmap");
        let alt = libc::stack_t { ss_sp: stack, ss_flags: 0, ss_size: ALT_STACK };
        assert_eq!(libc::sigaltstack(&alt, ptr::null_mut()), 0, "sigaltstack");
        let mut action: libc::sigaction = std::mem::zeroed();
        action.sa_sigaction = libc::SIG_DFL;
        action.sa_flags = libc::SA_SIGINFO | libc::SA_ONSTACK;
        assert_eq!(libc::sigaction(libc::SIGSEGV, &action, ptr::null_mut()), 0, "sigaction");
    }
}
