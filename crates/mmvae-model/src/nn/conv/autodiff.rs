//! The batched convolutions under burn's autodiff: the forward pass on
//! the CPU backend, and a backward step that computes the wanted
//! gradients with [`super::flex`]'s backward passes.

use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::checkpoint::strategy::CheckpointStrategy;
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops, OpsKind};
use burn::backend::autodiff::NodeId;
use burn::backend::tensor::FloatTensor;
use burn::backend::{Autodiff, Flex};

use super::flex;
use super::{ConvBackend, Geometry};
use crate::nn::grads::Inputs;

/// Which convolution a backward step differentiates.
#[derive(Clone, Copy, Debug)]
enum Kind {
    Conv,
    Transposed,
}

#[derive(Debug)]
struct ConvBackward(Kind);

impl Backward<Flex, 3> for ConvBackward {
    type State = (NodeId, NodeId, Geometry);

    fn backward(
        self,
        ops: Ops<Self::State, 3>,
        grads: &mut Gradients,
        checkpointer: &mut Checkpointer,
    ) {
        let (i, geometry) = Inputs::take(ops, grads, checkpointer);
        let (x, w, grad, wanted) = (&i.x, &i.weight, &i.grad, i.wanted());
        let g = match self.0 {
            Kind::Conv => flex::conv2d_backward(x, w, grad, &geometry, wanted),
            Kind::Transposed => flex::conv_transpose2d_backward(x, w, grad, &geometry, wanted),
        };
        g.register(i.parents, grads);
    }
}

/// A batched convolution's forward pass on the CPU backend.
type FlexConv =
    fn(FloatTensor<Flex>, FloatTensor<Flex>, FloatTensor<Flex>, Geometry) -> FloatTensor<Flex>;

/// Runs `forward` and registers its backward step when any input is tracked.
fn record<C: CheckpointStrategy>(
    kind: Kind,
    x: FloatTensor<Autodiff<Flex, C>>,
    weight: FloatTensor<Autodiff<Flex, C>>,
    bias: FloatTensor<Autodiff<Flex, C>>,
    geometry: Geometry,
    forward: FlexConv,
) -> FloatTensor<Autodiff<Flex, C>> {
    let prep = ConvBackward(kind)
        .prepare::<C>([x.node(), weight.node(), bias.node()])
        .compute_bound()
        .stateful();
    let run = |x: FloatTensor<Autodiff<Flex, C>>,
               w: FloatTensor<Autodiff<Flex, C>>,
               b: FloatTensor<Autodiff<Flex, C>>| {
        forward(
            x.into_primitive(),
            w.into_primitive(),
            b.into_primitive(),
            geometry,
        )
    };
    match prep {
        OpsKind::Tracked(mut prep) => {
            let state = (prep.checkpoint(&x), prep.checkpoint(&weight), geometry);
            prep.finish(state, run(x, weight, bias))
        }
        OpsKind::UnTracked(prep) => prep.finish(run(x, weight, bias)),
    }
}

impl<C: CheckpointStrategy> ConvBackend for Autodiff<Flex, C> {
    fn batched_conv2d(
        x: FloatTensor<Self>,
        weight: FloatTensor<Self>,
        bias: FloatTensor<Self>,
        geometry: Geometry,
    ) -> FloatTensor<Self> {
        record::<C>(Kind::Conv, x, weight, bias, geometry, Flex::batched_conv2d)
    }

    fn batched_conv_transpose2d(
        x: FloatTensor<Self>,
        weight: FloatTensor<Self>,
        bias: FloatTensor<Self>,
        geometry: Geometry,
    ) -> FloatTensor<Self> {
        record::<C>(
            Kind::Transposed,
            x,
            weight,
            bias,
            geometry,
            Flex::batched_conv_transpose2d,
        )
    }
}
