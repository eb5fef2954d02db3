//! The fused fully connected layer under burn's autodiff: the forward pass
//! on the CPU backend, and a backward step that computes the wanted
//! gradients with [`super::flex::backward`].

use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::checkpoint::strategy::CheckpointStrategy;
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops, OpsKind};
use burn::backend::autodiff::NodeId;
use burn::backend::tensor::FloatTensor;
use burn::backend::{Autodiff, Flex};

use super::flex;
use super::{LinearBackend, Products};
use crate::nn::grads::Inputs;

#[derive(Debug)]
struct LinearBackward;

impl Backward<Flex, 3> for LinearBackward {
    type State = (NodeId, NodeId, Products);

    fn backward(
        self,
        ops: Ops<Self::State, 3>,
        grads: &mut Gradients,
        checkpointer: &mut Checkpointer,
    ) {
        let (i, products) = Inputs::take(ops, grads, checkpointer);
        let g = flex::backward(&i.x, &i.weight, &i.grad, products, i.wanted());
        g.register(i.parents, grads);
    }
}

impl<C: CheckpointStrategy> LinearBackend for Autodiff<Flex, C> {
    fn fused_linear(
        x: FloatTensor<Self>,
        weight: FloatTensor<Self>,
        bias: FloatTensor<Self>,
        products: Products,
    ) -> FloatTensor<Self> {
        let prep = LinearBackward
            .prepare::<C>([x.node(), weight.node(), bias.node()])
            .compute_bound()
            .stateful();
        let forward = |x: FloatTensor<Self>, w: FloatTensor<Self>, b: FloatTensor<Self>| {
            flex::forward(
                &x.into_primitive(),
                &w.into_primitive(),
                &b.into_primitive(),
                products,
            )
        };
        match prep {
            OpsKind::Tracked(mut prep) => {
                let state = (prep.checkpoint(&x), prep.checkpoint(&weight), products);
                prep.finish(state, forward(x, weight, bias))
            }
            OpsKind::UnTracked(prep) => prep.finish(forward(x, weight, bias)),
        }
    }
}
