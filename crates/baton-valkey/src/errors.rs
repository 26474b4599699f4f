//! Driver errors, classified once by the server's error code (or the
//! driver's error kind), and turned into [`EngineError`]s that say what to
//! do.

use baton_core::EngineError;
use redis::{ErrorKind, RedisError};

/// What a driver error means for Baton.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum ServerError {
    /// `BUSY`: the server is running a long script; retry shortly.
    Busy,
    /// `CROSSSLOT`: a call touched keys of several cluster slots (a bug in
    /// the key schema, never the caller's doing).
    CrossSlot,
    /// The function library is not loaded (a restart without persistence,
    /// `FUNCTION FLUSH`): load it and run the call again.
    FunctionMissing,
    /// A Baton function raised an error while running.
    FunctionFailed,
    /// Anything else: the server is unreachable, restarting, timing out.
    Unavailable,
}

impl ServerError {
    /// Classifies `e`. Only a missing function has no code of its own (the
    /// server answers a plain `ERR` with its text), so that one case reads
    /// the error's detail.
    pub(crate) fn of(e: &RedisError) -> ServerError {
        match e.code() {
            Some("BUSY") => return ServerError::Busy,
            Some("CROSSSLOT") => return ServerError::CrossSlot,
            _ => {}
        }
        if e.kind() == ErrorKind::CrossSlot {
            return ServerError::CrossSlot;
        }
        let detail = e.detail().unwrap_or_default();
        if e.kind() == ErrorKind::ResponseError && detail.starts_with("Function not found") {
            return ServerError::FunctionMissing;
        }
        if e.kind() == ErrorKind::ExtensionError
            || detail.contains("Error running script")
            || detail.contains("user_function")
        {
            return ServerError::FunctionFailed;
        }
        ServerError::Unavailable
    }
}

/// The [`EngineError`] for a driver error on the server at `display`.
pub(crate) fn map(display: &str, e: &RedisError) -> EngineError {
    match ServerError::of(e) {
        ServerError::Busy => EngineError::Contention {
            message: format!("{display} is busy running a long script; retry shortly ({e})"),
        },
        ServerError::CrossSlot => {
            EngineError::corruption(format!("a command crossed cluster slots on {display}: {e}"))
        }
        ServerError::FunctionFailed => {
            EngineError::corruption(format!("a Baton function failed on {display}: {e}"))
        }
        ServerError::FunctionMissing | ServerError::Unavailable => {
            EngineError::unavailable(format!("Valkey at {display}: {e}"))
        }
    }
}
