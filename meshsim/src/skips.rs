//! Tests skipped for want of something (a Docker engine, a browser): each is announced when
//! it is skipped and, because those lines scroll away and libtest counts the test as passed,
//! counted again in one summary when the test binary exits, after libtest's own.

use std::sync::{Mutex, Once};

static SKIPPED: Mutex<Vec<String>> = Mutex::new(Vec::new());

unsafe extern "C" {
    /// C's `atexit`: runs `f` when the process exits, after libtest has printed its result.
    fn atexit(f: extern "C" fn()) -> std::ffi::c_int;
}

extern "C" fn summary() {
    let skipped = SKIPPED.lock().unwrap_or_else(|e| e.into_inner());
    if skipped.is_empty() {
        return;
    }
    println!(
        "\nmeshsim: {} test(s) of this binary were SKIPPED, not run; the result above counts them as passed:",
        skipped.len()
    );
    for line in skipped.iter() {
        println!("meshsim:   {line}");
    }
}

/// Announces that `test` is skipped because of `why`, and counts it for the summary printed
/// when the test binary exits. `require` names the variable that turns the skip into a
/// failure.
pub fn skip(test: &str, why: &str, require: &str) {
    println!("meshsim: skipping {test}: {why} (set {require}=1 to fail instead)");
    static REGISTER: Once = Once::new();
    REGISTER.call_once(|| {
        // SAFETY: `summary` is a plain function that lives as long as the process.
        unsafe {
            atexit(summary);
        }
    });
    SKIPPED
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .push(format!("{test}: {why}"));
}
