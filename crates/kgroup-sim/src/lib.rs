//! kgroup-sim: a deterministic in-memory group coordinator, virtual network
//! and clock, driving many kgroup engines under seeded fault schedules.
//!
//! - [`coordinator`]: Kafka's classic group coordinator rules, on typed messages;
//! - [`cluster`]: the brokers: request frames in, response frames out, one
//!   request at a time per connection, crashes, restarts and coordinator
//!   moves; [`frames`]: the framing both sides use;
//! - [`sim`]: the seeded simulator (fault schedules, simulated applications,
//!   the invariant checker, the trace hash);
//! - [`script`]: scripted scenarios (a few engines, faults on demand), the
//!   simulator side of the differential test against librdkafka's mock;
//! - `net` (private): the connection table both drivers share (FIFO links,
//!   requests in flight);
//! - [`rng`], [`clock`]: seeded randomness and virtual time.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod clock;
pub mod cluster;
pub mod coordinator;
pub mod frames;
mod net;
pub mod rng;
pub mod script;
pub mod sim;
