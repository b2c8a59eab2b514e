//! Helpers shared by the integration tests: starting the test broker.
