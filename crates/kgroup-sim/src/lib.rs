//! kgroup-sim: a deterministic in-memory group coordinator, virtual network
//! and clock, driving many kgroup engines under seeded fault schedules.
#![forbid(unsafe_code)]
#![warn(missing_docs)]
