//! W3C Trace Context (<https://www.w3.org/TR/trace-context/>): the `traceparent` value that
//! lets one upload be followed web → job queue → processor → reply queue by one trace id.
//!
//! The one place that reads and writes `traceparent`: the web app parses the HTTP header and
//! puts a value in each [`JobMessage`](crate::message::JobMessage); the processor parses it
//! there and puts it back in its [`StatusMessage`](crate::message::StatusMessage)s. Darkroom
//! exports no spans anywhere; the trace id goes into the log lines (`trace_id`) of both
//! processes, so grepping it finds everything one upload caused.
//!
//! `00-<32 hex trace id>-<16 hex parent id>-<2 hex flags>`, lowercase. A value that breaks
//! the format (wrong length, upper case, version `ff`, an all-zero id) is refused, and a
//! refused value is treated as absent, as the specification asks: the receiver starts a new
//! trace. A later version is read for its first four fields and passed on as version `00`.

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// The `traceparent` HTTP header.
pub const HEADER: &str = "traceparent";

/// Flag bit 0: the caller may have recorded this trace.
const SAMPLED: u8 = 0x01;

/// A parsed `traceparent`: which trace, which span of it sent this, and the trace flags.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct TraceParent {
    trace_id: [u8; 16],
    parent_id: [u8; 8],
    flags: u8,
}

/// Why a `traceparent` value was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum TraceParentError {
    #[error("a traceparent is `00-<32 hex>-<16 hex>-<2 hex>` (55 characters)")]
    Shape,
    #[error("traceparent fields are lowercase hexadecimal")]
    NotHex,
    #[error("traceparent version ff is invalid")]
    Version,
    #[error("a traceparent's trace id must not be all zeros")]
    ZeroTraceId,
    #[error("a traceparent's parent id must not be all zeros")]
    ZeroParentId,
}

/// Lowercase hexadecimal digits (the specification allows no upper case).
fn hex_bytes<const N: usize>(s: &str) -> Result<[u8; N], TraceParentError> {
    if s.len() != 2 * N {
        return Err(TraceParentError::Shape);
    }
    let digit = |c: u8| match c {
        b'0'..=b'9' => Ok(c - b'0'),
        b'a'..=b'f' => Ok(c - b'a' + 10),
        _ => Err(TraceParentError::NotHex),
    };
    let mut out = [0u8; N];
    for (i, pair) in s.as_bytes().chunks(2).enumerate() {
        out[i] = digit(pair[0])? << 4 | digit(pair[1])?;
    }
    Ok(out)
}

fn write_hex(f: &mut fmt::Formatter<'_>, bytes: &[u8]) -> fmt::Result {
    bytes.iter().try_for_each(|b| write!(f, "{b:02x}"))
}

/// Ids come from the operating system's generator through `uuid`'s v4 (a dependency every
/// build of this crate has, the fuzz targets' included). A trace id is a whole v4 UUID: 122
/// random bits, never all zero (its version nibble is 4).
fn random_trace_id() -> [u8; 16] {
    *uuid::Uuid::new_v4().as_bytes()
}

/// A span id: the last 8 bytes of a v4 UUID.
fn random_parent_id() -> [u8; 8] {
    let bytes = uuid::Uuid::new_v4().into_bytes();
    let mut id = [0u8; 8];
    id.copy_from_slice(&bytes[8..16]);
    // 62 random bits; byte 8 carries the variant bits (0b10xx_xxxx), so never all zero.
    id
}

impl TraceParent {
    /// Parse a `traceparent` value (surrounding spaces allowed, as in an HTTP header).
    pub fn parse(value: &str) -> Result<TraceParent, TraceParentError> {
        let value = value.trim_matches([' ', '\t']);
        if !value.is_ascii() || value.len() < 55 {
            return Err(TraceParentError::Shape);
        }
        let version = hex_bytes::<1>(&value[0..2])?[0];
        if version == 0xff {
            return Err(TraceParentError::Version);
        }
        // Version 00 is exactly 55 characters; a later one may append `-…` fields we ignore.
        if (version == 0 && value.len() != 55) || (value.len() > 55 && value.as_bytes()[55] != b'-') {
            return Err(TraceParentError::Shape);
        }
        let b = value.as_bytes();
        if b[2] != b'-' || b[35] != b'-' || b[52] != b'-' {
            return Err(TraceParentError::Shape);
        }
        let trace_id = hex_bytes::<16>(&value[3..35])?;
        let parent_id = hex_bytes::<8>(&value[36..52])?;
        let flags = hex_bytes::<1>(&value[53..55])?[0];
        if trace_id == [0; 16] {
            return Err(TraceParentError::ZeroTraceId);
        }
        if parent_id == [0; 8] {
            return Err(TraceParentError::ZeroParentId);
        }
        Ok(TraceParent { trace_id, parent_id, flags })
    }

    /// A new trace, this process its first span (flagged sampled: its logs are recorded).
    pub fn new_root() -> TraceParent {
        TraceParent { trace_id: random_trace_id(), parent_id: random_parent_id(), flags: SAMPLED }
    }

    /// A span of the same trace started here: same trace id and flags, a new parent id, which
    /// is what this process passes on to the next hop.
    pub fn child(&self) -> TraceParent {
        TraceParent { parent_id: random_parent_id(), ..*self }
    }

    /// The incoming value's own span, or a new trace when there is none (or it was invalid).
    pub fn continue_or_start(incoming: Option<&TraceParent>) -> TraceParent {
        incoming.map(TraceParent::child).unwrap_or_else(TraceParent::new_root)
    }

    /// The trace id, as the 32 hex digits logged as `trace_id`.
    pub fn trace_id(&self) -> TraceId {
        TraceId(self.trace_id)
    }

    /// The 16 hex digits of the parent (sending span's) id.
    pub fn parent_id(&self) -> String {
        self.parent_id.iter().map(|b| format!("{b:02x}")).collect()
    }

    pub fn sampled(&self) -> bool {
        self.flags & SAMPLED != 0
    }
}

/// A trace id; displays as 32 lowercase hex digits.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct TraceId([u8; 16]);

impl fmt::Display for TraceId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write_hex(f, &self.0)
    }
}

impl fmt::Debug for TraceId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

/// The `traceparent` value (always version `00`).
impl fmt::Display for TraceParent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("00-")?;
        write_hex(f, &self.trace_id)?;
        f.write_str("-")?;
        write_hex(f, &self.parent_id)?;
        write!(f, "-{:02x}", self.flags)
    }
}

impl fmt::Debug for TraceParent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "TraceParent({self})")
    }
}

impl std::str::FromStr for TraceParent {
    type Err = TraceParentError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        TraceParent::parse(s)
    }
}

impl Serialize for TraceParent {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

/// Strict: an invalid value is an error. Message fields use [`lenient`] instead.
impl<'de> Deserialize<'de> for TraceParent {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        TraceParent::parse(&s).map_err(serde::de::Error::custom)
    }
}

/// For an optional `traceparent` field of a message: an invalid value (or not a string) reads
/// as absent, never as a malformed message; a job is not refused for its trace context.
pub fn lenient<'de, D: Deserializer<'de>>(d: D) -> Result<Option<TraceParent>, D::Error> {
    let value = Option::<serde_json::Value>::deserialize(d)?;
    Ok(value.as_ref().and_then(|v| v.as_str()).and_then(|s| TraceParent::parse(s).ok()))
}

#[cfg(test)]
mod tests {
    use super::*;

    const EXAMPLE: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

    #[test]
    fn the_specifications_example_round_trips() {
        let tp = TraceParent::parse(EXAMPLE).unwrap();
        assert_eq!(tp.trace_id().to_string(), "4bf92f3577b34da6a3ce929d0e0e4736");
        assert_eq!(tp.parent_id(), "00f067aa0ba902b7");
        assert!(tp.sampled());
        assert_eq!(tp.to_string(), EXAMPLE);
        assert_eq!(TraceParent::parse(&format!("  {EXAMPLE}\t")).unwrap(), tp);
        let unsampled = TraceParent::parse(&EXAMPLE.replace("-01", "-00")).unwrap();
        assert!(!unsampled.sampled());
    }

    #[test]
    fn invalid_values_are_refused() {
        use TraceParentError::*;
        let cases = [
            ("", Shape),
            ("00", Shape),
            (&EXAMPLE[..54], Shape),
            (&format!("{EXAMPLE}0"), Shape),
            (&format!("{EXAMPLE}-extra"), Shape), // version 00 has exactly four fields
            (&EXAMPLE.replacen('-', "_", 1), Shape),
            ("00-4bf92f3577b34da6a3ce929d0e0e47360-0f067aa0ba902b7-01", Shape),
            (&EXAMPLE.replace("4bf9", "4BF9"), NotHex),
            (&EXAMPLE.replace("4bf9", "4bg9"), NotHex),
            (&EXAMPLE.replace("-01", "-0x"), NotHex),
            (&EXAMPLE.replacen("00", "ff", 1), Version),
            (&EXAMPLE.replacen("00", "0g", 1), NotHex),
            ("00-00000000000000000000000000000000-00f067aa0ba902b7-01", ZeroTraceId),
            ("00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01", ZeroParentId),
            ("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01é", Shape),
        ];
        for (value, why) in cases {
            assert_eq!(TraceParent::parse(value), Err(why), "{value:?}");
        }
    }

    #[test]
    fn a_later_version_is_read_and_passed_on_as_00() {
        let later = "cc-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-what-comes-next";
        let tp = TraceParent::parse(later).unwrap();
        assert_eq!(tp.to_string(), EXAMPLE);
        assert_eq!(TraceParent::parse(&later[..55]).unwrap(), tp);
        assert!(TraceParent::parse(&format!("{}x", &later[..55])).is_err());
    }

    #[test]
    fn new_traces_and_children_are_valid_and_distinct() {
        let root = TraceParent::new_root();
        assert_eq!(TraceParent::parse(&root.to_string()).unwrap(), root);
        assert!(root.sampled());
        let child = root.child();
        assert_eq!(child.trace_id(), root.trace_id());
        assert_ne!(child.parent_id(), root.parent_id());
        assert_ne!(TraceParent::new_root().trace_id(), root.trace_id());
        let continued = TraceParent::continue_or_start(Some(&root));
        assert_eq!(continued.trace_id(), root.trace_id());
        assert_ne!(TraceParent::continue_or_start(None).trace_id(), root.trace_id());
    }

    #[test]
    fn message_fields_read_invalid_values_as_absent() {
        #[derive(Deserialize)]
        struct M {
            #[serde(default, deserialize_with = "lenient")]
            traceparent: Option<TraceParent>,
        }
        let read = |json: &str| serde_json::from_str::<M>(json).unwrap().traceparent;
        assert_eq!(read(&format!(r#"{{"traceparent":"{EXAMPLE}"}}"#)), Some(TraceParent::parse(EXAMPLE).unwrap()));
        assert_eq!(read(r#"{"traceparent":"junk"}"#), None);
        assert_eq!(read(r#"{"traceparent":7}"#), None);
        assert_eq!(read(r#"{"traceparent":null}"#), None);
        assert_eq!(read("{}"), None);
        assert!(serde_json::from_str::<TraceParent>("\"junk\"").is_err());
    }
}
