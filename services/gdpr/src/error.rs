//! One error type; its kind decides the CLI exit message and the HTTP status.

use thiserror::Error;

#[derive(Debug, Error)]
pub enum Error {
    /// The caller asked for something invalid; nothing was changed.
    #[error("{0}")]
    Invalid(String),
    #[error("{0}")]
    NotFound(String),
    /// No verified identity came with the request (self-service path).
    #[error("{0}")]
    Unauthorized(String),
    /// The request is in a state that does not allow the operation.
    #[error("{0}")]
    Conflict(String),
    #[error("configuration: {0}")]
    Config(String),
    /// A dependency (Redis, the state service, a connector) failed; the
    /// operation can be retried and resumes where it stopped.
    #[error("{0}")]
    Unavailable(String),
    #[error("database: {0}")]
    Db(#[from] rusqlite::Error),
    #[error("{0}")]
    Internal(String),
}

impl Error {
    pub fn code(&self) -> &'static str {
        match self {
            Error::Invalid(_) => "invalid",
            Error::NotFound(_) => "not_found",
            Error::Unauthorized(_) => "unauthorized",
            Error::Conflict(_) => "conflict",
            Error::Config(_) => "config",
            Error::Unavailable(_) => "unavailable",
            Error::Db(_) => "database",
            Error::Internal(_) => "internal",
        }
    }
}

impl From<std::io::Error> for Error {
    fn from(e: std::io::Error) -> Error {
        Error::Internal(format!("i/o: {e}"))
    }
}

impl From<redis::RedisError> for Error {
    fn from(e: redis::RedisError) -> Error {
        Error::Unavailable(format!("redis: {e}"))
    }
}

pub type Result<T> = std::result::Result<T, Error>;
