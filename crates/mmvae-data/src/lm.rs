//! A reference language model for captions: an interpolated bigram model
//! (Jelinek–Mercer: λ·P_ML(w | prev) + (1 − λ)·P_add-one(w)) over words with
//! sentence-start and sentence-end symbols, trained on the training captions.
//! It scores how caption-like generated text is: compare the perplexity of
//! generated captions with that of real ones.

use std::collections::HashMap;

const BOS: &str = "<s>";
const EOS: &str = "</s>";

#[derive(Debug, Clone)]
pub struct BigramLm {
    lambda: f64,
    unigram: HashMap<String, usize>,
    bigram: HashMap<(String, String), usize>,
    /// Occurrences of each word as a bigram's first word.
    context: HashMap<String, usize>,
    total: usize,
}

fn tokens(caption: &str) -> Vec<String> {
    std::iter::once(BOS.to_string())
        .chain(caption.split_whitespace().map(str::to_string))
        .chain(std::iter::once(EOS.to_string()))
        .collect()
}

impl BigramLm {
    /// Train on `captions`; `lambda` weighs the bigram estimate (0.9 is usual).
    pub fn train<'a>(captions: impl IntoIterator<Item = &'a str>, lambda: f64) -> Self {
        let mut lm = BigramLm {
            lambda,
            unigram: HashMap::new(),
            bigram: HashMap::new(),
            context: HashMap::new(),
            total: 0,
        };
        for c in captions {
            let t = tokens(c);
            for w in &t[1..] {
                *lm.unigram.entry(w.clone()).or_default() += 1;
                lm.total += 1;
            }
            for p in t.windows(2) {
                *lm.bigram.entry((p[0].clone(), p[1].clone())).or_default() += 1;
                *lm.context.entry(p[0].clone()).or_default() += 1;
            }
        }
        lm
    }

    /// P(w | prev).
    fn prob(&self, prev: &str, w: &str) -> f64 {
        // Add-one unigram over the known words plus one unknown slot.
        let v = self.unigram.len() + 1;
        let uni = (self.unigram.get(w).copied().unwrap_or(0) + 1) as f64 / (self.total + v) as f64;
        let ctx = self.context.get(prev).copied().unwrap_or(0);
        let bi = if ctx == 0 {
            0.0
        } else {
            self.bigram
                .get(&(prev.to_string(), w.to_string()))
                .copied()
                .unwrap_or(0) as f64
                / ctx as f64
        };
        if ctx == 0 {
            uni
        } else {
            self.lambda * bi + (1.0 - self.lambda) * uni
        }
    }

    /// Perplexity per predicted token (words and the end symbol) of a corpus.
    pub fn perplexity<'a>(&self, captions: impl IntoIterator<Item = &'a str>) -> f64 {
        let (mut nll, mut n) = (0.0f64, 0usize);
        for c in captions {
            let t = tokens(c);
            for p in t.windows(2) {
                nll -= self.prob(&p[0], &p[1]).ln();
                n += 1;
            }
        }
        if n == 0 {
            f64::NAN
        } else {
            (nll / n as f64).exp()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn perplexity_matches_hand_computation() {
        // One training caption "a b": tokens <s> a b </s>; unigrams a, b, </s>
        // (total 3, 3 known words + 1 unknown slot = 4).
        let lm = BigramLm::train(["a b"], 0.5);
        // P(a|<s>) = 0.5·1 + 0.5·(2/7); P(b|a) likewise; P(</s>|b) likewise.
        let p: f64 = 0.5 + 0.5 * 2.0 / 7.0;
        let want = (-(3.0 * p.ln()) / 3.0).exp();
        assert!((lm.perplexity(["a b"]) - want).abs() < 1e-12);
        // An unseen word costs more than a seen one; probabilities sum to 1.
        assert!(lm.perplexity(["a zebra"]) > lm.perplexity(["a b"]));
        let total: f64 = ["a", "b", EOS, "zzz"].iter().map(|w| lm.prob("a", w)).sum();
        // "zzz" stands for the one unknown slot.
        assert!((total - 1.0).abs() < 1e-12, "{total}");
    }

    #[test]
    fn generated_gibberish_scores_worse_than_real_captions() {
        let train: Vec<String> = (0..50)
            .map(|i| format!("a handwritten {}", ["one", "two", "three"][i % 3]))
            .collect();
        let lm = BigramLm::train(train.iter().map(|s| s.as_str()), 0.9);
        let real = lm.perplexity(["a handwritten two", "a handwritten three"]);
        let bad = lm.perplexity(["two two a", "handwritten handwritten"]);
        assert!(real < 2.5 && bad > 3.0 * real, "{real} {bad}");
    }
}
