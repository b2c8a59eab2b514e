//! Helpers shared by kgroup's integration tests (the "real peer" test depth).
//!
//! - [`TestBroker`] starts the `kgroup-testbroker` binary (librdkafka's mock
//!   cluster in its own process), waits for its bootstrap address, sends it
//!   fault commands and kills it on drop. The command protocol is described
//!   in `docs/testing.md` and in `kgroup-testbroker --help`.
//! - [`WireClient`] is a minimal blocking client over [`std::net::TcpStream`]
//!   that frames, correlates, decodes and negotiates with nothing but
//!   [`kgroup::wire`], so integration tests exercise the engine's wire layer
//!   against a broker no one here wrote.
//!
//! - [`hostile::HostileProxy`] is a hostile broker: it relays the test
//!   broker and misbehaves on the answers a test picks.
//!
//! These are test harnesses: they read the clock and block on sockets, which
//! the engine never does. Every wait is bounded by a deadline.
#![warn(missing_docs)]

mod broker;
mod client;
pub mod hostile;
pub mod requests;
pub mod tansu;

pub use broker::{BINARY_ENV, TestBroker, TestBrokerError, TestBrokerOptions};
pub use client::{WireClient, WireClientError};

/// Returns a deadline `timeout` from now.
///
/// The engine is forbidden to read the clock (clippy.toml); test harnesses
/// must, to bound their waits.
#[allow(clippy::disallowed_methods)] // harness code: real time bounds real waits
pub fn deadline_after(timeout: std::time::Duration) -> std::time::Instant {
    std::time::Instant::now() + timeout
}

/// The time left until `deadline`, zero once it has passed.
#[allow(clippy::disallowed_methods)] // harness code: real time bounds real waits
pub fn remaining(deadline: std::time::Instant) -> std::time::Duration {
    deadline.saturating_duration_since(std::time::Instant::now())
}
