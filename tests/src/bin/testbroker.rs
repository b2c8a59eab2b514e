//! kgroup-testbroker: librdkafka's mock cluster in its own process.
fn main() {}
