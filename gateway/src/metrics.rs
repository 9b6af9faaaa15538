//! The gateway's metrics (names in `docs/metrics.md`). Labels are bounded: frame types, close
//! codes, outcomes and HTTP statuses, never user or channel ids.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::{Registry, Unit};
use shared::admin::{latency_buckets, size_buckets};

#[derive(Clone)]
pub struct GatewayMetrics {
    pub connections: Gauge,
    pub connections_opened: Counter,
    connections_closed: Family<CodeLabels, Counter>,
    frames_in: Family<TypeLabels, Counter>,
    frames_out: Family<TypeLabels, Counter>,
    /// The counters of `frames_out`, in the order of [`FRAME_TYPES_OUT`].
    frames_out_by_type: [Counter; FRAME_TYPES_OUT.len()],
    sends: Family<OutcomeLabels, Counter>,
    pub send_ack_seconds: Histogram,
    pub send_deliver_seconds: Histogram,
    pub publish_batch_size: Histogram,
    pub publish_flush_seconds: Histogram,
    puback_errors: Family<KindLabels, Counter>,
    pub gap_fills: Counter,
    pub gap_fills_failed: Counter,
    pub sync_backlog_messages: Histogram,
    pub slow_consumer_closes: Counter,
    rate_limited: Family<LimitLabels, Counter>,
    rate_limiter_errors: Counter,
    http_requests: Family<StatusLabels, Counter>,
    pub draining: Gauge,
    uploads_swept: Family<ReasonLabels, Counter>,
    pub downloads_cut_off: Counter,
}

/// The `type` labels of written frames; the last, `other`, takes any type not named.
const FRAME_TYPES_OUT: [&str; 13] = [
    "message.new",
    "message.ack",
    "message.updated",
    "message.deleted",
    "reaction.updated",
    "change.rejected",
    "sync.done",
    "auth.refreshed",
    "read.updated",
    "typing.update",
    "presence.update",
    "error",
    "other",
];

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ReasonLabels {
    reason: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct CodeLabels {
    code: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct TypeLabels {
    r#type: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OutcomeLabels {
    outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct KindLabels {
    kind: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct LimitLabels {
    limit: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StatusLabels {
    status: u16,
}

/// How a `message.send` ended.
#[derive(Clone, Copy, Debug)]
pub enum SendOutcome {
    /// Stored in the stream: `message.ack`.
    Acked,
    /// A resend the stream already had: `message.ack` with the original id.
    Duplicate,
    /// Refused before publishing (not a member, invalid).
    Rejected,
    /// No PubAck: a retryable `error`.
    Failed,
}

impl GatewayMetrics {
    pub fn register(registry: &mut Registry) -> Self {
        let metrics = Self::unregistered();
        metrics.register_sockets_and_sends(registry);
        metrics.register_publish_and_delivery(registry);
        metrics.register_limits_and_requests(registry);
        metrics.zero_known_labels();
        metrics
    }

    fn unregistered() -> Self {
        let frames_out = Family::<TypeLabels, Counter>::default();
        let frames_out_by_type =
            FRAME_TYPES_OUT.map(|r#type| frames_out.get_or_create(&TypeLabels { r#type }).clone());
        Self {
            connections: Gauge::default(),
            connections_opened: Counter::default(),
            connections_closed: Family::default(),
            frames_in: Family::default(),
            frames_out,
            frames_out_by_type,
            sends: Family::default(),
            send_ack_seconds: Histogram::new(latency_buckets()),
            send_deliver_seconds: Histogram::new(latency_buckets()),
            publish_batch_size: Histogram::new(size_buckets()),
            publish_flush_seconds: Histogram::new(latency_buckets()),
            puback_errors: Family::default(),
            gap_fills: Counter::default(),
            gap_fills_failed: Counter::default(),
            sync_backlog_messages: Histogram::new(size_buckets()),
            slow_consumer_closes: Counter::default(),
            rate_limited: Family::default(),
            rate_limiter_errors: Counter::default(),
            http_requests: Family::default(),
            draining: Gauge::default(),
            uploads_swept: Family::default(),
            downloads_cut_off: Counter::default(),
        }
    }

    fn register_sockets_and_sends(&self, r: &mut Registry) {
        r.register("chat_gateway_connections", "Open WebSocket connections", self.connections.clone());
        r.register(
            "chat_gateway_connections_opened",
            "WebSocket connections accepted",
            self.connections_opened.clone(),
        );
        r.register(
            "chat_gateway_connections_closed",
            "WebSocket connections closed, by close code (1006: without a close frame)",
            self.connections_closed.clone(),
        );
        r.register("chat_gateway_frames_in", "Client frames received, by type", self.frames_in.clone());
        r.register("chat_gateway_frames_out", "Server frames written, by type", self.frames_out.clone());
        r.register("chat_gateway_sends", "message.send frames by outcome", self.sends.clone());
        r.register_with_unit(
            "chat_gateway_send_ack",
            "From a message.send received to its ack or error queued",
            Unit::Seconds,
            self.send_ack_seconds.clone(),
        );
        r.register_with_unit(
            "chat_gateway_send_deliver",
            "From a message.send received (on any gateway) to its delivery forwarded here",
            Unit::Seconds,
            self.send_deliver_seconds.clone(),
        );
    }

    fn register_publish_and_delivery(&self, r: &mut Registry) {
        r.register(
            "chat_gateway_publish_batch_size",
            "Messages per publish batch",
            self.publish_batch_size.clone(),
        );
        r.register_with_unit(
            "chat_gateway_publish_flush",
            "Time to publish and flush one batch",
            Unit::Seconds,
            self.publish_flush_seconds.clone(),
        );
        r.register(
            "chat_gateway_puback_errors",
            "Publishes the stream did not confirm, by kind",
            self.puback_errors.clone(),
        );
        r.register(
            "chat_gateway_gap_fills",
            "Holes in a channel's deliveries filled from Postgres",
            self.gap_fills.clone(),
        );
        r.register(
            "chat_gateway_gap_fills_failed",
            "Holes in a channel's deliveries that could not be filled: the channel's sockets were closed with 1011 to resume with sync",
            self.gap_fills_failed.clone(),
        );
        r.register(
            "chat_gateway_sync_backlog_messages",
            "Messages sent per channel by a sync",
            self.sync_backlog_messages.clone(),
        );
    }

    fn register_limits_and_requests(&self, r: &mut Registry) {
        r.register(
            "chat_gateway_slow_consumer_closes",
            "Sockets closed with 4008 because they did not read fast enough",
            self.slow_consumer_closes.clone(),
        );
        r.register(
            "chat_gateway_rate_limited",
            "Requests and frames refused by a rate limit, by limit",
            self.rate_limited.clone(),
        );
        r.register(
            "chat_gateway_rate_limiter_errors",
            "Limiter calls Redis did not answer in time; the limit failed open",
            self.rate_limiter_errors.clone(),
        );
        r.register("chat_gateway_http_requests", "HTTP requests by status", self.http_requests.clone());
        r.register("chat_gateway_draining", "1 while the gateway drains for shutdown", self.draining.clone());
        r.register(
            "chat_gateway_uploads_swept",
            "Uploads deleted by the sweeper, by reason (unattached, abandoned)",
            self.uploads_swept.clone(),
        );
        r.register(
            "chat_gateway_downloads_cut_off",
            "Downloads ended because their client took no bytes for uploads.idle_timeout",
            self.downloads_cut_off.clone(),
        );
    }

    fn zero_known_labels(&self) {
        // Every known label value from 0, so a rate over a fresh process is defined.
        for outcome in ["acked", "duplicate", "rejected", "failed"] {
            let _ = self.sends.get_or_create(&OutcomeLabels { outcome });
        }
        for limit in
            ["rest_per_user", "sends_per_user", "messages_per_channel", "sockets_per_user", "auth_per_ip"]
        {
            let _ = self.rate_limited.get_or_create(&LimitLabels { limit });
        }
        for kind in ["timeout", "error"] {
            let _ = self.puback_errors.get_or_create(&KindLabels { kind });
        }
        for reason in ["unattached", "abandoned"] {
            let _ = self.uploads_swept.get_or_create(&ReasonLabels { reason });
        }
    }

    /// Counts `count` uploads swept for `reason` (`unattached` or `abandoned`).
    pub fn uploads_swept(&self, reason: &'static str, count: usize) {
        self.uploads_swept.get_or_create(&ReasonLabels { reason }).inc_by(count as u64);
    }

    /// Counts a closed socket by its close code; codes the gateway does not know (a peer may
    /// send any of about 2,000) are counted as `other`, so the label stays bounded.
    pub fn closed(&self, code: u16) {
        let code = match code {
            1000 | 1001 | 1005 | 1006 | 1009 | 1011 | 1012 | 4000 | 4001 | 4003 | 4008 | 4029 => {
                code.to_string()
            }
            _ => "other".to_owned(),
        };
        self.connections_closed.get_or_create(&CodeLabels { code }).inc();
    }

    pub fn frame_in(&self, kind: &'static str) {
        self.frames_in.get_or_create(&TypeLabels { r#type: kind }).inc();
    }

    /// Counts a written frame by the type at its start (`{"type":"…"`, as every server frame
    /// is encoded). One per frame written, so the counter is found by index, not looked up in
    /// the family (a lock and a hash per frame: 3 % of the gateway's CPU in a broadcast).
    pub fn frame_out(&self, frame: &str) {
        let kind = frame.strip_prefix(r#"{"type":""#).and_then(|rest| rest.split('"').next());
        let index =
            FRAME_TYPES_OUT.iter().position(|t| Some(*t) == kind).unwrap_or(FRAME_TYPES_OUT.len() - 1);
        self.frames_out_by_type[index].inc();
    }

    pub fn send(&self, outcome: SendOutcome) {
        let outcome = match outcome {
            SendOutcome::Acked => "acked",
            SendOutcome::Duplicate => "duplicate",
            SendOutcome::Rejected => "rejected",
            SendOutcome::Failed => "failed",
        };
        self.sends.get_or_create(&OutcomeLabels { outcome }).inc();
    }

    pub fn puback_error(&self, timed_out: bool) {
        let kind = if timed_out { "timeout" } else { "error" };
        self.puback_errors.get_or_create(&KindLabels { kind }).inc();
    }

    pub fn rate_limited(&self, limit: &'static str) {
        self.rate_limited.get_or_create(&LimitLabels { limit }).inc();
    }

    pub fn rate_limiter_error(&self) {
        self.rate_limiter_errors.inc();
    }

    pub fn http_request(&self, status: u16) {
        self.http_requests.get_or_create(&StatusLabels { status }).inc();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn written_frames_are_counted_by_their_type_and_unknown_ones_as_other() {
        let mut registry = Registry::default();
        let metrics = GatewayMetrics::register(&mut registry);
        metrics.frame_out(r#"{"type":"message.new","payload":{}}"#);
        metrics.frame_out(r#"{"type":"message.new","payload":{}}"#);
        metrics.frame_out(r#"{"type":"error","id":"x","payload":{}}"#);
        metrics.frame_out(r#"{"type":"made.up"}"#);
        metrics.frame_out("not json");
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &registry).expect("encodes");
        for line in [
            r#"chat_gateway_frames_out_total{type="message.new"} 2"#,
            r#"chat_gateway_frames_out_total{type="error"} 1"#,
            r#"chat_gateway_frames_out_total{type="other"} 2"#,
            r#"chat_gateway_frames_out_total{type="message.ack"} 0"#,
        ] {
            assert!(text.lines().any(|l| l == line), "{line} missing from:\n{text}");
        }
    }
}
