//! The schema language of the bounded validator: just enough of Kafka's
//! message JSON to walk a response and know every count before it is used.
//!
//! A [`Schema`] lists the fields of a response body in wire order, each with
//! the versions it exists in. Field kinds follow the types in
//! `kafka-protocol`'s generated decoders (`types::Int16`, `types::String`,
//! `types::CompactArray(types::Struct { .. })`, ...); compact encodings are
//! chosen by the message's first flexible version, as in the generated code.
//! Nullability follows the Rust type (`Option<_>` accepts null in every
//! version, exactly as the generated decoder does).

use kafka_protocol::messages::ApiKey;

use crate::wire::error::VersionSpan;

/// How one field is laid out on the wire.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Kind {
    /// A fixed-width value: int8/16/32/64, bool, uuid.
    Fixed(u8),
    /// A string (int16 length, or compact uvarint length + 1).
    Str {
        /// Whether null (-1, or 0 in compact form) is accepted.
        nullable: bool,
    },
    /// A byte string (int32 length, or compact uvarint length + 1).
    Bytes {
        /// Whether null is accepted.
        nullable: bool,
    },
    /// An array (int32 count, or compact uvarint count + 1).
    Array(Arr),
    /// A nullable struct: an int8 marker (1 = present, anything else =
    /// null, as `types::OptionStruct` reads it), then the struct.
    OptionalStruct(&'static [Field]),
}

/// An array field.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Arr {
    /// What each element is.
    pub elem: Elem,
    /// Whether a null array is accepted.
    pub nullable: bool,
    /// `size_of` the Rust element type `kafka-protocol` decodes into: the
    /// generated decoder reserves `count * mem` bytes up front.
    pub mem: usize,
}

/// An array element.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Elem {
    /// A fixed-width value.
    Fixed(u8),
    /// A (non-null) string.
    Str,
    /// A struct, with its own tagged-field section in flexible versions.
    Struct(&'static [Field]),
}

/// One field of a struct.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Field {
    /// Field name, as in the message JSON (snake case), for error messages.
    pub name: &'static str,
    /// First version the field exists in.
    pub min: i16,
    /// Last version the field exists in.
    pub max: i16,
    /// `Some(tag)` for a tagged field (read from the tagged-field section).
    pub tag: Option<u32>,
    /// Wire layout.
    pub kind: Kind,
}

impl Field {
    /// True when the field exists at `version`.
    pub(crate) fn present(&self, version: i16) -> bool {
        self.min <= version && version <= self.max
    }
}

/// The response body schema of one API.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Schema {
    /// The API.
    pub api: ApiKey,
    /// Versions this schema (and kgroup's decoder) covers.
    pub versions: VersionSpan,
    /// First flexible version (compact encodings, tagged fields);
    /// `i16::MAX` for a message that is never flexible.
    pub flexible: i16,
    /// Top-level fields in wire order.
    pub fields: &'static [Field],
}

/// Highest version bound, for "N+" fields.
pub(crate) const ANY: i16 = i16::MAX;

/// bool.
pub(crate) const BOOL: Kind = Kind::Fixed(1);
/// int16.
pub(crate) const I16: Kind = Kind::Fixed(2);
/// int32.
pub(crate) const I32: Kind = Kind::Fixed(4);
/// int64.
pub(crate) const I64: Kind = Kind::Fixed(8);
/// uuid.
pub(crate) const UUID: Kind = Kind::Fixed(16);
/// Non-null string.
pub(crate) const STR: Kind = Kind::Str { nullable: false };
/// Nullable string.
pub(crate) const NSTR: Kind = Kind::Str { nullable: true };
/// Non-null bytes.
pub(crate) const BYTES: Kind = Kind::Bytes { nullable: false };
/// Nullable bytes.
pub(crate) const NBYTES: Kind = Kind::Bytes { nullable: true };

/// A field present in versions `min..=max`.
pub(crate) const fn f(name: &'static str, min: i16, max: i16, kind: Kind) -> Field {
    Field {
        name,
        min,
        max,
        tag: None,
        kind,
    }
}

/// A tagged field with `tag`, present in versions `min..=max`.
pub(crate) const fn tagged(name: &'static str, tag: u32, min: i16, max: i16, kind: Kind) -> Field {
    Field {
        name,
        min,
        max,
        tag: Some(tag),
        kind,
    }
}

/// A non-null array of structs decoded into `T`.
pub(crate) const fn structs<T>(fields: &'static [Field]) -> Kind {
    Kind::Array(Arr {
        elem: Elem::Struct(fields),
        nullable: false,
        mem: std::mem::size_of::<T>(),
    })
}

/// A non-null array of int32 decoded into `T` (`i32` or a newtype of it).
pub(crate) const fn int32s<T>() -> Kind {
    Kind::Array(Arr {
        elem: Elem::Fixed(4),
        nullable: false,
        mem: std::mem::size_of::<T>(),
    })
}

/// A non-null array of strings decoded into `T`.
pub(crate) const fn strings<T>() -> Kind {
    Kind::Array(Arr {
        elem: Elem::Str,
        nullable: false,
        mem: std::mem::size_of::<T>(),
    })
}
