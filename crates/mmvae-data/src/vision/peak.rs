//! How well the brightest value of one copy alone names each attribute.

use crate::dataset::ImageLabelSet;

/// How well the brightest value of one copy alone names each attribute:
/// the most frequent value of each attribute slot at each brightest level,
/// counted on one split ([`PeakRule::fit`]) and scored on another
/// ([`PeakRule::accuracy`]). A lower bound on how much of each attribute
/// the copy keeps: on shapes level 3 the grey copy's brightest pixel is
/// the colour's luminance wherever the texture reaches its full
/// brightness, which tells red (95 of 255), blue (97) and pink (105)
/// apart.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeakRule {
    /// `[slot][level]`: the value named at that brightest level.
    named: Vec<[usize; 256]>,
}

impl PeakRule {
    /// Count view `v` of the labelled `set`.
    pub fn fit(set: &ImageLabelSet, v: usize) -> Self {
        let slots = set.kind.slots();
        let mut counts: Vec<Vec<[usize; 256]>> =
            slots.iter().map(|&(_, n)| vec![[0; 256]; n]).collect();
        for (peak, attrs) in peaks_and_attributes(set, v) {
            for (slot, &value) in counts.iter_mut().zip(&attrs) {
                slot[value][peak] += 1;
            }
        }
        let named = counts.iter().map(|slot| name_levels(slot)).collect();
        Self { named }
    }

    /// Share of the items of `set` whose attribute the rule names right,
    /// per slot, reading view `v`.
    pub fn accuracy(&self, set: &ImageLabelSet, v: usize) -> Vec<f64> {
        let mut right = vec![0usize; self.named.len()];
        for (peak, attrs) in peaks_and_attributes(set, v) {
            for ((r, named), &value) in right.iter_mut().zip(&self.named).zip(&attrs) {
                *r += usize::from(named[peak] == value);
            }
        }
        let n = set.len().max(1) as f64;
        right.into_iter().map(|r| r as f64 / n).collect()
    }
}

/// Each item's brightest value in view `v` (over all channels) and its
/// attribute values, in item order.
fn peaks_and_attributes(
    set: &ImageLabelSet,
    v: usize,
) -> impl Iterator<Item = (usize, Vec<usize>)> + '_ {
    (0..set.len()).map(move |i| {
        let peak = set.view_image(v, i).iter().copied().max().unwrap_or(0);
        (
            usize::from(peak),
            set.kind.attributes(set.labels[i] as usize),
        )
    })
}

/// For each brightest level, the value counted most often there (the
/// lowest on a tie); at a level never seen, the value seen most overall.
///
/// # Shapes
/// `counts`: `[values][256]`
fn name_levels(counts: &[[usize; 256]]) -> [usize; 256] {
    let most = |f: &dyn Fn(usize) -> usize| {
        (0..counts.len())
            .rev()
            .max_by_key(|&value| f(value))
            .unwrap_or(0)
    };
    let overall = most(&|value| counts[value].iter().sum());
    std::array::from_fn(|level| {
        if counts.iter().all(|c| c[level] == 0) {
            overall
        } else {
            most(&|value| counts[value][level])
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dataset::DatasetKind;
    use crate::shapes::Level;
    use crate::vision::VisionSource;

    #[test]
    fn the_level_named_at_each_peak_is_the_most_counted_there() {
        let mut counts = vec![[0usize; 256]; 3];
        counts[0][10] = 4;
        counts[2][10] = 5;
        counts[1][20] = 2;
        counts[2][20] = 2;
        counts[1][30] = 9;
        let named = name_levels(&counts);
        assert_eq!(named[10], 2, "the most counted");
        assert_eq!(named[20], 1, "a tie names the lowest value");
        assert_eq!(named[30], 1);
        // Value 1 is counted 11 times in all, 2 seven and 0 four.
        assert_eq!(named[0], 1, "an unseen level names the value seen most");
        assert_eq!(named[255], 1);
    }

    /// On shapes level 3 the grey copy's brightest pixel names the colour
    /// far better than chance (a fifth) and than the luminance's three
    /// clusters would if it always fell short of the colour's own (green,
    /// yellow and one of red, blue and pink: about 60%).
    #[test]
    fn the_grey_copys_brightest_pixel_names_most_colours_of_level_3() {
        use crate::dataset::Split;
        let kind = DatasetKind::Vision(VisionSource::Shapes(Level::L3));
        let set = ImageLabelSet::open(kind, None, Split::Test, 2).unwrap();
        let grey_view = set.view_of("grey").unwrap();
        let fit = set.select(&(0..2000).collect::<Vec<_>>());
        let held = set.select(&(2000..3000).collect::<Vec<_>>());
        let rule = PeakRule::fit(&fit, grey_view);
        let acc = rule.accuracy(&held, grey_view);
        assert_eq!(acc.len(), 3, "size, colour, shape");
        assert!(acc[1] > 0.85, "colour from the grey peak: {acc:?}");
        // It says next to nothing of the size and the shape (chance: a
        // half and a third).
        assert!(acc[0] < 0.6 && acc[2] < 0.45, "{acc:?}");
    }
}
