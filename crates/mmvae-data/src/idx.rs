//! Reader for the IDX format used by MNIST and Fashion-MNIST, gzipped or raw.
//!
//! Layout: two zero bytes, a type byte (0x08 = unsigned byte), the number of
//! dimensions, then each dimension as a big-endian u32, then the data.

use crate::error::{DataError, Result};
use std::io::Read;
use std::path::Path;

/// An IDX array of unsigned bytes.
#[derive(Debug, Clone, PartialEq)]
pub struct IdxArray {
    pub dims: Vec<usize>,
    pub data: Vec<u8>,
}

/// Read a file fully, transparently gunzipping it if it starts with the gzip magic.
pub fn read_maybe_gz(path: &Path) -> Result<Vec<u8>> {
    let raw = std::fs::read(path).map_err(|e| DataError::io(path, e))?;
    if raw.len() >= 2 && raw[0] == 0x1f && raw[1] == 0x8b {
        let mut out = Vec::with_capacity(raw.len() * 4);
        flate2::read::MultiGzDecoder::new(&raw[..])
            .read_to_end(&mut out)
            .map_err(|e| {
                DataError::format(path, format!("corrupt or truncated gzip data ({e})"))
            })?;
        Ok(out)
    } else {
        Ok(raw)
    }
}

/// Parse IDX bytes; `path` is only used in error messages.
pub fn parse(bytes: &[u8], path: &Path) -> Result<IdxArray> {
    if bytes.len() < 4 {
        return Err(DataError::format(
            path,
            format!("file too short for an IDX header ({} bytes)", bytes.len()),
        ));
    }
    if bytes[0] != 0 || bytes[1] != 0 {
        return Err(DataError::format(
            path,
            format!(
                "wrong IDX magic {:02x}{:02x}{:02x}{:02x} (expected 0000 08 nn)",
                bytes[0], bytes[1], bytes[2], bytes[3]
            ),
        ));
    }
    if bytes[2] != 0x08 {
        return Err(DataError::format(
            path,
            format!(
                "unsupported IDX element type 0x{:02x} (only 0x08, unsigned byte)",
                bytes[2]
            ),
        ));
    }
    let ndims = bytes[3] as usize;
    if ndims == 0 || ndims > 4 {
        return Err(DataError::format(
            path,
            format!("unsupported IDX dimension count {ndims}"),
        ));
    }
    let header = 4 + 4 * ndims;
    if bytes.len() < header {
        return Err(DataError::format(path, "truncated IDX header"));
    }
    let dims: Vec<usize> = (0..ndims)
        .map(|i| {
            let o = 4 + 4 * i;
            u32::from_be_bytes([bytes[o], bytes[o + 1], bytes[o + 2], bytes[o + 3]]) as usize
        })
        .collect();
    let expected = dims
        .iter()
        .try_fold(1usize, |a, &d| a.checked_mul(d))
        .ok_or_else(|| DataError::format(path, "IDX dimensions overflow"))?;
    let body = &bytes[header..];
    if body.len() < expected {
        return Err(DataError::format(
            path,
            format!(
                "truncated IDX data: header {:?} needs {expected} bytes, file has {}",
                dims,
                body.len()
            ),
        ));
    }
    if body.len() > expected {
        return Err(DataError::format(
            path,
            format!(
                "IDX file has {} trailing bytes after {:?}",
                body.len() - expected,
                dims
            ),
        ));
    }
    Ok(IdxArray {
        dims,
        data: body.to_vec(),
    })
}

/// Read and parse an IDX file (gzipped or raw).
pub fn read(path: &Path) -> Result<IdxArray> {
    let bytes = read_maybe_gz(path)?;
    parse(&bytes, path)
}

/// Encode an array as IDX bytes (used by tests and fixtures).
pub fn encode(dims: &[usize], data: &[u8]) -> Vec<u8> {
    let mut out = vec![0, 0, 0x08, dims.len() as u8];
    for d in dims {
        out.extend_from_slice(&(*d as u32).to_be_bytes());
    }
    out.extend_from_slice(data);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn gz(bytes: &[u8]) -> Vec<u8> {
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        e.write_all(bytes).unwrap();
        e.finish().unwrap()
    }

    #[test]
    fn parses_raw_and_gz() {
        let dir = tempfile::tempdir().unwrap();
        let data: Vec<u8> = (0..24).collect();
        let bytes = encode(&[2, 3, 4], &data);
        let raw = dir.path().join("a.idx");
        std::fs::write(&raw, &bytes).unwrap();
        let gzp = dir.path().join("a.idx.gz");
        std::fs::write(&gzp, gz(&bytes)).unwrap();
        for p in [raw, gzp] {
            let a = read(&p).unwrap();
            assert_eq!(a.dims, vec![2, 3, 4]);
            assert_eq!(a.data, data);
        }
    }

    #[test]
    fn rejects_wrong_magic() {
        let mut bytes = encode(&[2], &[1, 2]);
        bytes[2] = 0x0d;
        let e = parse(&bytes, Path::new("x")).unwrap_err().to_string();
        assert!(e.contains("element type"), "{e}");
        bytes[0] = 7;
        let e = parse(&bytes, Path::new("x")).unwrap_err().to_string();
        assert!(e.contains("wrong IDX magic"), "{e}");
    }

    #[test]
    fn rejects_truncated_and_trailing_data() {
        let bytes = encode(&[3, 2], &[0; 6]);
        let e = parse(&bytes[..bytes.len() - 1], Path::new("f.idx"))
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("truncated IDX data") && e.contains("f.idx"),
            "{e}"
        );
        let e = parse(&bytes[..6], Path::new("f.idx"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("truncated IDX header"), "{e}");
        let mut long = bytes.clone();
        long.push(1);
        assert!(parse(&long, Path::new("f"))
            .unwrap_err()
            .to_string()
            .contains("trailing"));
    }

    #[test]
    fn rejects_truncated_gzip() {
        let dir = tempfile::tempdir().unwrap();
        let z = gz(&encode(&[100], &[5; 100]));
        let p = dir.path().join("t.gz");
        std::fs::write(&p, &z[..z.len() / 2]).unwrap();
        let e = read(&p).unwrap_err().to_string();
        assert!(
            e.contains("corrupt or truncated gzip") && e.contains("t.gz"),
            "{e}"
        );
    }

    #[test]
    fn missing_file_names_path() {
        let e = read(Path::new("/nonexistent/q.gz"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("/nonexistent/q.gz"), "{e}");
    }
}
