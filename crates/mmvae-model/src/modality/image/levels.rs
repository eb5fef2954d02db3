//! Which intensity levels occur in an image: the input of a conv encoder's
//! `levels` pathway ([`crate::config::ImageModel::Conv`]).

use burn::prelude::*;
use burn::tensor::IndexingUpdateOp;

/// Levels of an 8-bit channel.
pub const LEVELS: usize = 256;

/// For each image and channel, 1 at each of the 256 levels that some
/// pixel of the channel takes (a pixel `v` in [0, 1] is at level
/// `round(255 v)`), 0 elsewhere. A constant of the input: no gradient
/// flows through it.
///
/// # Shapes
/// `x`: `[batch, colours * pixels]` (planar) → `[batch, colours * 256]`,
/// channel by channel.
pub fn level_presence(x: Tensor<2>, colours: usize) -> Tensor<2> {
    let [b, n] = x.dims();
    let device = x.device();
    let per_channel = n / colours;
    let level = x
        .detach()
        .mul_scalar((LEVELS - 1) as f32)
        .round()
        .clamp(0.0, (LEVELS - 1) as f32)
        .int()
        .reshape([b, colours, per_channel]);
    // Channel c's levels go to columns c·256 … c·256 + 255.
    let offset = Tensor::<1, Int>::arange(0..colours as i64, &device)
        .mul_scalar(LEVELS as i64)
        .reshape([1, colours, 1]);
    let index = (level + offset).reshape([b, n]);
    let counts = Tensor::<2>::zeros([b, colours * LEVELS], &device).scatter(
        1,
        index,
        Tensor::ones([b, n], &device),
        IndexingUpdateOp::Add,
    );
    counts.clamp_max(1.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn presence(pixels: &[f32], colours: usize) -> Vec<f32> {
        let dev = Device::flex();
        let x = Tensor::<2>::from_data(TensorData::new(pixels.to_vec(), [1, pixels.len()]), &dev);
        level_presence(x, colours)
            .into_data()
            .try_into_vec::<f32>()
            .unwrap()
    }

    #[test]
    fn each_level_taken_is_marked_once_per_channel() {
        // One grey channel of four pixels: 0, 95/255 twice, 1.
        let p = presence(&[0.0, 95.0 / 255.0, 95.0 / 255.0, 1.0], 1);
        assert_eq!(p.len(), 256);
        let on: Vec<usize> = (0..256).filter(|&i| p[i] == 1.0).collect();
        assert_eq!(on, vec![0, 95, 255]);
        assert_eq!(p.iter().sum::<f32>(), 3.0);
        // Two channels of two pixels: levels {2, 97} then {97}; values off
        // the grid round to the nearest level.
        let p = presence(&[2.2 / 255.0, 96.6 / 255.0, 97.4 / 255.0, 97.0 / 255.0], 2);
        let on: Vec<usize> = (0..512).filter(|&i| p[i] == 1.0).collect();
        assert_eq!(on, vec![2, 97, 256 + 97]);
    }

    #[test]
    fn the_input_is_left_as_it_was() {
        let dev = Device::flex();
        let x =
            Tensor::<2>::from_data(TensorData::new(vec![0.25f32, 0.5, 0.75, 1.0], [2, 2]), &dev);
        let _ = level_presence(x.clone(), 1);
        let _ = level_presence(x.clone(), 1);
        assert_eq!(
            x.into_data().try_into_vec::<f32>().unwrap(),
            vec![0.25, 0.5, 0.75, 1.0]
        );
    }

    #[test]
    fn a_batch_keeps_its_items_apart() {
        let dev = Device::flex();
        let x = Tensor::<2>::from_data(TensorData::new(vec![0.0, 0.0, 1.0, 1.0], [2, 2]), &dev);
        let p = level_presence(x, 1)
            .into_data()
            .try_into_vec::<f32>()
            .unwrap();
        assert_eq!((p[0], p[255]), (1.0, 0.0));
        assert_eq!((p[256], p[256 + 255]), (0.0, 1.0));
    }
}
