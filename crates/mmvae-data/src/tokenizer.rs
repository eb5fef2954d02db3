//! Word-level tokenizer with a deterministic, sorted vocabulary.

use crate::error::{DataError, Result};
use crate::fsutil;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeSet, HashMap};
use std::path::Path;

pub const PAD: usize = 0;
pub const BOS: usize = 1;
pub const EOS: usize = 2;
pub const UNK: usize = 3;
pub const SPECIALS: [&str; 4] = ["<pad>", "<bos>", "<eos>", "<unk>"];

/// Split text into normalised words: lower case, split on whitespace, with
/// punctuation other than `-` and `'` removed.
pub fn words(text: &str) -> Vec<String> {
    text.split_whitespace()
        .map(|w| {
            w.chars()
                .filter(|c| c.is_alphanumeric() || *c == '-' || *c == '\'')
                .flat_map(char::to_lowercase)
                .collect::<String>()
        })
        .filter(|w| !w.is_empty())
        .collect()
}

/// A vocabulary: the four specials, then every word of the corpus in sorted
/// order. The same corpus always gives the same ids.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Vocab {
    words: Vec<String>,
    #[serde(skip)]
    index: HashMap<String, usize>,
}

impl Vocab {
    pub fn build<S: AsRef<str>>(corpus: impl IntoIterator<Item = S>) -> Self {
        let set: BTreeSet<String> = corpus.into_iter().flat_map(|s| words(s.as_ref())).collect();
        let all = SPECIALS.iter().map(|s| s.to_string()).chain(set).collect();
        Self::from_words(all)
    }

    fn from_words(words: Vec<String>) -> Self {
        let index = words
            .iter()
            .enumerate()
            .map(|(i, w)| (w.clone(), i))
            .collect();
        Self { words, index }
    }

    pub fn len(&self) -> usize {
        self.words.len()
    }
    pub fn is_empty(&self) -> bool {
        self.words.len() <= SPECIALS.len()
    }
    pub fn word(&self, id: usize) -> &str {
        self.words.get(id).map(String::as_str).unwrap_or("<unk>")
    }
    pub fn id(&self, word: &str) -> Option<usize> {
        self.index.get(word).copied()
    }
    /// The non-special words, sorted.
    pub fn known_words(&self) -> &[String] {
        &self.words[SPECIALS.len()..]
    }

    /// Encode, failing with the list of unknown words (for user prompts).
    pub fn encode(&self, text: &str) -> Result<Vec<usize>> {
        let ws = words(text);
        let unknown: Vec<String> = ws
            .iter()
            .filter(|w| self.id(w).is_none())
            .cloned()
            .collect();
        if !unknown.is_empty() {
            return Err(DataError::UnknownWords {
                text: text.to_string(),
                words: unknown,
                known: self.known_words().join(" "),
            });
        }
        if ws.is_empty() {
            return Err(DataError::Invalid(format!(
                "empty text `{text}`: give at least one word"
            )));
        }
        Ok(ws.iter().map(|w| self.index[w]).collect())
    }

    /// Encode, mapping unknown words to `<unk>`.
    pub fn encode_lossy(&self, text: &str) -> Vec<usize> {
        words(text)
            .iter()
            .map(|w| self.id(w).unwrap_or(UNK))
            .collect()
    }

    /// Decode ids to text, stopping at `<eos>` and skipping `<pad>`/`<bos>`.
    pub fn decode(&self, ids: &[usize]) -> String {
        let mut out = Vec::new();
        for &id in ids {
            match id {
                EOS => break,
                PAD | BOS => continue,
                _ => out.push(self.word(id)),
            }
        }
        out.join(" ")
    }

    /// `[bos] + ids + [eos]`, padded with `<pad>` to `len` (truncating the
    /// words if needed; `<eos>` is always kept).
    pub fn frame(&self, ids: &[usize], len: usize) -> Vec<usize> {
        let keep = ids.len().min(len.saturating_sub(2));
        let mut v = Vec::with_capacity(len);
        v.push(BOS);
        v.extend_from_slice(&ids[..keep]);
        v.push(EOS);
        v.resize(len, PAD);
        v
    }

    pub fn save(&self, path: &Path) -> Result<()> {
        let json = serde_json::to_vec_pretty(&self.words).expect("vocab serialises");
        fsutil::write_atomic(path, &json)
    }

    pub fn load(path: &Path) -> Result<Self> {
        let bytes = std::fs::read(path).map_err(|e| DataError::io(path, e))?;
        let words: Vec<String> = serde_json::from_slice(&bytes)
            .map_err(|e| DataError::format(path, format!("not a vocabulary file: {e}")))?;
        if words.len() < SPECIALS.len() || words[..SPECIALS.len()] != SPECIALS {
            return Err(DataError::format(
                path,
                "vocabulary must start with <pad> <bos> <eos> <unk>",
            ));
        }
        let distinct: BTreeSet<&String> = words.iter().collect();
        if distinct.len() != words.len() {
            return Err(DataError::format(path, "vocabulary has duplicate words"));
        }
        Ok(Self::from_words(words))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vocabulary_is_sorted_and_deterministic() {
        let a = Vocab::build(["the digit seven", "a handwritten two"]);
        let b = Vocab::build(["a handwritten two", "the digit seven", "seven"]);
        assert_eq!(a, b);
        assert_eq!(a.word(0), "<pad>");
        assert_eq!(
            a.known_words(),
            ["a", "digit", "handwritten", "seven", "the", "two"]
        );
    }

    #[test]
    fn round_trip_and_framing() {
        let v = Vocab::build(["a photo of an ankle boot"]);
        let ids = v.encode("A photo of an ankle boot.").unwrap();
        assert_eq!(v.decode(&ids), "a photo of an ankle boot");
        let framed = v.frame(&ids, 10);
        assert_eq!(framed.len(), 10);
        assert_eq!((framed[0], framed[7], framed[8]), (BOS, EOS, PAD));
        assert_eq!(v.decode(&framed), "a photo of an ankle boot");
        let short = v.frame(&ids, 4);
        assert_eq!(short, vec![BOS, ids[0], ids[1], EOS]);
    }

    #[test]
    fn unknown_words_are_reported() {
        let v = Vocab::build(["a handwritten seven"]);
        let e = v.encode("a handwritten zebra").unwrap_err().to_string();
        assert!(e.contains("zebra") && e.contains("handwritten"), "{e}");
        assert_eq!(v.encode_lossy("a zebra"), vec![v.id("a").unwrap(), UNK]);
        assert!(v.encode("  ").is_err());
    }

    #[test]
    fn save_load_round_trip_and_corrupt_file() {
        let d = tempfile::tempdir().unwrap();
        let v = Vocab::build(["one two three"]);
        let p = d.path().join("vocab.json");
        v.save(&p).unwrap();
        assert_eq!(Vocab::load(&p).unwrap(), v);
        std::fs::write(&p, "{not json").unwrap();
        assert!(Vocab::load(&p)
            .unwrap_err()
            .to_string()
            .contains("vocab.json"));
        std::fs::write(&p, r#"["a","b"]"#).unwrap();
        assert!(Vocab::load(&p)
            .unwrap_err()
            .to_string()
            .contains("must start with"));
    }
}
