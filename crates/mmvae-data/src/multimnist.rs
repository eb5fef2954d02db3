//! MultiMNIST (as in the MVAE paper): one to four MNIST digits in the fixed
//! slots of a 2×2 grid of 28×28 cells (a 56×56 image), filled left to right
//! and top to bottom; the text is the digit string, e.g. `1773`, modelled
//! character by character (`data.tokenizer = "char"`).
//!
//! Classes are digit strings: 10 of one digit, 100 of two, 1,000 of three
//! and 10,000 of four (11,110 in all). Each class is also four attribute
//! slots, one per cell, each a digit or [`EMPTY`]. Items are composed from
//! the MNIST split of the same name by a seeded hash, as many as it has.

use crate::captions::splitmix64;
use crate::dataset::ImageLabelSet;

/// Cells per row and column.
pub const GRID: usize = 2;
/// Digits at most.
pub const SLOTS: usize = GRID * GRID;
/// MNIST's side.
pub const CELL: usize = 28;
/// The composed image's side.
pub const SIDE: usize = GRID * CELL;
/// The slot value of an empty cell.
pub const EMPTY: usize = 10;
/// 10 + 100 + 1,000 + 10,000 digit strings.
pub const NUM_CLASSES: usize = 11_110;
/// Seed of the composition (which digits, how many).
pub const SEED: u64 = 0x4D55_4C54_494D_4E53;

/// The slots' names, in cell order.
pub const SLOT_NAMES: [&str; SLOTS] = ["slot 1", "slot 2", "slot 3", "slot 4"];

/// First class of the strings of `n` digits: (10^n − 10) / 9.
fn offset(n: usize) -> usize {
    (10usize.pow(n as u32) - 10) / 9
}

/// The class of a digit string (1 to 4 digits, each 0..=9).
pub fn class_of_digits(digits: &[usize]) -> usize {
    assert!((1..=SLOTS).contains(&digits.len()) && digits.iter().all(|&d| d < 10));
    offset(digits.len()) + digits.iter().fold(0, |v, &d| v * 10 + d)
}

/// The digits of class `c`.
pub fn digits_of_class(c: usize) -> Vec<usize> {
    assert!(c < NUM_CLASSES, "class {c} out of range");
    let n = (1..=SLOTS).rev().find(|&n| c >= offset(n)).expect("n >= 1");
    let mut v = c - offset(n);
    let mut out = vec![0; n];
    for d in out.iter_mut().rev() {
        *d = v % 10;
        v /= 10;
    }
    out
}

/// The caption of class `c`: its digit string.
pub fn caption(c: usize) -> String {
    digits_of_class(c)
        .iter()
        .map(|d| char::from(b'0' + *d as u8))
        .collect()
}

/// Each slot's value for class `c`: a digit, or [`EMPTY`].
pub fn attributes(c: usize) -> Vec<usize> {
    let mut a = digits_of_class(c);
    a.resize(SLOTS, EMPTY);
    a
}

/// Each slot's value as a caption says it: the digit at that position,
/// [`EMPTY`] past the end, `None` where the character is not a digit or the
/// string is longer than four. Spaces are ignored.
pub fn parse_caption(caption: &str) -> Vec<Option<usize>> {
    let chars: Vec<char> = caption.chars().filter(|c| !c.is_whitespace()).collect();
    if chars.len() > SLOTS {
        return vec![None; SLOTS];
    }
    (0..SLOTS)
        .map(|i| match chars.get(i) {
            None => Some(EMPTY),
            Some(c) => c.to_digit(10).map(|d| d as usize),
        })
        .collect()
}

/// The class a caption names: 1 to 4 digits and nothing else.
pub fn class_of_caption(caption: &str) -> Option<usize> {
    let digits: Vec<usize> = caption
        .chars()
        .filter(|c| !c.is_whitespace())
        .map(|c| c.to_digit(10).map(|d| d as usize))
        .collect::<Option<_>>()?;
    (1..=SLOTS)
        .contains(&digits.len())
        .then(|| class_of_digits(&digits))
}

/// Compose one MultiMNIST split from an MNIST split: as many items as it
/// has, item i holding 1–4 digits drawn by a hash of (`seed`, i).
pub fn compose(mnist: &ImageLabelSet, seed: u64) -> ImageLabelSet {
    let n = mnist.len();
    let plane = SIDE * SIDE;
    let mut images = vec![0u8; n * plane];
    let mut labels = Vec::with_capacity(n);
    for i in 0..n {
        let h = splitmix64(seed ^ splitmix64(i as u64));
        let count = 1 + (h % SLOTS as u64) as usize;
        let mut digits = Vec::with_capacity(count);
        let out = &mut images[i * plane..(i + 1) * plane];
        for slot in 0..count {
            let j = (splitmix64(h ^ (slot as u64 + 1)) % n as u64) as usize;
            digits.push(mnist.labels[j] as usize);
            let (r0, c0) = ((slot / GRID) * CELL, (slot % GRID) * CELL);
            let src = mnist.image(j);
            for r in 0..CELL {
                out[(r0 + r) * SIDE + c0..(r0 + r) * SIDE + c0 + CELL]
                    .copy_from_slice(&src[r * CELL..(r + 1) * CELL]);
            }
        }
        labels.push(class_of_digits(&digits) as u32);
    }
    ImageLabelSet::new(
        crate::DatasetKind::MultiMnist,
        1,
        (SIDE, SIDE),
        images,
        labels,
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::DatasetKind;

    #[test]
    fn classes_are_digit_strings_both_ways() {
        assert_eq!(class_of_digits(&[0]), 0);
        assert_eq!(class_of_digits(&[9]), 9);
        assert_eq!(class_of_digits(&[0, 0]), 10);
        assert_eq!(class_of_digits(&[9, 9, 9, 9]), NUM_CLASSES - 1);
        for c in [0, 9, 10, 57, 109, 110, 1109, 1110, 2883, NUM_CLASSES - 1] {
            assert_eq!(class_of_digits(&digits_of_class(c)), c);
            assert_eq!(class_of_caption(&caption(c)), Some(c));
        }
        assert_eq!(caption(class_of_digits(&[1, 7, 7, 3])), "1773");
        assert_eq!(caption(class_of_digits(&[0, 4])), "04");
        assert_eq!(
            attributes(class_of_digits(&[5, 2])),
            vec![5, 2, EMPTY, EMPTY]
        );
        assert_eq!(class_of_caption("1 7 7 3"), class_of_caption("1773"));
        assert_eq!(class_of_caption("17a"), None);
        assert_eq!(class_of_caption("12345"), None);
        assert_eq!(class_of_caption(""), None);
        assert_eq!(
            parse_caption("17x"),
            vec![Some(1), Some(7), None, Some(EMPTY)]
        );
    }

    #[test]
    fn composed_images_hold_their_digits_in_their_slots() {
        // A tiny MNIST whose image j is filled with the value j + 1.
        let n = 30;
        let mnist = ImageLabelSet::new(
            DatasetKind::Mnist,
            1,
            (CELL, CELL),
            (0..n)
                .flat_map(|j| vec![j as u8 + 1; CELL * CELL])
                .collect(),
            (0..n).map(|j| (j % 10) as u32).collect(),
        );
        let set = compose(&mnist, SEED);
        assert_eq!((set.len(), set.rows, set.pixels()), (n, SIDE, SIDE * SIDE));
        let mut counts = [0usize; SLOTS + 1];
        for i in 0..n {
            let digits = digits_of_class(set.labels[i] as usize);
            counts[digits.len()] += 1;
            let img = set.image(i);
            for slot in 0..SLOTS {
                let (r0, c0) = ((slot / GRID) * CELL, (slot % GRID) * CELL);
                let v = img[(r0 + 5) * SIDE + c0 + 5];
                if slot < digits.len() {
                    // The cell holds one source image whose label is the digit.
                    assert!(
                        v > 0 && (v as usize - 1) % 10 == digits[slot],
                        "item {i} slot {slot}"
                    );
                } else {
                    assert_eq!(v, 0, "item {i}: slot {slot} should be empty");
                }
            }
        }
        assert!(counts[1..].iter().all(|&c| c > 0), "{counts:?}");
        // Deterministic.
        assert_eq!(compose(&mnist, SEED).images, set.images);
    }
}
