use std::path::PathBuf;

/// Every failure of the data layer; each message names the file (and where
/// relevant the field or line) so a user can act on it.
#[derive(Debug, thiserror::Error)]
pub enum DataError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}: {msg}")]
    Format { path: PathBuf, msg: String },
    #[error("dataset `{name}` not found; looked in: {looked}. {hint}")]
    NotFound {
        name: String,
        looked: String,
        hint: String,
    },
    #[error("unknown word(s) {words:?} in `{text}`; known words: {known}")]
    UnknownWords {
        text: String,
        words: Vec<String>,
        known: String,
    },
    #[error("{0}")]
    Invalid(String),
}

impl DataError {
    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        DataError::Io {
            path: path.into(),
            source,
        }
    }
    pub fn format(path: impl Into<PathBuf>, msg: impl Into<String>) -> Self {
        DataError::Format {
            path: path.into(),
            msg: msg.into(),
        }
    }
}

pub type Result<T> = std::result::Result<T, DataError>;
