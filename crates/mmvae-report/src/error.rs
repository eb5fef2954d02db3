use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    #[error("{0}")]
    Invalid(String),
    #[error("plotting failed: {0}")]
    Plot(String),
    #[error("{path}: {message}")]
    File { path: PathBuf, message: String },
    #[error(transparent)]
    Data(#[from] mmvae_data::DataError),
    #[error(transparent)]
    Model(#[from] mmvae_model::ModelError),
}

impl ReportError {
    pub fn file(path: &std::path::Path, message: impl std::fmt::Display) -> Self {
        ReportError::File {
            path: path.to_path_buf(),
            message: message.to_string(),
        }
    }
}

pub type Result<T> = std::result::Result<T, ReportError>;
