//! Assignor user data carried in the ConsumerProtocol subscription.
//!
//! - `sticky`: Java's `StickyAssignorUserData` (classic, non-flexible schema).
//!   v0 = `[topic: string(int16 length), partitions: [int32]]` (arrays have an
//!   int32 count); v1 appends `generation: int32`. Java writes v1, reads v1 and
//!   falls back to v0 when the generation is missing, and treats data it cannot
//!   parse as "no previous assignment" (`StickyAssignor.memberData`).
//! - `cooperative-sticky`: a bare big-endian int32 generation
//!   (`CooperativeStickyAssignor.subscriptionUserData`); shorter data reads as
//!   the default generation -1, as Java's catch clause does.
//!
//! Decoding is bounded: every count is checked against the bytes left before
//! anything is allocated, so hostile data costs at most its own size.

use bytes::{BufMut, Bytes, BytesMut};

use super::PreviousAssignment;
use crate::TopicPartition;

/// Java's `DEFAULT_GENERATION` for the sticky assignors.
pub const DEFAULT_GENERATION: i32 = -1;

/// Why sticky user data could not be decoded.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum UserDataError {
    /// The data ends before a field it announces.
    #[error("sticky assignor user data truncated at byte {0}")]
    Truncated(usize),
    /// An array or string has a negative length (they are non-nullable).
    #[error("sticky assignor user data has a negative length at byte {0}")]
    NegativeLength(usize),
    /// A topic with partitions has a name longer than Kafka allows (249
    /// bytes): each decoded partition copies its topic name, so such a name
    /// would multiply the data's size in memory (found by fuzzing).
    #[error("sticky assignor user data has a topic name longer than 249 bytes at byte {0}")]
    TopicNameTooLong(usize),
}

/// The decoded content of a `sticky` member's user data.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct StickyUserData {
    /// The partitions of the member's previous assignment, in wire order.
    pub partitions: Vec<TopicPartition>,
    /// The generation of that assignment (absent in v0 data).
    pub generation: Option<i32>,
}

/// Encodes `StickyAssignorUserData` v1: topics in order of first appearance
/// in `partitions`, partitions in the given order within each topic, then the
/// generation (-1 when unknown, as Java's default).
pub fn encode_sticky(partitions: &[TopicPartition], generation: Option<i32>) -> Bytes {
    // group by topic keeping first-appearance order (Java uses an insertion-ordered collection)
    let mut topics: Vec<(&str, Vec<i32>)> = Vec::new();
    for tp in partitions {
        match topics.iter_mut().rev().find(|(t, _)| *t == tp.topic) {
            Some((_, ps)) => ps.push(tp.partition),
            None => topics.push((tp.topic.as_str(), vec![tp.partition])),
        }
    }
    let size = 8 + topics
        .iter()
        .map(|(t, ps)| 2 + t.len() + 4 + 4 * ps.len())
        .sum::<usize>();
    let mut buf = BytesMut::with_capacity(size);
    buf.put_i32(topics.len() as i32);
    for (t, ps) in &topics {
        // Kafka strings are at most i16::MAX bytes; longer names cannot be topics.
        let bytes = t.as_bytes();
        let len = bytes.len().min(i16::MAX as usize);
        buf.put_i16(len as i16);
        buf.put_slice(bytes.get(..len).unwrap_or(bytes));
        buf.put_i32(ps.len() as i32);
        for &p in ps {
            buf.put_i32(p);
        }
    }
    buf.put_i32(generation.unwrap_or(DEFAULT_GENERATION));
    buf.freeze()
}

struct Reader<'a> {
    data: &'a [u8],
    pos: usize,
}

impl Reader<'_> {
    fn take<const N: usize>(&mut self) -> Result<[u8; N], UserDataError> {
        let end = self
            .pos
            .checked_add(N)
            .ok_or(UserDataError::Truncated(self.pos))?;
        let bytes = self
            .data
            .get(self.pos..end)
            .and_then(|s| <[u8; N]>::try_from(s).ok())
            .ok_or(UserDataError::Truncated(self.pos))?;
        self.pos = end;
        Ok(bytes)
    }
    fn i16(&mut self) -> Result<i16, UserDataError> {
        self.take::<2>().map(i16::from_be_bytes)
    }
    fn i32(&mut self) -> Result<i32, UserDataError> {
        self.take::<4>().map(i32::from_be_bytes)
    }
    fn remaining(&self) -> usize {
        self.data.len().saturating_sub(self.pos)
    }
    /// A non-negative count of elements at least `min_size` bytes each.
    fn count(&mut self, min_size: usize) -> Result<usize, UserDataError> {
        let at = self.pos;
        let n = self.i32()?;
        let n = usize::try_from(n).map_err(|_| UserDataError::NegativeLength(at))?;
        if n.saturating_mul(min_size) > self.remaining() {
            return Err(UserDataError::Truncated(at));
        }
        Ok(n)
    }
}

/// Decodes `StickyAssignorUserData` v1, or v0 when the generation is absent.
/// Bytes after the generation are ignored, as Java's schema reader does.
pub fn decode_sticky(data: &[u8]) -> Result<StickyUserData, UserDataError> {
    let mut r = Reader { data, pos: 0 };
    let topics = r.count(2 + 4)?;
    let mut partitions = Vec::new();
    for _ in 0..topics {
        let at = r.pos;
        let len = usize::try_from(r.i16()?).map_err(|_| UserDataError::NegativeLength(at))?;
        let end = r.pos.checked_add(len).ok_or(UserDataError::Truncated(at))?;
        let name = r.data.get(r.pos..end).ok_or(UserDataError::Truncated(at))?;
        // Java decodes strings leniently (malformed UTF-8 becomes U+FFFD)
        let topic = String::from_utf8_lossy(name).into_owned();
        r.pos = end;
        let n = r.count(4)?;
        // Kafka's `Topic.MAX_NAME_LENGTH`; bounds the copies made below.
        // Checked on the decoded name: each invalid UTF-8 byte became a
        // 3-byte U+FFFD, and what decodes must re-encode to data that
        // decodes (found by the sticky_user_data fuzz target).
        if n > 0 && topic.len() > crate::wire::consumer_protocol::MAX_TOPIC_NAME_LEN {
            return Err(UserDataError::TopicNameTooLong(at));
        }
        partitions.reserve(n);
        for _ in 0..n {
            partitions.push(TopicPartition::new(topic.clone(), r.i32()?));
        }
    }
    let generation = if r.remaining() >= 4 {
        Some(r.i32()?)
    } else {
        None
    };
    Ok(StickyUserData {
        partitions,
        generation,
    })
}

/// The `sticky` subscription user data for a previous assignment: `None`
/// before the first assignment (nothing remembered), as Java returns null.
pub fn sticky_subscription_user_data(previous: &PreviousAssignment) -> Option<Bytes> {
    if previous.partitions.is_empty() && previous.generation.is_none() {
        return None;
    }
    Some(encode_sticky(&previous.partitions, previous.generation))
}

/// Encodes the `cooperative-sticky` user data: the generation as a
/// big-endian int32 (-1 when unknown).
pub fn encode_cooperative(generation: Option<i32>) -> Bytes {
    Bytes::copy_from_slice(&generation.unwrap_or(DEFAULT_GENERATION).to_be_bytes())
}

/// Decodes `cooperative-sticky` user data: `None` without data, the default
/// generation -1 when fewer than 4 bytes, else the first 4 bytes.
pub fn decode_cooperative(data: Option<&[u8]>) -> Option<i32> {
    let data = data?;
    Some(
        data.get(..4)
            .and_then(|b| <[u8; 4]>::try_from(b).ok())
            .map(i32::from_be_bytes)
            .unwrap_or(DEFAULT_GENERATION),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sticky_round_trip_and_layout() {
        let parts = vec![
            TopicPartition::new("t1", 0),
            TopicPartition::new("t1", 2),
            TopicPartition::new("t0", 5),
        ];
        let b = encode_sticky(&parts, Some(7));
        // count=2, "t1", [0,2], "t0", [5], gen 7
        let expected: Vec<u8> = [
            &2i32.to_be_bytes()[..],
            &2i16.to_be_bytes(),
            b"t1",
            &2i32.to_be_bytes(),
            &0i32.to_be_bytes(),
            &2i32.to_be_bytes(),
            &2i16.to_be_bytes(),
            b"t0",
            &1i32.to_be_bytes(),
            &5i32.to_be_bytes(),
            &7i32.to_be_bytes(),
        ]
        .concat();
        assert_eq!(b.as_ref(), expected.as_slice());
        let d = decode_sticky(&b).expect("decodes");
        assert_eq!(d.partitions, parts);
        assert_eq!(d.generation, Some(7));
        // v0: same without the generation
        let v0 = decode_sticky(&b[..b.len() - 4]).expect("v0 decodes");
        assert_eq!(v0.partitions, parts);
        assert_eq!(v0.generation, None);
    }

    #[test]
    fn sticky_hostile_counts_are_bounded() {
        let mut evil = i32::MAX.to_be_bytes().to_vec();
        evil.extend_from_slice(&[0, 1, b'x']);
        assert!(matches!(
            decode_sticky(&evil),
            Err(UserDataError::Truncated(0))
        ));
        assert!(matches!(
            decode_sticky(&(-1i32).to_be_bytes()),
            Err(UserDataError::NegativeLength(0))
        ));
        assert!(decode_sticky(&[0, 0]).is_err());
    }

    #[test]
    fn cooperative_generation() {
        assert_eq!(
            decode_cooperative(Some(&encode_cooperative(Some(42)))),
            Some(42)
        );
        assert_eq!(decode_cooperative(Some(&[1, 2])), Some(DEFAULT_GENERATION));
        assert_eq!(decode_cooperative(None), None);
        assert_eq!(encode_cooperative(None).as_ref(), &[0xff, 0xff, 0xff, 0xff]);
    }
}
