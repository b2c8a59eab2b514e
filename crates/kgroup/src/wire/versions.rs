//! The API versions kgroup implements, per API.
//!
//! Two tables: what the engine *sends* and negotiates ([`IMPLEMENTED`]), and
//! what the bounded decoder can *read* (`bounded::schema_for`). The first is
//! always inside the second. Ranges are from PROTOCOL.md §1 and the
//! `kafka-protocol` 0.18 message types.

use kafka_protocol::messages::ApiKey;

use super::error::VersionSpan;

/// Versions the engine implements for each API it sends, as
/// `(api, lowest, highest)`.
///
/// FindCoordinator is capped at v3: v4+ only batches keys
/// (`CoordinatorKeys[]`, KIP-699) and every broker that serves v4+ also serves
/// v3 (a 4.x broker accepts 0..=6), so the single-key form suffices.
/// ApiVersions is capped at v3: v4 is v3 with a different error rule
/// (KAFKA-17011) and gains nothing.
pub const IMPLEMENTED: &[(ApiKey, VersionSpan)] = &[
    (ApiKey::ApiVersions, VersionSpan::new(0, 3)),
    (ApiKey::Metadata, VersionSpan::new(0, 12)),
    (ApiKey::FindCoordinator, VersionSpan::new(0, 3)),
    (ApiKey::JoinGroup, VersionSpan::new(0, 9)),
    (ApiKey::SyncGroup, VersionSpan::new(0, 5)),
    (ApiKey::Heartbeat, VersionSpan::new(0, 4)),
    (ApiKey::LeaveGroup, VersionSpan::new(0, 5)),
    (ApiKey::OffsetCommit, VersionSpan::new(2, 9)),
    (ApiKey::OffsetFetch, VersionSpan::new(1, 9)),
];

/// The versions of `api` kgroup implements, or `None` for an API it never sends.
pub fn implemented(api: ApiKey) -> Option<VersionSpan> {
    IMPLEMENTED
        .iter()
        .find(|(key, _)| *key == api)
        .map(|(_, span)| *span)
}
