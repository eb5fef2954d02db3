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

use super::flex::{self, Grads, Wanted};
use super::{LinearBackend, Products};

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
        let [node_x, node_w, node_b] = ops.parents;
        let grad = grads.consume::<Flex>(&ops.node);
        let (x_state, w_state, products) = ops.state;
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
        } = flex::backward(&x, &w, &grad, products, wanted);
        for (node, g) in [(node_x, input), (node_w, weight), (node_b, bias)] {
            if let (Some(node), Some(g)) = (node, g) {
                grads.register::<Flex>(node.id, g);
            }
        }
    }
}

impl<C: CheckpointStrategy> LinearBackend for Autodiff<Flex, C> {
    fn fused_linear(
        x: FloatTensor<Self>,
        weight: FloatTensor<Self>,
        bias: FloatTensor<Self>,
        products: Products,
    ) -> FloatTensor<Self> {
        match LinearBackward
            .prepare::<C>([x.node(), weight.node(), bias.node()])
            .compute_bound()
            .stateful()
        {
            OpsKind::Tracked(mut prep) => {
                let x_state = prep.checkpoint(&x);
                let w_state = prep.checkpoint(&weight);
                let out = flex::forward(
                    &x.into_primitive(),
                    &weight.into_primitive(),
                    &bias.into_primitive(),
                    products,
                );
                prep.finish((x_state, w_state, products), out)
            }
            OpsKind::UnTracked(prep) => prep.finish(flex::forward(
                &x.into_primitive(),
                &weight.into_primitive(),
                &bias.into_primitive(),
                products,
            )),
        }
    }
}
