//! Error classification shared by every layer.
//!
//! Each layer has its own `thiserror` enum; every one of them can say which
//! [`ErrorClass`] it belongs to, so an embedder can act on an error without
//! matching every variant.

/// What an embedder (or the engine itself) should do about an error.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum ErrorClass {
    /// Transient: retry, possibly after a backoff; membership is kept.
    Retriable,
    /// The group is rebalancing or our generation is stale: rejoin.
    Rejoin,
    /// Another member took our identity (fenced instance or member epoch).
    Fenced,
    /// Cannot be recovered without a change of configuration or permissions.
    Fatal,
}

impl ErrorClass {
    /// Lower-case name, as printed in JSON output (`"retriable"`, ...).
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorClass::Retriable => "retriable",
            ErrorClass::Rejoin => "rejoin",
            ErrorClass::Fenced => "fenced",
            ErrorClass::Fatal => "fatal",
        }
    }
}

impl std::fmt::Display for ErrorClass {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}
