//! The fused GRU recurrence under burn's autodiff: the forward pass keeps
//! the states, projections and gates, and the backward step computes the
//! four inputs' gradients with [`sequence::backward`].

use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::checkpoint::strategy::CheckpointStrategy;
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops, OpsKind};
use burn::backend::tensor::FloatTensor;
use std::sync::Arc;

use burn::backend::{Autodiff, Flex};

use super::sequence::{self, Saved};
use super::GruBackend;

#[derive(Debug)]
struct SequenceBackward;

impl Backward<Flex, 4> for SequenceBackward {
    /// What the forward pass kept, and the hidden weights.
    /// (shared: burn's state must be cheap to clone)
    type State = (Arc<Saved>, FloatTensor<Flex>);

    fn backward(
        self,
        ops: Ops<Self::State, 4>,
        grads: &mut Gradients,
        _checkpointer: &mut Checkpointer,
    ) {
        let [node_gx, node_h0, node_weight, node_bias] = ops.parents;
        let grad = grads.consume::<Flex>(&ops.node);
        let (saved, weight) = ops.state;
        let g = sequence::backward(&saved, &weight, &grad);
        let pairs = [
            (node_gx, g.gx),
            (node_h0, g.h0),
            (node_weight, g.weight),
            (node_bias, g.bias),
        ];
        for (node, g) in pairs {
            if let Some(node) = node {
                grads.register::<Flex>(node.id, g);
            }
        }
    }
}

impl<C: CheckpointStrategy> GruBackend for Autodiff<Flex, C> {
    fn gru_sequence(
        gx: FloatTensor<Self>,
        h0: FloatTensor<Self>,
        weight: FloatTensor<Self>,
        bias: FloatTensor<Self>,
    ) -> FloatTensor<Self> {
        let nodes = [gx.node(), h0.node(), weight.node(), bias.node()];
        let (gx, h0) = (gx.into_primitive(), h0.into_primitive());
        let (weight, bias) = (weight.into_primitive(), bias.into_primitive());
        match SequenceBackward
            .prepare::<C>(nodes)
            .compute_bound()
            .stateful()
        {
            OpsKind::Tracked(prep) => {
                let (out, saved) = sequence::forward_kept(&gx, &h0, &weight, &bias);
                prep.finish((Arc::new(saved), weight), out)
            }
            OpsKind::UnTracked(prep) => prep.finish(sequence::forward(&gx, &h0, &weight, &bias)),
        }
    }
}
