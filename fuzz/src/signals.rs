//! A stack overflow as a crash libFuzzer reports and saves.
//!
//! A libFuzzer binary starts in libFuzzer's C `main`, so Rust's runtime setup (an alternate
//! signal stack and a SIGSEGV handler that reports stack overflows) never runs. A stack overflow
//! then faults with nowhere to run libFuzzer's own SIGSEGV handler, and the kernel kills the
//! process: no report, no saved input. libFuzzer keeps `SA_ONSTACK` from the SIGSEGV disposition
//! it replaces (for ASan), so giving the main thread an alternate stack and a default
//! disposition flagged `SA_ONSTACK` before libFuzzer installs its handlers is enough for it to
//! print "deadly signal" and save the input like any other crash.

/// Size of the alternate signal stack libFuzzer's crash handler runs on.
const ALT_STACK: usize = 256 * 1024;

/// Call once from the target's `init`, on the thread that runs the inputs (libFuzzer's main
/// thread).
pub fn report_stack_overflows() {
    let stack: &'static mut [u8] = Box::leak(vec![0u8; ALT_STACK].into_boxed_slice());
    let alt = libc::stack_t { ss_sp: stack.as_mut_ptr().cast(), ss_flags: 0, ss_size: stack.len() };
    // SAFETY: the stack is leaked, so it outlives the thread; `action` is a valid, fully
    // initialised `sigaction` (all zero, then the default disposition with two flags).
    unsafe {
        assert_eq!(libc::sigaltstack(&alt, std::ptr::null_mut()), 0, "sigaltstack");
        let mut action: libc::sigaction = std::mem::zeroed();
        action.sa_sigaction = libc::SIG_DFL;
        action.sa_flags = libc::SA_SIGINFO | libc::SA_ONSTACK;
        assert_eq!(libc::sigaction(libc::SIGSEGV, &action, std::ptr::null_mut()), 0, "sigaction");
    }
}
