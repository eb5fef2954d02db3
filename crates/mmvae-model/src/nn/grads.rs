//! The gradients of the CPU backend's operations on an input, a weight
//! and a bias (the batched convolutions, the fully connected layers):
//! which of them a backward step computes, and handing them to burn's
//! autodiff.

use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::Ops;
use burn::backend::autodiff::NodeId;
use burn::backend::tensor::FloatTensor;
use burn::backend::Flex;
use burn_flex::FlexTensor;

/// What a backward step starts from: the ids of the tracked ones of
/// `[input, weight, bias]`, the gradient of the operation's output, and
/// the input and weight saved by its forward pass.
pub struct Inputs {
    pub parents: [Option<NodeId>; 3],
    pub grad: FlexTensor,
    pub x: FlexTensor,
    pub weight: FlexTensor,
}

impl Inputs {
    /// Takes them from a step whose state is the input's and the weight's
    /// checkpoints and anything else (`S`, returned beside them).
    pub fn take<S>(
        ops: Ops<(NodeId, NodeId, S), 3>,
        grads: &mut Gradients,
        checkpointer: &mut Checkpointer,
    ) -> (Self, S) {
        let (x, weight, rest) = ops.state;
        let inputs = Self {
            parents: ops.parents.map(|p| p.map(|node| node.id)),
            grad: grads.consume::<Flex>(&ops.node),
            x: checkpointer.retrieve_node_output::<FloatTensor<Flex>>(x),
            weight: checkpointer.retrieve_node_output::<FloatTensor<Flex>>(weight),
        };
        (inputs, rest)
    }

    /// The gradients to compute.
    pub fn wanted(&self) -> Wanted {
        Wanted::of(&self.parents)
    }
}

/// Which gradients a backward pass computes.
#[derive(Clone, Copy, Debug)]
pub struct Wanted {
    pub input: bool,
    pub weight: bool,
    pub bias: bool,
}

impl Wanted {
    /// The gradients of the tracked ones of `[input, weight, bias]`.
    pub fn of(parents: &[Option<NodeId>; 3]) -> Self {
        let [input, weight, bias] = parents.map(|p| p.is_some());
        Self {
            input,
            weight,
            bias,
        }
    }
}

/// The gradients of an operation's input, weight and bias (those wanted).
pub struct Grads {
    pub input: Option<FlexTensor>,
    pub weight: Option<FlexTensor>,
    pub bias: Option<FlexTensor>,
}

impl Grads {
    /// Adds each computed gradient to that of its node in `[input, weight,
    /// bias]`.
    pub fn register(self, parents: [Option<NodeId>; 3], grads: &mut Gradients) {
        let [x, w, b] = parents;
        for (node, g) in [(x, self.input), (w, self.weight), (b, self.bias)] {
            if let (Some(node), Some(g)) = (node, g) {
                grads.register::<Flex>(node, g);
            }
        }
    }
}
