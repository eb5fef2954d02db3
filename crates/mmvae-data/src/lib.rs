//! Data for mmvae: IDX image/label files (MNIST, Fashion-MNIST), captions
//! generated from class labels, a word-level tokenizer, image files, and
//! atomic file output.
//!
//! Nothing here depends on the tensor framework, so it builds and tests fast.

pub mod captions;
pub mod celeba;
pub mod dataset;
pub mod error;
pub mod fetch;
pub mod fsutil;
pub mod idx;
pub mod imageio;
pub mod lm;
pub mod multimnist;
pub mod pairs;
pub mod polymnist;
pub mod shapes;
mod texture;
pub mod tokenizer;
pub mod vision;

pub use captions::{CaptionSet, Captioner};
pub use celeba::AttrSet;
pub use dataset::{DatasetKind, ImageLabelSet, LabelSource, Split};
pub use error::DataError;
pub use tokenizer::{TokenLevel, Vocab};
pub use vision::VisionSource;
