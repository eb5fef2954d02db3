//! Moving values between the host and the device: tensors read back as
//! vectors, and item indices as an index tensor.
//!
//! A read fails only when the device does (a kernel or its storage), which
//! no caller can repair, so these panic with burn's message, as
//! `Tensor::into_data` and `into_scalar` do. They never hand back an empty
//! vector that would pass for data.

use burn::prelude::*;

/// The values of a float tensor, row-major.
#[track_caller]
pub fn floats<const D: usize>(t: Tensor<D>) -> Vec<f32> {
    t.try_into_vec_as::<f32>()
        .unwrap_or_else(|e| panic!("reading a tensor back from the device failed: {e}"))
}

/// The values of an integer tensor, row-major.
#[track_caller]
pub fn ints<const D: usize>(t: Tensor<D, Int>) -> Vec<i64> {
    t.try_into_vec_as::<i64>()
        .unwrap_or_else(|e| panic!("reading a tensor back from the device failed: {e}"))
}

/// The values of an integer tensor of indices (an `argmax`, token ids),
/// row-major.
#[track_caller]
pub fn indices<const D: usize>(t: Tensor<D, Int>) -> Vec<usize> {
    ints(t).into_iter().map(|i| i as usize).collect()
}

/// Item indices as a 1-D index tensor (for `select`).
///
/// # Shapes
/// → `[values.len()]`
pub fn index_tensor(values: impl IntoIterator<Item = usize>, device: &Device) -> Tensor<1, Int> {
    let v: Vec<i64> = values.into_iter().map(|i| i as i64).collect();
    let n = v.len();
    Tensor::from_data(TensorData::new(v, [n]), device)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_read_back_in_row_major_order() {
        let device = Device::flex();
        let t = Tensor::<2>::from_data([[1.0, 2.0, 3.0], [4.0, 5.0, 6.5]], &device);
        assert_eq!(floats(t.clone()), vec![1.0, 2.0, 3.0, 4.0, 5.0, 6.5]);
        assert_eq!(indices(t.argmax(1).reshape([2])), vec![2, 2]);
        let idx = index_tensor([2, 0, 7], &device);
        assert_eq!(idx.dims(), [3]);
        assert_eq!(ints(idx), vec![2, 0, 7]);
    }

    #[test]
    fn an_index_tensor_selects_those_rows() {
        let device = Device::flex();
        let t = Tensor::<2>::from_data([[0.0, 0.5], [1.0, 1.5], [2.0, 2.5]], &device);
        let picked = t.select(0, index_tensor([2, 0], &device));
        assert_eq!(floats(picked), vec![2.0, 2.5, 0.0, 0.5]);
    }
}
