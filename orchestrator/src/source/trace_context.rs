//! W3C Trace Context for calls to sources: one trace per execution, continued from the
//! incoming request's `traceparent` when it carried a valid one, and a new span id per call.
//!
//! Ids are written with a lookup table into fixed buffers: an endpoint with many HTTP sources
//! sends one `traceparent` per call, so this runs often.

use std::fmt;

const HEX: &[u8; 16] = b"0123456789abcdef";

/// The W3C trace every call of one execution belongs to ([`SourceCall::trace`]).
///
/// It continues the incoming request's trace when the request carried a valid `traceparent`
/// header (its trace id and its sampled flag); otherwise it is a new, sampled trace. A value
/// always holds a valid trace id, so [`TraceContext::traceparent`] is always a valid header.
/// The request's `tracestate` belongs to the trace it continues: forward it only when
/// [`TraceContext::continued`] (the built-in HTTP sources do).
///
/// ```
/// # use api_orchestrator::source::TraceContext;
/// fn forward(trace: &TraceContext) -> String {
///     // e.g. for a gRPC or message-queue source of the host's own
///     trace.traceparent()
/// }
/// # let _ = forward;
/// ```
///
/// [`SourceCall::trace`]: super::SourceCall::trace
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct TraceContext {
    id: [u8; 32],
    sampled: bool,
    continued: bool,
    /// The span of the call, when one was exported for it (feature `otel`); otherwise each
    /// `traceparent` gets a new random span id.
    span: Option<[u8; 16]>,
}

impl TraceContext {
    /// The trace of `incoming` (a `traceparent` header value) when it is valid, otherwise a new
    /// one.
    pub(crate) fn continue_or_new(incoming: Option<&str>) -> Self {
        incoming.and_then(Self::parse).unwrap_or_else(Self::new)
    }

    /// A new trace: a random trace id, sampled.
    pub(crate) fn new() -> Self {
        Self {
            id: random_hex(),
            sampled: true,
            continued: false,
            span: None,
        }
    }

    /// The trace of a `traceparent` value, if it is a valid one: `version-traceid-parentid-flags`
    /// in lower-case hex, version not `ff`, neither id all zeros; version `00` has exactly those
    /// four fields, later versions may append more.
    fn parse(traceparent: &str) -> Option<Self> {
        let mut fields = traceparent.trim().split('-');
        let (version, trace, parent, flags) = (
            fields.next()?,
            fields.next()?,
            fields.next()?,
            fields.next()?,
        );
        let hex = |s: &str, n: usize| {
            s.len() == n
                && s.bytes()
                    .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
        };
        let zero = |s: &str| s.bytes().all(|b| b == b'0');
        if !hex(version, 2)
            || version == "ff"
            || (version == "00" && fields.next().is_some())
            || !hex(trace, 32)
            || zero(trace)
            || !hex(parent, 16)
            || zero(parent)
            || !hex(flags, 2)
        {
            return None;
        }
        let mut id = [0; 32];
        id.copy_from_slice(trace.as_bytes());
        let flags = u8::from_str_radix(flags, 16).ok()?;
        Some(Self {
            id,
            sampled: flags & 1 == 1,
            continued: true,
            span: None,
        })
    }

    /// The trace id: 32 lower-case hex digits, not all zero.
    pub fn trace_id(&self) -> &str {
        std::str::from_utf8(&self.id).expect("hex digits are ASCII")
    }

    /// Whether the trace is sampled (the incoming request's decision, or `true` for a new
    /// trace).
    pub fn sampled(&self) -> bool {
        self.sampled
    }

    /// Whether this continues the incoming request's trace (it carried a valid `traceparent`),
    /// rather than starting a new one.
    pub fn continued(&self) -> bool {
        self.continued
    }

    /// This trace as an OpenTelemetry span context: its trace id and sampling decision, and
    /// the span's id for the calls made in it (`span: true`, a call's client span) or a new
    /// one per call (`span: false`, the execution's parent).
    #[cfg(feature = "otel")]
    pub(crate) fn in_span(&self, sc: &opentelemetry::trace::SpanContext, span: bool) -> Self {
        if !sc.is_valid() {
            return *self;
        }
        let mut id = [0; 32];
        write_hex(&mut id, u128::from_be_bytes(sc.trace_id().to_bytes()));
        let span = span.then(|| {
            let mut s = [0; 16];
            write_hex(
                &mut s,
                u128::from(u64::from_be_bytes(sc.span_id().to_bytes())),
            );
            s
        });
        Self {
            id,
            sampled: sc.is_sampled(),
            continued: self.continued,
            span,
        }
    }

    /// A `traceparent` header value for one outgoing call: this trace, the id of the call's
    /// exported span (a new random span id when none was exported), the sampled flag
    /// (`00-<trace id>-<span id>-01`).
    pub fn traceparent(&self) -> String {
        String::from_utf8_lossy(&self.traceparent_bytes()).into_owned()
    }

    /// [`TraceContext::traceparent`] without an allocation.
    pub(crate) fn traceparent_bytes(&self) -> [u8; 55] {
        let mut out = *b"00-00000000000000000000000000000000-0000000000000000-00";
        out[3..35].copy_from_slice(&self.id);
        match &self.span {
            Some(span) => out[36..52].copy_from_slice(span),
            None => write_hex(&mut out[36..52], u128::from(fastrand::u64(1..))),
        }
        if self.sampled {
            out[54] = b'1';
        }
        out
    }
}

impl fmt::Debug for TraceContext {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TraceContext")
            .field("trace_id", &self.trace_id())
            .field("sampled", &self.sampled)
            .field("continued", &self.continued)
            .finish()
    }
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

    const INCOMING: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

    #[test]
    fn continues_a_valid_trace_and_its_sampling_decision() {
        let t = TraceContext::continue_or_new(Some(&format!(" {INCOMING} ")));
        assert_eq!(t.trace_id(), "4bf92f3577b34da6a3ce929d0e0e4736");
        assert!(t.sampled() && t.continued());
        let t = TraceContext::continue_or_new(Some(
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00",
        ));
        assert_eq!(t.trace_id(), "4bf92f3577b34da6a3ce929d0e0e4736");
        assert!(!t.sampled());
        assert!(t.traceparent().ends_with("-00"), "{}", t.traceparent());
        // A later version may append fields.
        let t = TraceContext::continue_or_new(Some(
            "01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra",
        ));
        assert_eq!(t.trace_id(), "4bf92f3577b34da6a3ce929d0e0e4736");
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
            "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra",
        ] {
            let t = TraceContext::continue_or_new(Some(bad));
            assert_eq!(t.trace_id().len(), 32, "{bad}");
            assert!(t.trace_id().bytes().all(|b| HEX.contains(&b)), "{bad}");
            assert!(
                !bad.to_ascii_lowercase().contains(t.trace_id()),
                "{bad} was continued"
            );
            assert!(t.sampled() && !t.continued());
        }
        assert_ne!(TraceContext::new(), TraceContext::new());
    }

    #[test]
    fn each_call_gets_a_new_span_of_the_same_trace() {
        let t = TraceContext::continue_or_new(Some(INCOMING));
        let (a, b) = (t.traceparent(), t.traceparent());
        assert_eq!(&a[..36], "00-4bf92f3577b34da6a3ce929d0e0e4736-");
        assert_eq!(&a[..36], &b[..36]);
        assert_ne!(&a[36..52], &b[36..52]);
        assert_ne!(&a[36..52], "00f067aa0ba902b7");
        assert_ne!(&a[36..52], "0000000000000000");
        assert!(a.ends_with("-01") && a.len() == 55, "{a}");
        // What a call sends parses back as the same trace.
        assert_eq!(TraceContext::continue_or_new(Some(&a)), t);
    }
}
