//! W3C Trace Context for calls to sources: one trace id per execution, continued from the
//! incoming request's `traceparent` when it carried a valid one, and a new span id per call.
//!
//! Ids are written with a lookup table into fixed buffers: an endpoint with many HTTP sources
//! sends one `traceparent` per call, so this runs often.

const HEX: &[u8; 16] = b"0123456789abcdef";

/// A trace id: 32 lower-case hex digits, never all zero.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct TraceId([u8; 32]);

impl TraceId {
    /// The trace id of `incoming` (a `traceparent` header value) when it is valid, otherwise a
    /// new random one.
    pub(crate) fn continue_or_new(incoming: Option<&str>) -> Self {
        incoming.and_then(Self::parse).unwrap_or_else(Self::random)
    }

    /// A new random trace id.
    pub(crate) fn random() -> Self {
        Self(random_hex())
    }

    /// The trace id of a `traceparent` value (`version-traceid-parentid-flags`, later versions
    /// may append fields), if it is one: hex fields of the right lengths, version not `ff`,
    /// neither id all zeros.
    fn parse(traceparent: &str) -> Option<Self> {
        let mut fields = traceparent.trim().split('-');
        let (version, trace, parent, flags) = (
            fields.next()?,
            fields.next()?,
            fields.next()?,
            fields.next()?,
        );
        let hex = |s: &str, n: usize| s.len() == n && s.bytes().all(|b| b.is_ascii_hexdigit());
        let zero = |s: &str| s.bytes().all(|b| b == b'0');
        if !hex(version, 2)
            || version.eq_ignore_ascii_case("ff")
            || !hex(trace, 32)
            || zero(trace)
            || !hex(parent, 16)
            || zero(parent)
            || !hex(flags, 2)
        {
            return None;
        }
        let mut id = [0; 32];
        for (out, b) in id.iter_mut().zip(trace.bytes()) {
            *out = b.to_ascii_lowercase();
        }
        Some(Self(id))
    }

    /// The id as text.
    pub(crate) fn as_str(&self) -> &str {
        std::str::from_utf8(&self.0).expect("hex digits are ASCII")
    }
}

/// A `traceparent` value for one outgoing call of trace `trace_id` (32 hex digits, as
/// [`TraceId::as_str`] gives): version 00, a new random span id, sampled.
#[cfg(feature = "http")]
pub(crate) fn traceparent(trace_id: &str) -> [u8; 55] {
    let mut out = *b"00-00000000000000000000000000000000-0000000000000000-01";
    let id = trace_id.as_bytes();
    out[3..35].copy_from_slice(&id[..id.len().min(32)]);
    write_hex(&mut out[36..52], u128::from(fastrand::u64(1..)));
    out
}

/// 128 random bits, not all zero, as 32 lower-case hex digits.
pub(crate) fn random_hex() -> [u8; 32] {
    let mut id = [0; 32];
    write_hex(&mut id, fastrand::u128(1..));
    id
}

/// Writes the low `out.len()` hex digits of `v` into `out`, most significant first.
fn write_hex(out: &mut [u8], mut v: u128) {
    for digit in out.iter_mut().rev() {
        *digit = HEX[(v & 0xf) as usize];
        v >>= 4;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn continues_a_valid_trace() {
        let id = TraceId::continue_or_new(Some(
            " 00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01 ",
        ));
        assert_eq!(id.as_str(), "4bf92f3577b34da6a3ce929d0e0e4736");
        // A later version may append fields.
        let id = TraceId::continue_or_new(Some(
            "01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra",
        ));
        assert_eq!(id.as_str(), "4bf92f3577b34da6a3ce929d0e0e4736");
    }

    #[test]
    fn starts_a_new_trace_for_an_invalid_one() {
        for bad in [
            "garbage",
            "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
            "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e473-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7",
            "00-4bf92f3577b34da6a3ce929d0e0e473g-00f067aa0ba902b7-01",
        ] {
            let id = TraceId::continue_or_new(Some(bad));
            assert_eq!(id.as_str().len(), 32, "{bad}");
            assert!(id.as_str().bytes().all(|b| HEX.contains(&b)), "{bad}");
            assert!(!bad.contains(id.as_str()), "{bad}");
        }
        assert_ne!(TraceId::random(), TraceId::random());
    }

    #[cfg(feature = "http")]
    #[test]
    fn each_call_gets_a_new_span_of_the_same_trace() {
        let id = TraceId::random();
        let (a, b) = (traceparent(id.as_str()), traceparent(id.as_str()));
        let a = std::str::from_utf8(&a).unwrap();
        let b = std::str::from_utf8(&b).unwrap();
        assert_eq!(&a[..36], format!("00-{}-", id.as_str()));
        assert_eq!(&a[..36], &b[..36]);
        assert_ne!(&a[36..52], &b[36..52]);
        assert!(a.ends_with("-01") && a.len() == 55);
        assert_ne!(&a[36..52], "0000000000000000");
    }
}
