//! Binary-decision and ranking metrics: precision/recall/F1 at a threshold,
//! AUROC, the F1-optimal threshold, and retrieval ranks (MedR, Recall@K).

use serde::{Deserialize, Serialize};

/// Precision, recall and F1 of "score ≥ threshold ⇒ match" (positive class =
/// match), and the threshold-free AUROC.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Binary {
    pub threshold: f32,
    pub precision: f64,
    pub recall: f64,
    pub f1: f64,
    pub auroc: f64,
}

/// Scores of matching pairs (`pos`) and mismatched ones (`neg`) at a threshold.
pub fn binary(pos: &[f32], neg: &[f32], threshold: f32) -> Binary {
    let tp = pos.iter().filter(|&&s| s >= threshold).count() as f64;
    let fp = neg.iter().filter(|&&s| s >= threshold).count() as f64;
    let fneg = pos.len() as f64 - tp;
    let precision = if tp + fp > 0.0 { tp / (tp + fp) } else { 0.0 };
    let recall = if tp + fneg > 0.0 {
        tp / (tp + fneg)
    } else {
        0.0
    };
    let f1 = if precision + recall > 0.0 {
        2.0 * precision * recall / (precision + recall)
    } else {
        0.0
    };
    Binary {
        threshold,
        precision,
        recall,
        f1,
        auroc: auroc(pos, neg),
    }
}

/// Area under the ROC curve: the probability that a random positive scores
/// above a random negative, ties counting one half (Mann–Whitney U).
pub fn auroc(pos: &[f32], neg: &[f32]) -> f64 {
    if pos.is_empty() || neg.is_empty() {
        return f64::NAN;
    }
    // Rank all scores together (average ranks over ties).
    let mut all: Vec<(f32, bool)> = pos
        .iter()
        .map(|&s| (s, true))
        .chain(neg.iter().map(|&s| (s, false)))
        .collect();
    all.sort_by(|a, b| a.0.total_cmp(&b.0));
    let mut rank_sum_pos = 0.0f64;
    let mut i = 0;
    while i < all.len() {
        let mut j = i;
        while j + 1 < all.len() && all[j + 1].0 == all[i].0 {
            j += 1;
        }
        let avg = (i + j) as f64 / 2.0 + 1.0; // 1-based average rank
        rank_sum_pos += all[i..=j].iter().filter(|x| x.1).count() as f64 * avg;
        i = j + 1;
    }
    let (np, nn) = (pos.len() as f64, neg.len() as f64);
    (rank_sum_pos - np * (np + 1.0) / 2.0) / (np * nn)
}

/// The threshold that maximises F1 on these scores: one of the observed
/// scores (so every candidate decision is tried).
pub fn best_f1_threshold(pos: &[f32], neg: &[f32]) -> f32 {
    let mut all: Vec<(f32, bool)> = pos
        .iter()
        .map(|&s| (s, true))
        .chain(neg.iter().map(|&s| (s, false)))
        .filter(|x| x.0.is_finite())
        .collect();
    if all.is_empty() {
        return 0.0;
    }
    // Descending: sweeping the threshold down admits one more item at a time.
    all.sort_by(|a, b| b.0.total_cmp(&a.0));
    let p_total = pos.len() as f64;
    let (mut tp, mut fp) = (0.0f64, 0.0f64);
    let (mut best, mut best_t) = (-1.0f64, all[0].0);
    let mut i = 0;
    while i < all.len() {
        let t = all[i].0;
        while i < all.len() && all[i].0 == t {
            if all[i].1 {
                tp += 1.0;
            } else {
                fp += 1.0;
            }
            i += 1;
        }
        let f1 = 2.0 * tp / (tp + fp + p_total);
        if f1 > best {
            best = f1;
            best_t = t;
        }
    }
    best_t
}

/// Retrieval quality of one query direction.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize, Default)]
pub struct Retrieval {
    /// Median rank (1 = first) of the paired item.
    pub median_rank: f64,
    pub recall_at_1: f64,
    pub recall_at_5: f64,
    pub recall_at_10: f64,
}

/// Ranks of the true item of each query. `sim[q][c]`: similarity of query
/// `q` to candidate `c`; the true candidate of query `q` is `c = q`. Ties are
/// split evenly: the true item's rank is its expected rank under random
/// tie-breaking, 1 + (# scoring higher) + (# others scoring the same) / 2,
/// so identical captions (common when captions come from labels) neither
/// help nor hurt.
pub fn true_ranks(sim: &[Vec<f32>]) -> Vec<f64> {
    sim.iter()
        .enumerate()
        .map(|(q, row)| {
            let s = row[q];
            let (mut above, mut tied) = (0usize, 0usize);
            for (c, &v) in row.iter().enumerate() {
                if c != q {
                    if v > s {
                        above += 1;
                    } else if v == s {
                        tied += 1;
                    }
                }
            }
            1.0 + above as f64 + tied as f64 / 2.0
        })
        .collect()
}

/// MedR and Recall@1/5/10 from the ranks of the true items.
pub fn retrieval(ranks: &[f64]) -> Retrieval {
    if ranks.is_empty() {
        return Retrieval::default();
    }
    let mut r = ranks.to_vec();
    r.sort_by(f64::total_cmp);
    let n = r.len();
    let median_rank = if n % 2 == 1 {
        r[n / 2]
    } else {
        (r[n / 2 - 1] + r[n / 2]) / 2.0
    };
    let at = |k: usize| r.iter().filter(|&&x| x <= k as f64).count() as f64 / n as f64;
    Retrieval {
        median_rank,
        recall_at_1: at(1),
        recall_at_5: at(5),
        recall_at_10: at(10),
    }
}

/// The mean of several retrieval results (e.g. over disjoint subsets).
pub fn mean_retrieval(rs: &[Retrieval]) -> Retrieval {
    let n = rs.len().max(1) as f64;
    Retrieval {
        median_rank: rs.iter().map(|r| r.median_rank).sum::<f64>() / n,
        recall_at_1: rs.iter().map(|r| r.recall_at_1).sum::<f64>() / n,
        recall_at_5: rs.iter().map(|r| r.recall_at_5).sum::<f64>() / n,
        recall_at_10: rs.iter().map(|r| r.recall_at_10).sum::<f64>() / n,
    }
}

/// Peak signal-to-noise ratio (dB) of images in `[0, 1]`: 10·log10(1/MSE).
pub fn psnr(a: &[f32], b: &[f32]) -> f64 {
    let mse = a
        .iter()
        .zip(b)
        .map(|(x, y)| ((x - y) as f64).powi(2))
        .sum::<f64>()
        / a.len().max(1) as f64;
    if mse == 0.0 {
        f64::INFINITY
    } else {
        -10.0 * mse.log10()
    }
}

/// Structural similarity (Wang et al. 2004) of two planar images with values
/// in `[0, 1]`: an 11×11 Gaussian window (σ = 1.5), C1 = 0.01², C2 = 0.03²,
/// averaged over valid window positions and channels.
pub fn ssim(a: &[f32], b: &[f32], channels: usize, side: usize) -> f64 {
    const W: usize = 11;
    let win = side.min(W);
    let sigma = 1.5f64;
    let half = (win as f64 - 1.0) / 2.0;
    let g: Vec<f64> = (0..win)
        .map(|i| (-((i as f64 - half).powi(2)) / (2.0 * sigma * sigma)).exp())
        .collect();
    let gs: f64 = g.iter().sum();
    let g: Vec<f64> = g.iter().map(|v| v / gs).collect();
    let (c1, c2) = (0.01f64.powi(2), 0.03f64.powi(2));
    let plane = side * side;
    let (mut total, mut count) = (0.0f64, 0usize);
    for c in 0..channels {
        let pa = &a[c * plane..(c + 1) * plane];
        let pb = &b[c * plane..(c + 1) * plane];
        for y0 in 0..=side - win {
            for x0 in 0..=side - win {
                let (mut ma, mut mb, mut saa, mut sbb, mut sab) = (0.0, 0.0, 0.0, 0.0, 0.0);
                for dy in 0..win {
                    for dx in 0..win {
                        let w = g[dy] * g[dx];
                        let i = (y0 + dy) * side + x0 + dx;
                        let (u, v) = (pa[i] as f64, pb[i] as f64);
                        ma += w * u;
                        mb += w * v;
                        saa += w * u * u;
                        sbb += w * v * v;
                        sab += w * u * v;
                    }
                }
                let (va, vb, cov) = (saa - ma * ma, sbb - mb * mb, sab - ma * mb);
                total += ((2.0 * ma * mb + c1) * (2.0 * cov + c2))
                    / ((ma * ma + mb * mb + c1) * (va + vb + c2));
                count += 1;
            }
        }
    }
    total / count.max(1) as f64
}

/// Corpus BLEU-1..4 (Papineni et al. 2002): clipped n-gram precisions
/// pooled over the corpus, geometric mean up to n, times the brevity penalty
/// (reference length: the closest per candidate). `refs[i]` are the
/// references of candidate `i`.
pub fn corpus_bleu(cands: &[Vec<String>], refs: &[Vec<Vec<String>>]) -> [f64; 4] {
    use std::collections::HashMap;
    let mut hit = [0usize; 4];
    let mut tot = [0usize; 4];
    let (mut c_len, mut r_len) = (0usize, 0usize);
    for (c, rs) in cands.iter().zip(refs) {
        c_len += c.len();
        r_len += rs
            .iter()
            .map(|r| r.len())
            .min_by_key(|&l| ((l as i64 - c.len() as i64).abs(), l))
            .unwrap_or(0);
        for n in 1..=4 {
            if c.len() < n {
                continue;
            }
            let mut counts: HashMap<&[String], usize> = HashMap::new();
            for g in c.windows(n) {
                *counts.entry(g).or_default() += 1;
            }
            let mut max_ref: HashMap<&[String], usize> = HashMap::new();
            for r in rs {
                let mut rc: HashMap<&[String], usize> = HashMap::new();
                for g in r.windows(n.min(r.len().max(1))) {
                    if g.len() == n {
                        *rc.entry(g).or_default() += 1;
                    }
                }
                for (g, k) in rc {
                    let e = max_ref.entry(g).or_default();
                    *e = (*e).max(k);
                }
            }
            for (g, k) in counts {
                hit[n - 1] += k.min(max_ref.get(g).copied().unwrap_or(0));
            }
            tot[n - 1] += c.len() + 1 - n;
        }
    }
    let bp = if c_len == 0 {
        0.0
    } else if c_len > r_len {
        1.0
    } else {
        (1.0 - r_len as f64 / c_len as f64).exp()
    };
    let mut out = [0.0; 4];
    let mut log_sum = 0.0;
    for n in 0..4 {
        let p = if tot[n] == 0 {
            0.0
        } else {
            hit[n] as f64 / tot[n] as f64
        };
        log_sum += if p > 0.0 { p.ln() } else { f64::NEG_INFINITY };
        out[n] = bp * (log_sum / (n + 1) as f64).exp();
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn words(s: &str) -> Vec<String> {
        s.split_whitespace().map(String::from).collect()
    }

    #[test]
    fn bleu_matches_hand_counts() {
        // Identical to a reference: 1 at every order.
        let b = corpus_bleu(
            &[words("a big red square")],
            &[vec![words("a big red square")]],
        );
        assert!(b.iter().all(|v| (v - 1.0).abs() < 1e-12), "{b:?}");
        // "the the the the" vs "the cat": clipped unigram precision 1/4, no
        // bigrams, brevity penalty 1 (4 > 2).
        let b = corpus_bleu(&[words("the the the the")], &[vec![words("the cat")]]);
        assert!((b[0] - 0.25).abs() < 1e-12 && b[1] == 0.0, "{b:?}");
        // Shorter than the closest reference: p1 = 1, p2 = 1, BP = e^(1 - 3/2).
        let b = corpus_bleu(&[words("red square")], &[vec![words("big red square")]]);
        let bp = (1.0f64 - 1.5).exp();
        assert!(
            (b[0] - bp).abs() < 1e-12 && (b[1] - bp).abs() < 1e-12,
            "{b:?}"
        );
    }

    #[test]
    fn psnr_and_ssim_closed_forms() {
        let a = vec![0.5f32; 2 * 16 * 16];
        let mut b = a.clone();
        assert_eq!(ssim(&a, &b, 2, 16), 1.0);
        assert_eq!(psnr(&a, &b), f64::INFINITY);
        for v in &mut b {
            *v += 0.1;
        }
        // MSE 0.01 → 20 dB.
        assert!((psnr(&a, &b) - 20.0).abs() < 1e-4);
        // Constant images: SSIM = (2μaμb + C1) / (μa² + μb² + C1).
        let (ma, mb, c1) = (0.5f64, 0.6f64, 1e-4f64);
        let want = (2.0 * ma * mb + c1) / (ma * ma + mb * mb + c1);
        assert!((ssim(&a, &b, 2, 16) - want).abs() < 1e-5);
        // Structure destroyed: a checkerboard against its inverse.
        let c: Vec<f32> = (0..256).map(|i| ((i / 16 + i % 16) % 2) as f32).collect();
        let d: Vec<f32> = c.iter().map(|v| 1.0 - v).collect();
        assert!(ssim(&c, &d, 1, 16) < -0.9);
    }

    #[test]
    fn auroc_matches_pair_counting() {
        // Perfect, reversed and chance separations.
        assert_eq!(auroc(&[3.0, 4.0], &[1.0, 2.0]), 1.0);
        assert_eq!(auroc(&[1.0, 2.0], &[3.0, 4.0]), 0.0);
        assert_eq!(auroc(&[1.0], &[1.0]), 0.5);
        // Brute force on a mixed case with ties.
        let pos = [0.9f32, 0.4, 0.4, 0.7, 0.1];
        let neg = [0.4f32, 0.2, 0.8, 0.05];
        let mut wins = 0.0;
        for p in pos {
            for n in neg {
                wins += if p > n {
                    1.0
                } else if p == n {
                    0.5
                } else {
                    0.0
                };
            }
        }
        let want = wins / (pos.len() * neg.len()) as f64;
        assert!((auroc(&pos, &neg) - want).abs() < 1e-12);
    }

    #[test]
    fn f1_threshold_is_the_best_of_all_cuts() {
        let pos = [0.9f32, 0.8, 0.35, 0.7, 0.6];
        let neg = [0.5f32, 0.4, 0.3, 0.75, 0.1, 0.2];
        let t = best_f1_threshold(&pos, &neg);
        let best = binary(&pos, &neg, t).f1;
        for c in pos.iter().chain(&neg) {
            assert!(
                binary(&pos, &neg, *c).f1 <= best + 1e-12,
                "cut {c} beats {t}"
            );
        }
        // Here: ≥ 0.6 gives tp 4, fp 1 → P 0.8, R 0.8.
        assert_eq!(t, 0.6);
        let b = binary(&pos, &neg, t);
        assert!((b.precision - 0.8).abs() < 1e-12 && (b.recall - 0.8).abs() < 1e-12);
    }

    #[test]
    fn ranks_and_recall() {
        // Query 0 finds itself first; query 1 second; query 2 ties with
        // both others: expected rank 1 + 2/2 = 2.
        let sim = vec![
            vec![0.9, 0.1, 0.2],
            vec![0.5, 0.4, 0.3],
            vec![0.7, 0.7, 0.7],
        ];
        let r = true_ranks(&sim);
        assert_eq!(r, vec![1.0, 2.0, 2.0]);
        let m = retrieval(&r);
        assert_eq!(m.median_rank, 2.0);
        assert!((m.recall_at_1 - 1.0 / 3.0).abs() < 1e-12);
        assert_eq!(m.recall_at_5, 1.0);
        let avg = mean_retrieval(&[m, retrieval(&[1.0, 1.0, 1.0])]);
        assert_eq!(avg.median_rank, 1.5);
    }
}
