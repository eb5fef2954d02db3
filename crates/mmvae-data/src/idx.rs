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

/// The most data bytes (the product of the dimensions) an IDX file may
/// describe: 1 GiB. The largest file the toolkit reads, the MNIST training
/// images, holds 47 MB.
pub const MAX_IDX_BYTES: usize = 1 << 30;

/// The longest IDX header: the magic and four dimensions.
const MAX_HEADER: usize = 4 + 4 * 4;

fn is_gzip(raw: &[u8]) -> bool {
    raw.len() >= 2 && raw[0] == 0x1f && raw[1] == 0x8b
}

fn gzip_error(path: &Path, e: std::io::Error) -> DataError {
    DataError::format(path, format!("corrupt or truncated gzip data ({e})"))
}

/// Read a file fully, transparently gunzipping it if it starts with the
/// gzip magic; refuses a file (or its unzipped content) longer than the
/// largest IDX file, [`MAX_IDX_BYTES`] of data and its header.
pub fn read_maybe_gz(path: &Path) -> Result<Vec<u8>> {
    let max = (MAX_IDX_BYTES + MAX_HEADER) as u64;
    let raw = crate::fsutil::read_limited(path, max, "the IDX file")?;
    if !is_gzip(&raw) {
        return Ok(raw);
    }
    let mut out = Vec::new();
    flate2::read::MultiGzDecoder::new(&raw[..])
        .take(max + 1)
        .read_to_end(&mut out)
        .map_err(|e| gzip_error(path, e))?;
    if out.len() as u64 > max {
        return Err(DataError::format(
            path,
            format!("unzips to more than the limit of {max} bytes"),
        ));
    }
    Ok(out)
}

/// The dimensions an IDX header announces, its length in bytes and the
/// data bytes it needs, from the file's first bytes (at least the header).
/// Refuses a header describing more than [`MAX_IDX_BYTES`] of data.
fn header(bytes: &[u8], path: &Path) -> Result<(Vec<usize>, usize, usize)> {
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
    let len = 4 + 4 * ndims;
    if bytes.len() < len {
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
        .filter(|&n| n <= MAX_IDX_BYTES)
        .ok_or_else(|| {
            DataError::format(
                path,
                format!(
                    "IDX header {dims:?} describes more than the limit of {MAX_IDX_BYTES} bytes"
                ),
            )
        })?;
    Ok((dims, len, expected))
}

/// The data bytes `dims` need against those the file has (`body`).
fn check_body(path: &Path, dims: &[usize], expected: usize, body: usize) -> Result<()> {
    if body < expected {
        return Err(DataError::format(
            path,
            format!("truncated IDX data: header {dims:?} needs {expected} bytes, file has {body}"),
        ));
    }
    if body > expected {
        return Err(DataError::format(
            path,
            format!(
                "IDX file has {} trailing bytes after {dims:?}",
                body - expected
            ),
        ));
    }
    Ok(())
}

/// Parse IDX bytes; `path` is only used in error messages. The header is
/// checked against [`MAX_IDX_BYTES`] and the data's length before the data
/// is copied.
pub fn parse(bytes: &[u8], path: &Path) -> Result<IdxArray> {
    let (dims, len, expected) = header(bytes, path)?;
    let body = &bytes[len..];
    check_body(path, &dims, expected, body.len())?;
    Ok(IdxArray {
        dims,
        data: body.to_vec(),
    })
}

/// Parse the bytes of an IDX file, gzipped or raw; `path` is only used in
/// error messages. A gzipped file's header is read and checked first, and
/// no more than the data it announces (and one byte) is unzipped.
pub fn decode(raw: &[u8], path: &Path) -> Result<IdxArray> {
    if !is_gzip(raw) {
        return parse(raw, path);
    }
    let mut z = flate2::read::MultiGzDecoder::new(raw);
    let mut head = Vec::with_capacity(MAX_HEADER);
    (&mut z)
        .take(MAX_HEADER as u64)
        .read_to_end(&mut head)
        .map_err(|e| gzip_error(path, e))?;
    let (dims, len, expected) = header(&head, path)?;
    // The bytes read past the header are the data's start.
    let mut data = head.split_off(len);
    let wanted = (expected + 1).saturating_sub(data.len()) as u64;
    z.take(wanted)
        .read_to_end(&mut data)
        .map_err(|e| gzip_error(path, e))?;
    if data.len() > expected {
        return Err(DataError::format(
            path,
            format!("IDX data runs past the {expected} bytes its header {dims:?} describes"),
        ));
    }
    check_body(path, &dims, expected, data.len())?;
    Ok(IdxArray { dims, data })
}

/// Read and parse an IDX file (gzipped or raw).
pub fn read(path: &Path) -> Result<IdxArray> {
    let max = (MAX_IDX_BYTES + MAX_HEADER) as u64;
    let raw = crate::fsutil::read_limited(path, max, "the IDX file")?;
    decode(&raw, path)
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
    fn headers_past_the_limit_are_refused_before_reading_the_data() {
        // 65536 × 65536 bytes (4 GiB) with no data behind them.
        let big = encode(&[65536, 65536], &[]);
        for bytes in [big.clone(), gz(&big)] {
            let e = decode(&bytes, Path::new("huge.idx"))
                .unwrap_err()
                .to_string();
            assert!(
                e.contains("huge.idx") && e.contains(&MAX_IDX_BYTES.to_string()),
                "{e}"
            );
        }
        // Four dimensions whose product overflows.
        let e = parse(&encode(&[u32::MAX as usize; 4], &[]), Path::new("o"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("more than the limit"), "{e}");
        // Within the limit, a gzipped header is checked against the data.
        let short = gz(&encode(&[1000, 1000], &[1; 10]));
        let e = decode(&short, Path::new("s.gz")).unwrap_err().to_string();
        assert!(e.contains("needs 1000000 bytes, file has 10"), "{e}");
        let long = gz(&encode(&[2], &[1; 3000]));
        let e = decode(&long, Path::new("l.gz")).unwrap_err().to_string();
        assert!(e.contains("runs past the 2 bytes"), "{e}");
    }

    #[test]
    fn missing_file_names_path() {
        let e = read(Path::new("/nonexistent/q.gz"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("/nonexistent/q.gz"), "{e}");
    }
}
