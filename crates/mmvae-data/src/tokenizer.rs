//! Word- and character-level tokenizers, each with a deterministic, sorted
//! vocabulary saved beside the model (`vocab.json`: a list of words, or for
//! characters `{"level": "char", "tokens": [...]}`).

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

/// The most tokens a vocabulary file may hold (each is a row of the text
/// model's embedding and output layers).
pub const MAX_VOCAB: usize = 1 << 20;

/// The longest `vocab.json` read: 64 MiB.
pub const MAX_VOCAB_FILE: u64 = 64 << 20;

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

/// What a token is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum TokenLevel {
    /// Normalised words (see [`words`]).
    #[default]
    Word,
    /// The characters of the normalised words joined by single spaces (the
    /// space is a token), e.g. for digit strings or spelling.
    Char,
}

impl TokenLevel {
    /// The tokens of `text` at this level.
    pub fn tokens(self, text: &str) -> Vec<String> {
        match self {
            TokenLevel::Word => words(text),
            TokenLevel::Char => words(text).join(" ").chars().map(String::from).collect(),
        }
    }

    fn join(self, tokens: &[&str]) -> String {
        match self {
            TokenLevel::Word => tokens.join(" "),
            TokenLevel::Char => tokens.concat(),
        }
    }
}

/// A vocabulary: the four specials, then every token of the corpus in sorted
/// order. The same corpus always gives the same ids.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Vocab {
    words: Vec<String>,
    level: TokenLevel,
    index: HashMap<String, usize>,
}

/// `vocab.json` of a character vocabulary (a word vocabulary is a plain list).
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct LevelledFile {
    level: TokenLevel,
    tokens: Vec<String>,
}

impl Vocab {
    /// A word-level vocabulary of `corpus`.
    pub fn build<S: AsRef<str>>(corpus: impl IntoIterator<Item = S>) -> Self {
        Self::build_at(TokenLevel::Word, corpus)
    }

    /// A vocabulary of `corpus` at `level`.
    pub fn build_at<S: AsRef<str>>(level: TokenLevel, corpus: impl IntoIterator<Item = S>) -> Self {
        let set: BTreeSet<String> = corpus
            .into_iter()
            .flat_map(|s| level.tokens(s.as_ref()))
            .collect();
        let all = SPECIALS.iter().map(|s| s.to_string()).chain(set).collect();
        Self::from_words(all, level)
    }

    fn from_words(words: Vec<String>, level: TokenLevel) -> Self {
        let index = words
            .iter()
            .enumerate()
            .map(|(i, w)| (w.clone(), i))
            .collect();
        Self {
            words,
            level,
            index,
        }
    }

    pub fn level(&self) -> TokenLevel {
        self.level
    }

    /// Tokens of `text` (before `<bos>`/`<eos>`), known or not.
    pub fn token_count(&self, text: &str) -> usize {
        self.level.tokens(text).len()
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
        let ws = self.level.tokens(text);
        let unknown: Vec<String> = ws
            .iter()
            .filter(|w| self.id(w).is_none())
            .cloned()
            .collect();
        if !unknown.is_empty() {
            return Err(DataError::UnknownWords {
                text: text.to_string(),
                words: unknown,
                known: {
                    // A large vocabulary (the user's own captions) is cut
                    // short, so the error stays one readable line.
                    const SHOWN: usize = 40;
                    let k = self.known_words();
                    let mut s = k[..k.len().min(SHOWN)].join(" ");
                    if k.len() > SHOWN {
                        s.push_str(&format!(" … ({} more)", k.len() - SHOWN));
                    }
                    s
                },
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
        self.level
            .tokens(text)
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
        self.level.join(&out)
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
        let json = match self.level {
            TokenLevel::Word => serde_json::to_vec_pretty(&self.words),
            TokenLevel::Char => serde_json::to_vec_pretty(&LevelledFile {
                level: self.level,
                tokens: self.words.clone(),
            }),
        }
        .expect("vocab serialises");
        fsutil::write_atomic(path, &json)
    }

    /// Read a `vocab.json`, refusing a file over [`MAX_VOCAB_FILE`] bytes
    /// before reading it.
    pub fn load(path: &Path) -> Result<Self> {
        let bytes = fsutil::read_limited(path, MAX_VOCAB_FILE, "the vocabulary file")?;
        Self::from_json(&bytes, path)
    }

    /// A vocabulary from the bytes of a `vocab.json` (`path` names it in
    /// errors): at most [`MAX_VOCAB`] tokens, starting with the specials,
    /// none twice.
    pub fn from_json(bytes: &[u8], path: &Path) -> Result<Self> {
        let (words, level) = match serde_json::from_slice::<Vec<String>>(bytes) {
            Ok(w) => (w, TokenLevel::Word),
            Err(list_err) => match serde_json::from_slice::<LevelledFile>(bytes) {
                Ok(f) => (f.tokens, f.level),
                Err(_) => {
                    return Err(DataError::format(
                        path,
                        format!("not a vocabulary file: {list_err}"),
                    ))
                }
            },
        };
        if words.len() > MAX_VOCAB {
            return Err(DataError::format(
                path,
                format!(
                    "vocabulary has {} tokens, more than the limit of {MAX_VOCAB}",
                    words.len()
                ),
            ));
        }
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
        Ok(Self::from_words(words, level))
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
        // A large vocabulary is listed only in part.
        let big = Vocab::build((0..100).map(|i| format!("w{i:03}")));
        let e = big.encode("w000 zebra").unwrap_err().to_string();
        assert!(
            e.contains("w000 w001") && e.contains("(60 more)") && !e.contains("w099"),
            "{e}"
        );
    }

    #[test]
    fn character_level_round_trip_and_save() {
        let v = Vocab::build_at(TokenLevel::Char, ["1 7 7 3", "big red heart"]);
        // Sorted characters: the space, digits, letters.
        assert_eq!(
            v.known_words()[..5].to_vec(),
            [" ", "1", "3", "7", "a"].map(String::from).to_vec()
        );
        let ids = v.encode("Big  Red heart!").unwrap();
        assert_eq!(ids.len(), "big red heart".len());
        assert_eq!(v.decode(&ids), "big red heart");
        assert_eq!(v.token_count("1773"), 4);
        let e = v.encode("blue").unwrap_err().to_string();
        assert!(e.contains('u'), "{e}");
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("vocab.json");
        v.save(&p).unwrap();
        let back = Vocab::load(&p).unwrap();
        assert_eq!(back, v);
        assert_eq!(back.level(), TokenLevel::Char);
        // A word vocabulary stays a plain list (older checkpoints load).
        let w = Vocab::build(["one two"]);
        w.save(&p).unwrap();
        assert!(std::fs::read_to_string(&p)
            .unwrap()
            .trim_start()
            .starts_with('['));
        assert_eq!(Vocab::load(&p).unwrap().level(), TokenLevel::Word);
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

    #[test]
    fn vocabularies_past_the_limit_are_refused_by_name() {
        let mut words: Vec<String> = SPECIALS.iter().map(|s| s.to_string()).collect();
        words.extend((0..MAX_VOCAB - 3).map(|i| format!("{i:x}")));
        let json = serde_json::to_vec(&words).unwrap();
        let e = Vocab::from_json(&json, Path::new("big/vocab.json"))
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("big/vocab.json") && e.contains(&MAX_VOCAB.to_string()),
            "{e}"
        );
        words.pop();
        let json = serde_json::to_vec(&words).unwrap();
        assert_eq!(
            Vocab::from_json(&json, Path::new("v")).unwrap().len(),
            MAX_VOCAB
        );
    }
}
