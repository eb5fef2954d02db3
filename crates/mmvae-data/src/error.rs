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
    /// A problem with the content of the file `path`. The message is kept
    /// to one line (a decoder's own message may span several).
    pub fn format(path: impl Into<PathBuf>, msg: impl Into<String>) -> Self {
        DataError::Format {
            path: path.into(),
            msg: one_line(msg.into()),
        }
    }
}

/// `msg` on one line: its lines (a decoder's or parser's message may quote
/// text holding line breaks) trimmed and joined with spaces.
pub fn one_line(msg: String) -> String {
    if msg.contains(['\n', '\r']) {
        msg.split(['\n', '\r'])
            .map(str::trim)
            .filter(|l| !l.is_empty())
            .collect::<Vec<_>>()
            .join(" ")
    } else {
        msg
    }
}

pub type Result<T> = std::result::Result<T, DataError>;
