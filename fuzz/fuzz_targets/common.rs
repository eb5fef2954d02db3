//! What every target checks of a parser's result: an error is one line
//! that names the file it was given.

use std::fmt::Display;

pub fn checked<T, E: Display>(r: Result<T, E>, file: &str) -> Option<T> {
    match r {
        Ok(v) => Some(v),
        Err(e) => {
            let msg = e.to_string();
            assert!(msg.contains(file), "error does not name {file}: {msg}");
            assert!(!msg.contains('\n'), "error spans lines: {msg}");
            None
        }
    }
}
