//! Test helpers.

use std::sync::{Mutex, MutexGuard};

static RNG: Mutex<()> = Mutex::new(());

/// burn's CPU backend has one process-wide random generator; tests that seed
/// it and expect a given sequence hold this lock so that tests running on
/// other threads do not draw from it in between.
pub fn rng_lock() -> MutexGuard<'static, ()> {
    RNG.lock().unwrap_or_else(|e| e.into_inner())
}
