//! `mmvae data fetch`: download a dataset's IDX files from its canonical
//! mirror and verify each against a pinned SHA-256 before it is kept.

use crate::dataset::DatasetKind;
use crate::error::{DataError, Result};
use crate::fsutil;
use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};

/// A file to download and the SHA-256 it must have.
#[derive(Debug, Clone, Copy)]
pub struct Pinned {
    pub name: &'static str,
    pub sha256: &'static str,
}

/// The canonical mirror and pinned checksums of a downloadable dataset's
/// files (`None` for the shapes levels, which are rendered in code).
pub fn source(kind: DatasetKind) -> Option<(&'static str, [Pinned; 4])> {
    Some(match kind {
        DatasetKind::Shapes(_)
        | DatasetKind::MultiMnist
        | DatasetKind::PolyMnist
        | DatasetKind::Vision(_)
        | DatasetKind::CelebA(_)
        | DatasetKind::Pairs => return None,
        DatasetKind::Mnist => (
            "https://ossci-datasets.s3.amazonaws.com/mnist",
            [
                Pinned {
                    name: "train-images-idx3-ubyte.gz",
                    sha256: "0b367032e93c5d0cea0925647cfdb18614af8ee15f83e6f2fc2ad904a6835971",
                },
                Pinned {
                    name: "train-labels-idx1-ubyte.gz",
                    sha256: "1787548bbe0bff1ec2ecdc0ef292b02df999e2d1a6002d27500982c652b17203",
                },
                Pinned {
                    name: "t10k-images-idx3-ubyte.gz",
                    sha256: "1a1a05eab793c14bb050b398624a11b0ffd1a2953baed553b1b9bd079e2a20be",
                },
                Pinned {
                    name: "t10k-labels-idx1-ubyte.gz",
                    sha256: "b91679a0acfe4ba0e50a2437a903084cba1f5f92592b016a25a7dfd00455798b",
                },
            ],
        ),
        DatasetKind::FashionMnist => (
            "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com",
            [
                Pinned {
                    name: "train-images-idx3-ubyte.gz",
                    sha256: "b0564c3eedabfbf835052cff8503ea422014ce006caf5b757f851416ee8300c7",
                },
                Pinned {
                    name: "train-labels-idx1-ubyte.gz",
                    sha256: "0ae29f65d86684f32d1b9c85147786c547b9c6aebcaf235f0400a0cce308b056",
                },
                Pinned {
                    name: "t10k-images-idx3-ubyte.gz",
                    sha256: "cc1d090a38ace84dfa1aa66e3ada7c336ef481a96936906477e6dd344da56eaa",
                },
                Pinned {
                    name: "t10k-labels-idx1-ubyte.gz",
                    sha256: "8d3605d196f4be44669e46906da9733c8131fef761fdbfec72c424d5222f1a05",
                },
            ],
        ),
    })
}

pub fn sha256_hex(bytes: &[u8]) -> String {
    let d = Sha256::digest(bytes);
    d.iter().map(|b| format!("{b:02x}")).collect()
}

/// What happened to one file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fetched {
    Downloaded(PathBuf),
    AlreadyPresent(PathBuf),
}

/// Download `files` from `base_url` into `dest`, verifying checksums. Files
/// already present with the right checksum are kept; nothing unverified is
/// ever written under its final name.
pub fn fetch_files(base_url: &str, files: &[Pinned], dest: &Path) -> Result<Vec<Fetched>> {
    let mut out = Vec::new();
    for f in files {
        let path = dest.join(f.name);
        if let Ok(existing) = std::fs::read(&path) {
            if sha256_hex(&existing) == f.sha256 {
                out.push(Fetched::AlreadyPresent(path));
                continue;
            }
        }
        let url = format!("{}/{}", base_url.trim_end_matches('/'), f.name);
        let bytes = download(&url)?;
        let got = sha256_hex(&bytes);
        if got != f.sha256 {
            return Err(DataError::Invalid(format!(
                "{url}: SHA-256 mismatch (got {got}, expected {}); nothing was written",
                f.sha256
            )));
        }
        fsutil::write_atomic(&path, &bytes)?;
        out.push(Fetched::Downloaded(path));
    }
    Ok(out)
}

/// Download `kind` into `dest` (a folder named after the dataset is usual).
pub fn fetch_dataset(kind: DatasetKind, dest: &Path, mirror: Option<&str>) -> Result<Vec<Fetched>> {
    // The vision views are computed from their source's files.
    if let DatasetKind::Vision(source) = kind {
        return fetch_dataset(source.kind(), dest, mirror);
    }
    let (base, files) = source(kind).ok_or_else(|| {
        DataError::Invalid(match kind {
            DatasetKind::MultiMnist => {
                "multimnist is composed from the MNIST files: run `mmvae data fetch mnist`".into()
            }
            DatasetKind::PolyMnist => {
                "polymnist is rendered from the MNIST files: run `mmvae data fetch mnist` (or point --data-dir at the published PolyMNIST folder)".into()
            }
            DatasetKind::CelebA(_) => crate::celeba::HOW_TO_GET.into(),
            DatasetKind::Pairs => {
                "pairs are the user's own files; there is nothing to download".into()
            }
            _ => format!("{kind} is rendered in code; there is nothing to download"),
        })
    })?;
    fetch_files(mirror.unwrap_or(base), &files, dest)
}

fn download(url: &str) -> Result<Vec<u8>> {
    let mut resp = ureq::get(url)
        .call()
        .map_err(|e| DataError::Invalid(format!("{url}: download failed: {e}")))?;
    resp.body_mut()
        .with_config()
        .limit(200 * 1024 * 1024)
        .read_to_vec()
        .map_err(|e| DataError::Invalid(format!("{url}: download failed while reading: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Write};
    use std::net::TcpListener;

    /// A loopback HTTP server answering a fixed number of GETs from a map.
    fn serve(files: Vec<(&'static str, Vec<u8>)>, requests: usize) -> String {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = l.local_addr().unwrap();
        std::thread::spawn(move || {
            for _ in 0..requests {
                let Ok((mut s, _)) = l.accept() else { return };
                let mut buf = [0u8; 4096];
                let n = s.read(&mut buf).unwrap_or(0);
                let req = String::from_utf8_lossy(&buf[..n]);
                let path = req
                    .split_whitespace()
                    .nth(1)
                    .unwrap_or("/")
                    .trim_start_matches('/')
                    .to_string();
                match files.iter().find(|(name, _)| *name == path) {
                    Some((_, body)) => {
                        let _ = write!(
                            s,
                            "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                            body.len()
                        );
                        let _ = s.write_all(body);
                    }
                    None => {
                        let _ = write!(s, "HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
                    }
                }
            }
        });
        format!("http://{addr}")
    }

    #[test]
    fn downloads_verifies_and_skips_present_files() {
        let body = b"hello idx".to_vec();
        let pinned = [Pinned {
            name: "a.gz",
            sha256: Box::leak(sha256_hex(&body).into_boxed_str()),
        }];
        let url = serve(vec![("a.gz", body.clone())], 1);
        let d = tempfile::tempdir().unwrap();
        let r = fetch_files(&url, &pinned, d.path()).unwrap();
        assert_eq!(r, vec![Fetched::Downloaded(d.path().join("a.gz"))]);
        assert_eq!(std::fs::read(d.path().join("a.gz")).unwrap(), body);
        // Second call needs no server: the file is verified on disk.
        let r = fetch_files("http://127.0.0.1:9", &pinned, d.path()).unwrap();
        assert_eq!(r, vec![Fetched::AlreadyPresent(d.path().join("a.gz"))]);
    }

    #[test]
    fn checksum_mismatch_writes_nothing() {
        let pinned = [Pinned {
            name: "a.gz",
            sha256: "00",
        }];
        let url = serve(vec![("a.gz", b"tampered".to_vec())], 1);
        let d = tempfile::tempdir().unwrap();
        let e = fetch_files(&url, &pinned, d.path())
            .unwrap_err()
            .to_string();
        assert!(e.contains("SHA-256 mismatch"), "{e}");
        assert_eq!(std::fs::read_dir(d.path()).unwrap().count(), 0);
    }

    #[test]
    fn http_error_is_reported_with_url() {
        let pinned = [Pinned {
            name: "missing.gz",
            sha256: "00",
        }];
        let url = serve(vec![], 1);
        let d = tempfile::tempdir().unwrap();
        let e = fetch_files(&url, &pinned, d.path())
            .unwrap_err()
            .to_string();
        assert!(e.contains("missing.gz") && e.contains("404"), "{e}");
    }
}
