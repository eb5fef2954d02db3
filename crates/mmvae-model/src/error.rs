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
    pub fn checkpoint(path: impl Into<PathBuf>, msg: impl Into<String>) -> Self {
        ModelError::Checkpoint {
            path: path.into(),
            msg: msg.into(),
        }
    }
}

pub type Result<T> = std::result::Result<T, ModelError>;
