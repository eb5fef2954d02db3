//! Contiguous `f32` views of burn-flex tensors, for the hand-written
//! kernels of the CPU backend.

use burn::tensor::TensorData;
use burn_flex::FlexTensor;

/// A tensor of `shape` holding `values` (row-major).
pub fn tensor(values: Vec<f32>, shape: &[usize]) -> FlexTensor {
    FlexTensor::from_data(TensorData::new(values, shape.to_vec()))
}

/// A contiguous `f32` copy-free view of a tensor (copied only when it is
/// strided).
pub struct Dense(FlexTensor);

impl Dense {
    pub fn new(t: &FlexTensor) -> Self {
        Self(t.to_contiguous())
    }

    pub fn values(&self) -> &[f32] {
        let (start, end) = self
            .0
            .layout()
            .contiguous_offsets()
            .expect("contiguous after copy");
        &self.0.storage::<f32>()[start..end]
    }

    /// The tensor's dimensions.
    pub fn dims(&self) -> &[usize] {
        self.0.layout().shape()
    }
}
