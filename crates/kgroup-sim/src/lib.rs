//! kgroup-sim: a deterministic in-memory group coordinator, virtual network
//! and clock, driving many kgroup engines under seeded fault schedules.
//!
//! - [`coordinator`]: Kafka's classic group coordinator rules, on typed messages;
//! - [`broker`]: the wire side of a simulated broker: request frames in,
//!   response frames out, one request at a time per connection;
//! - [`script`]: scripted scenarios (a few engines, faults on demand), the
//!   simulator side of the differential test against librdkafka's mock;
//! - [`rng`], [`clock`]: seeded randomness and virtual time.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod clock;
pub mod cluster;
pub mod coordinator;
pub mod frames;
pub mod rng;
pub mod script;
pub mod sim;
