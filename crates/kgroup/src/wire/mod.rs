//! Wire layer: framing and codec on top of the `kafka-protocol` crate.
//!
//! Bytes in, bytes out. Hostile bytes give a [`WireError`], never a panic and
//! never an allocation larger than a bound derived from the frame size.
