//! Test helpers.

use std::sync::{Mutex, MutexGuard};

use burn::module::{ModuleMapper, ModuleVisitor, Param};
use burn::prelude::*;
use burn::tensor::Gradients;

static RNG: Mutex<()> = Mutex::new(());

/// burn's CPU backend has one process-wide random generator; tests that seed
/// it and expect a given sequence hold this lock so that tests running on
/// other threads do not draw from it in between.
pub fn rng_lock() -> MutexGuard<'static, ()> {
    RNG.lock().unwrap_or_else(|e| e.into_inner())
}

/// Collects every float parameter's gradient (zeros where it has none), in
/// visiting order, flattened.
pub struct GradsOf<'a>(pub &'a Gradients, pub Vec<Vec<f32>>);
impl ModuleVisitor for GradsOf<'_> {
    fn visit_float<const D: usize>(&mut self, p: &Param<Tensor<D>>) {
        let n = p.val().shape().num_elements();
        let g = p
            .val()
            .grad(self.0)
            .map(|g| g.try_into_vec_as::<f32>().unwrap())
            .unwrap_or(vec![0.0; n]);
        self.1.push(g);
    }
}

/// Adds `h` to element `index` of the `target`-th float parameter (in
/// visiting order); `seen` starts at 0.
pub struct Perturb {
    pub target: usize,
    pub index: usize,
    pub h: f32,
    pub seen: usize,
}
impl ModuleMapper for Perturb {
    fn map_float<const D: usize>(&mut self, p: Param<Tensor<D>>) -> Param<Tensor<D>> {
        let k = self.seen;
        self.seen += 1;
        if k != self.target {
            return p;
        }
        let (index, h) = (self.index, self.h);
        p.map(move |t| {
            let shape = t.shape();
            let mut d = vec![0f32; shape.num_elements()];
            d[index] = h;
            let dev = t.device();
            t + Tensor::from_data(TensorData::new(d, shape), &dev)
        })
    }
}
