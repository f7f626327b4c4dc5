//! Errors of the store and the protocol.

use crate::clock::ClockSkew;
use crate::wire::WireError;

/// Why a store operation failed. Whatever the error, nothing was written.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// SQLite failed (disk full, I/O error, locked database, ...).
    #[error("database error: {0}")]
    Sqlite(#[from] rusqlite::Error),
    /// A collection, record or field name is empty, too long, or reserved (`$` prefix).
    #[error("invalid {what} name {name:?}: names are 1-256 characters, without control characters, and may not start with '$'")]
    InvalidName {
        /// Which kind of name.
        what: &'static str,
        /// The offending name (truncated).
        name: String,
    },
    /// The operation does not fit the field's declared kind.
    #[error("field {field:?} is a {kind} field; {op} does not apply to it")]
    WrongOp {
        /// The field.
        field: String,
        /// Its declared kind.
        kind: &'static str,
        /// The operation attempted.
        op: &'static str,
    },
    /// A status value outside the field's declared order.
    #[error("{value:?} is not a state of field {field:?}; allowed: {allowed}")]
    UnknownStatus {
        /// The field.
        field: String,
        /// The value given.
        value: String,
        /// The declared order.
        allowed: String,
    },
    /// A change from a peer carried a timestamp too far in the future; the whole batch was
    /// refused.
    #[error("refused changes from {origin}: {skew}; check that node's clock")]
    ClockSkew {
        /// The node whose change carried the timestamp.
        origin: String,
        /// By how much, and the limit.
        skew: ClockSkew,
    },
    /// Stored or received bytes did not decode.
    #[error("malformed data: {0}")]
    Malformed(#[from] WireError),
    /// The database belongs to another node.
    #[error("database {path} belongs to node {found:?}, not {expected:?}; each node needs its own database")]
    NodeMismatch {
        /// Path of the database.
        path: String,
        /// The node name we were opened for.
        expected: String,
        /// The node name recorded in the file.
        found: String,
    },
    /// The database was written by a version of Mizugiwa with another on-disk layout.
    #[error("database {path} has layout version {found}, this build reads version {expected}; export its records with the version that wrote it")]
    LayoutVersion {
        /// Path of the database.
        path: String,
        /// The layout this build writes.
        expected: i64,
        /// The layout recorded in the file.
        found: i64,
    },
    /// Another process has the database open for writing.
    #[error("database {path} is in use by another process (a running daemon?); stop it, or act through its API (read-only commands work beside it)")]
    InUse {
        /// Path of the database.
        path: String,
    },
    /// The file is not a replica database.
    #[error("{path} is not a Mizugiwa replica database")]
    NotAReplica {
        /// Path of the database.
        path: String,
    },
    /// A file could not be opened.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// The I/O error.
        source: std::io::Error,
    },
}
