//! Atomic file output: write to a temporary file in the same directory, then
//! rename over the destination, so a crash or an error never leaves a
//! half-written file behind. And bounded input: [`read_limited`] refuses a
//! file longer than a stated limit before reading it.

use crate::error::{DataError, Result};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

/// Read all of `path`, refusing (with an error naming the file, `what` it
/// is and the limit) one longer than `max` bytes. The length is checked
/// before anything is allocated, and the read stops at `max + 1` bytes in
/// case the file grows meanwhile.
pub fn read_limited(path: &Path, max: u64, what: &str) -> Result<Vec<u8>> {
    let f = std::fs::File::open(path).map_err(|e| DataError::io(path, e))?;
    let len = f.metadata().map_err(|e| DataError::io(path, e))?.len();
    let too_long = |len: u64| {
        DataError::format(
            path,
            format!("{what} is {len} bytes, more than the limit of {max} bytes"),
        )
    };
    if len > max {
        return Err(too_long(len));
    }
    let mut out = Vec::with_capacity(len as usize);
    f.take(max + 1)
        .read_to_end(&mut out)
        .map_err(|e| DataError::io(path, e))?;
    if out.len() as u64 > max {
        return Err(too_long(out.len() as u64));
    }
    Ok(out)
}

/// The temporary sibling used while `path` is being written.
pub fn temp_sibling(path: &Path) -> PathBuf {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "out".into());
    path.with_file_name(format!(".{name}.tmp-{}", std::process::id()))
}

/// Write `bytes` to `path` atomically, creating parent directories.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    write_atomic_with(path, |f| f.write_all(bytes))
}

/// Write through `fill` into a temporary file, then rename it to `path`.
/// On any error the temporary file is removed and `path` is untouched.
pub fn write_atomic_with(
    path: &Path,
    fill: impl FnOnce(&mut std::io::BufWriter<std::fs::File>) -> std::io::Result<()>,
) -> Result<()> {
    if let Some(parent) = path.parent() {
        if !parent.as_os_str().is_empty() {
            std::fs::create_dir_all(parent).map_err(|e| DataError::io(parent, e))?;
        }
    }
    let tmp = temp_sibling(path);
    let res = (|| {
        let f = std::fs::File::create(&tmp)?;
        let mut w = std::io::BufWriter::new(f);
        fill(&mut w)?;
        let f = w.into_inner().map_err(|e| e.into_error())?;
        f.sync_all()?;
        Ok(())
    })();
    match res {
        Ok(()) => std::fs::rename(&tmp, path).map_err(|e| {
            let _ = std::fs::remove_file(&tmp);
            DataError::io(path, e)
        }),
        Err(e) => {
            let _ = std::fs::remove_file(&tmp);
            Err(DataError::io(path, e))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn atomic_write_replaces_and_leaves_no_temp() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("sub/a.txt");
        write_atomic(&p, b"one").unwrap();
        write_atomic(&p, b"two").unwrap();
        assert_eq!(std::fs::read(&p).unwrap(), b"two");
        let names: Vec<_> = std::fs::read_dir(p.parent().unwrap()).unwrap().collect();
        assert_eq!(names.len(), 1);
    }

    #[test]
    fn read_limited_refuses_a_long_file_by_name() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("big.txt");
        std::fs::write(&p, [7u8; 100]).unwrap();
        assert_eq!(read_limited(&p, 100, "a list").unwrap().len(), 100);
        let e = read_limited(&p, 99, "a list").unwrap_err().to_string();
        assert!(
            e.contains("big.txt") && e.contains("a list is 100 bytes") && e.contains("99"),
            "{e}"
        );
        assert!(read_limited(&dir.path().join("none"), 9, "x").is_err());
    }

    #[test]
    fn failed_write_keeps_old_content() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("a.txt");
        write_atomic(&p, b"good").unwrap();
        let err = write_atomic_with(&p, |w| {
            w.write_all(b"partial")?;
            Err(std::io::Error::other("boom"))
        });
        assert!(err.is_err());
        assert_eq!(std::fs::read(&p).unwrap(), b"good");
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
    }
}
