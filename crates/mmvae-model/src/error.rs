pub use mmvae_data::error::one_line;
use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum ModelError {
    #[error(transparent)]
    Data(#[from] mmvae_data::DataError),
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("invalid configuration: {0}")]
    Config(String),
    #[error("checkpoint {path}: {msg}")]
    Checkpoint { path: PathBuf, msg: String },
    #[error("training stopped: {0}")]
    Diverged(String),
    #[error("{0}")]
    Invalid(String),
}

impl ModelError {
    /// A problem with a checkpoint file or folder. The message is kept to
    /// one line (a parser's may quote text holding line breaks).
    pub fn checkpoint(path: impl Into<PathBuf>, msg: impl Into<String>) -> Self {
        ModelError::Checkpoint {
            path: path.into(),
            msg: one_line(msg.into()),
        }
    }
}

pub type Result<T> = std::result::Result<T, ModelError>;
