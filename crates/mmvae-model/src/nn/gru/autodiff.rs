//! The fused GRU cell under burn's autodiff: the forward pass keeps the
//! gates, and the backward step computes the three inputs' gradients with
//! [`cell::backward`].

use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::checkpoint::strategy::CheckpointStrategy;
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops, OpsKind};
use burn::backend::tensor::FloatTensor;
use burn::backend::{Autodiff, Flex};

use super::cell::{self, Gates};
use super::GruBackend;

#[derive(Debug)]
struct CellBackward;

/// What the backward step reads: the gates, the hidden projection `gh`
/// (its new-gate block) and the previous state.
type Saved = (Gates, FloatTensor<Flex>, FloatTensor<Flex>);

impl Backward<Flex, 3> for CellBackward {
    type State = Saved;

    fn backward(
        self,
        ops: Ops<Self::State, 3>,
        grads: &mut Gradients,
        _checkpointer: &mut Checkpointer,
    ) {
        let [node_gx, node_gh, node_h] = ops.parents;
        let grad = grads.consume::<Flex>(&ops.node);
        let (gates, gh, h) = ops.state;
        let g = cell::backward(&gates, &gh, &h, &grad);
        for (node, g) in [(node_gx, g.gx), (node_gh, g.gh), (node_h, g.h)] {
            if let Some(node) = node {
                grads.register::<Flex>(node.id, g);
            }
        }
    }
}

impl<C: CheckpointStrategy> GruBackend for Autodiff<Flex, C> {
    fn gru_cell(
        gx: FloatTensor<Self>,
        gh: FloatTensor<Self>,
        h: FloatTensor<Self>,
    ) -> FloatTensor<Self> {
        match CellBackward
            .prepare::<C>([gx.node(), gh.node(), h.node()])
            .compute_bound()
            .stateful()
        {
            OpsKind::Tracked(prep) => {
                let (gh, h) = (gh.into_primitive(), h.into_primitive());
                let (out, gates) = cell::forward(&gx.into_primitive(), &gh, &h);
                prep.finish((gates, gh, h), out)
            }
            OpsKind::UnTracked(prep) => prep.finish(
                cell::forward(
                    &gx.into_primitive(),
                    &gh.into_primitive(),
                    &h.into_primitive(),
                )
                .0,
            ),
        }
    }
}
