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

use super::flex::{self, Grads, Wanted};
use super::{ConvBackend, Geometry};

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
        let [node_x, node_w, node_b] = ops.parents;
        let grad = grads.consume::<Flex>(&ops.node);
        let (x_state, w_state, geometry) = ops.state;
        let x = checkpointer.retrieve_node_output::<FloatTensor<Flex>>(x_state);
        let w = checkpointer.retrieve_node_output::<FloatTensor<Flex>>(w_state);
        let wanted = Wanted {
            input: node_x.is_some(),
            weight: node_w.is_some(),
            bias: node_b.is_some(),
        };
        let Grads {
            input,
            weight,
            bias,
        } = match self.0 {
            Kind::Conv => flex::conv2d_backward(&x, &w, &grad, &geometry, wanted),
            Kind::Transposed => flex::conv_transpose2d_backward(&x, &w, &grad, &geometry, wanted),
        };
        for (node, g) in [(node_x, input), (node_w, weight), (node_b, bias)] {
            if let (Some(node), Some(g)) = (node, g) {
                grads.register::<Flex>(node.id, g);
            }
        }
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
    match ConvBackward(kind)
        .prepare::<C>([x.node(), weight.node(), bias.node()])
        .compute_bound()
        .stateful()
    {
        OpsKind::Tracked(mut prep) => {
            let x_state = prep.checkpoint(&x);
            let w_state = prep.checkpoint(&weight);
            let out = forward(
                x.into_primitive(),
                weight.into_primitive(),
                bias.into_primitive(),
                geometry,
            );
            prep.finish((x_state, w_state, geometry), out)
        }
        OpsKind::UnTracked(prep) => prep.finish(forward(
            x.into_primitive(),
            weight.into_primitive(),
            bias.into_primitive(),
            geometry,
        )),
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
