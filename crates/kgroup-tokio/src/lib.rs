//! kgroup on tokio (being written).
