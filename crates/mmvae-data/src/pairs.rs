//! Files of image–caption pairs: CSV with a header (`image` or `file`, and
//! `text` or `caption`; optionally `split`) or JSON lines with the same
//! keys. Image paths are relative to the file's folder unless absolute.
//!
//! A problem with the file as a whole (unreadable, no usable header) is an
//! error; a problem with one line is reported with its line number and the
//! remaining lines are still read, so the caller can list every bad line.

use std::path::{Path, PathBuf};

use crate::error::{DataError, Result};

/// One image–caption pair.
#[derive(Debug, Clone, PartialEq)]
pub struct Pair {
    /// 1-based line in the file.
    pub line: usize,
    pub image: PathBuf,
    pub text: String,
    pub split: Option<String>,
}

/// The pairs of a file, and one message per bad line (`file line N: why`).
#[derive(Debug, Default)]
pub struct Pairs {
    pub pairs: Vec<Pair>,
    pub errors: Vec<String>,
}

const IMAGE_KEYS: [&str; 2] = ["image", "file"];
const TEXT_KEYS: [&str; 2] = ["text", "caption"];

/// Read a pairs file; JSON lines if it ends in `.jsonl`, CSV otherwise.
pub fn read_pairs(path: &Path) -> Result<Pairs> {
    let body = std::fs::read_to_string(path).map_err(|e| DataError::io(path, e))?;
    let base = path.parent().unwrap_or(Path::new("."));
    let jsonl = path
        .extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("jsonl"));
    let mut out = if jsonl {
        parse_jsonl(path, &body, base)
    } else {
        parse_csv(path, &body, base)?
    };
    if out.pairs.is_empty() && out.errors.is_empty() {
        return Err(DataError::format(path, "no pairs in this file"));
    }
    // The same image listed twice is reported on its second line.
    let mut seen = std::collections::HashMap::new();
    for p in &out.pairs {
        if let Some(first) = seen.insert(p.image.clone(), p.line) {
            out.errors.push(format!(
                "{} line {}: image `{}` already listed on line {first}",
                path.display(),
                p.line,
                p.image.display()
            ));
        }
    }
    Ok(out)
}

fn resolve(base: &Path, s: &str) -> PathBuf {
    let p = Path::new(s);
    if p.is_absolute() {
        p.to_path_buf()
    } else {
        base.join(p)
    }
}

fn check_fields(
    path: &Path,
    line: usize,
    base: &Path,
    image: Option<&str>,
    text: Option<&str>,
    split: Option<&str>,
    out: &mut Pairs,
) {
    let at = format!("{} line {line}", path.display());
    match (image.map(str::trim), text.map(str::trim)) {
        (None, _) | (Some(""), _) => out.errors.push(format!("{at}: no image")),
        (_, None) | (_, Some("")) => out.errors.push(format!("{at}: empty text")),
        (Some(i), Some(t)) => out.pairs.push(Pair {
            line,
            image: resolve(base, i),
            text: t.to_string(),
            split: split
                .map(|s| s.trim().to_string())
                .filter(|s| !s.is_empty()),
        }),
    }
}

fn parse_csv(path: &Path, body: &str, base: &Path) -> Result<Pairs> {
    let mut rdr = csv::ReaderBuilder::new()
        .flexible(true)
        .from_reader(body.as_bytes());
    let header = rdr
        .headers()
        .map_err(|e| DataError::format(path, format!("line 1: {e}")))?
        .clone();
    let find = |keys: &[&str]| {
        header
            .iter()
            .position(|h| keys.contains(&h.trim().to_ascii_lowercase().as_str()))
    };
    let (Some(ci), Some(ct)) = (find(&IMAGE_KEYS), find(&TEXT_KEYS)) else {
        return Err(DataError::format(
            path,
            format!(
                "line 1: the header must name an `image` (or `file`) column and a `text` (or `caption`) column; found {:?}",
                header.iter().collect::<Vec<_>>()
            ),
        ));
    };
    let cs = find(&["split"]);
    let mut out = Pairs::default();
    for rec in rdr.records() {
        match rec {
            Err(e) => {
                let line = e.position().map_or(0, |p| p.line() as usize);
                out.errors
                    .push(format!("{} line {line}: {e}", path.display()));
            }
            Ok(r) => {
                let line = r.position().map_or(0, |p| p.line() as usize);
                if r.len() != header.len() {
                    out.errors.push(format!(
                        "{} line {line}: {} fields, the header has {}",
                        path.display(),
                        r.len(),
                        header.len()
                    ));
                    continue;
                }
                check_fields(
                    path,
                    line,
                    base,
                    r.get(ci),
                    r.get(ct),
                    cs.and_then(|c| r.get(c)),
                    &mut out,
                );
            }
        }
    }
    Ok(out)
}

fn parse_jsonl(path: &Path, body: &str, base: &Path) -> Pairs {
    let mut out = Pairs::default();
    for (k, raw) in body.lines().enumerate() {
        let line = k + 1;
        if raw.trim().is_empty() {
            continue;
        }
        let v: serde_json::Value = match serde_json::from_str(raw) {
            Ok(v) => v,
            Err(e) => {
                out.errors
                    .push(format!("{} line {line}: invalid JSON: {e}", path.display()));
                continue;
            }
        };
        let get = |keys: &[&str]| keys.iter().find_map(|k| v.get(*k).and_then(|x| x.as_str()));
        check_fields(
            path,
            line,
            base,
            get(&IMAGE_KEYS),
            get(&TEXT_KEYS),
            get(&["split"]),
            &mut out,
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(dir: &Path, name: &str, s: &str) -> PathBuf {
        let p = dir.join(name);
        std::fs::write(&p, s).unwrap();
        p
    }

    #[test]
    fn csv_pairs_with_quotes_splits_and_bad_lines() {
        let d = tempfile::tempdir().unwrap();
        let p = write(
            d.path(),
            "pairs.csv",
            "file,caption,split\n\
             a.png,\"a cat, sitting\",train\n\
             b.png,,test\n\
             c.png,a dog\n\
             /abs/d.png,a bird,\n\
             a.png,again,train\n",
        );
        let r = read_pairs(&p).unwrap();
        assert_eq!(r.pairs.len(), 3, "{:?}", r.pairs);
        assert_eq!(r.pairs[0].image, d.path().join("a.png"));
        assert_eq!(r.pairs[0].text, "a cat, sitting");
        assert_eq!(r.pairs[0].split.as_deref(), Some("train"));
        assert_eq!(r.pairs[1].image, PathBuf::from("/abs/d.png"));
        assert_eq!(r.pairs[1].split, None);
        assert_eq!(r.errors.len(), 3, "{:?}", r.errors);
        assert!(
            r.errors[0].contains("line 3: empty text"),
            "{}",
            r.errors[0]
        );
        assert!(r.errors[1].contains("line 4: 2 fields"), "{}", r.errors[1]);
        assert!(r.errors[2].contains("line 6") && r.errors[2].contains("line 2"));
    }

    #[test]
    fn jsonl_pairs_and_file_level_errors() {
        let d = tempfile::tempdir().unwrap();
        let p = write(
            d.path(),
            "p.jsonl",
            "{\"image\": \"x.png\", \"text\": \"red square\"}\n\nnot json\n{\"image\": \"y.png\"}\n",
        );
        let r = read_pairs(&p).unwrap();
        assert_eq!(r.pairs.len(), 1);
        assert_eq!(r.pairs[0].line, 1);
        assert!(
            r.errors[0].contains("line 3: invalid JSON"),
            "{:?}",
            r.errors
        );
        assert!(r.errors[1].contains("line 4: empty text"), "{:?}", r.errors);
        let bad = write(d.path(), "h.csv", "path,words\nx.png,hi\n");
        let e = read_pairs(&bad).unwrap_err().to_string();
        assert!(e.contains("h.csv") && e.contains("line 1"), "{e}");
        let e = read_pairs(&d.path().join("missing.csv"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("missing.csv"), "{e}");
        let empty = write(d.path(), "e.csv", "image,text\n");
        assert!(read_pairs(&empty)
            .unwrap_err()
            .to_string()
            .contains("no pairs"));
    }
}
