//! kgroup on futures-io/async-io (being written).
