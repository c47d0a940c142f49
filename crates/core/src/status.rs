//! A delivery's lifecycle and how the Svix API shows it.
//!
//! [`DeliveryState`] is what hookd stores: one column per delivery, changed only
//! by conditional updates (each transition names the state it leaves, so two
//! actors can never both win). [`MessageStatus`] is Svix's number for the same
//! thing on the wire; [`DeliveryState::message_status`] is the one place that
//! maps between them.
//!
//! ```text
//!            enqueue (fresh work of this node)
//!   ┌───────────────┐  ┌──────────────────────────────┐
//!   │               v  │                              v
//! scheduled ──claim──> leased ──success──> succeeded   paused <──disable── scheduled
//!   ^  ^               │  │                              │
//!   │  └──retry due────┘  └──schedule exhausted──> failed│──enable──> scheduled
//!   └──lease expired (rescue)                            │
//!                           recover / resend: failed, succeeded ──> scheduled
//!                           expunge: scheduled, paused ──> canceled
//! ```

/// Where one message's delivery to one endpoint stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DeliveryState {
    /// Waits for its due time; then any node that owns the endpoint's queue may lease it.
    Scheduled,
    /// Held by one node (lease owner and expiry), queued there or in flight.
    Leased,
    /// An attempt got a 2xx.
    Succeeded,
    /// Every attempt of the schedule failed: the dead-letter view. Recover sends it again.
    Failed,
    /// Waits without spending attempts: its endpoint is disabled. Enabling resumes it.
    Paused,
    /// Will not be sent: its content was expunged.
    Canceled,
}

impl DeliveryState {
    pub const ALL: [DeliveryState; 6] = [
        DeliveryState::Scheduled,
        DeliveryState::Leased,
        DeliveryState::Succeeded,
        DeliveryState::Failed,
        DeliveryState::Paused,
        DeliveryState::Canceled,
    ];

    /// The stored name.
    pub const fn as_str(self) -> &'static str {
        match self {
            DeliveryState::Scheduled => "scheduled",
            DeliveryState::Leased => "leased",
            DeliveryState::Succeeded => "succeeded",
            DeliveryState::Failed => "failed",
            DeliveryState::Paused => "paused",
            DeliveryState::Canceled => "canceled",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|st| st.as_str() == s)
    }

    /// Whether no attempt will follow unless someone asks (recover, resend).
    pub const fn is_final(self) -> bool {
        matches!(self, DeliveryState::Succeeded | DeliveryState::Failed | DeliveryState::Canceled)
    }

    /// The Svix status of a delivery in this state after `attempts` attempts. A
    /// delivery that only waits (scheduled, paused) is pending before its first
    /// attempt and sending after it: never failed or canceled.
    pub const fn message_status(self, attempts: u32) -> MessageStatus {
        match self {
            DeliveryState::Succeeded => MessageStatus::Success,
            DeliveryState::Failed => MessageStatus::Fail,
            DeliveryState::Canceled => MessageStatus::Canceled,
            DeliveryState::Leased => MessageStatus::Sending,
            DeliveryState::Scheduled | DeliveryState::Paused if attempts == 0 => MessageStatus::Pending,
            DeliveryState::Scheduled | DeliveryState::Paused => MessageStatus::Sending,
        }
    }
}

impl std::fmt::Display for DeliveryState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Svix `MessageStatus`, as the current SDKs parse it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MessageStatus {
    Success = 0,
    Pending = 1,
    Fail = 2,
    Sending = 3,
    Canceled = 4,
}

impl MessageStatus {
    pub fn from_i64(v: i64) -> Option<Self> {
        Some(match v {
            0 => Self::Success,
            1 => Self::Pending,
            2 => Self::Fail,
            3 => Self::Sending,
            4 => Self::Canceled,
            _ => return None,
        })
    }

    /// Svix `MessageStatusText`.
    pub const fn text(self) -> &'static str {
        match self {
            MessageStatus::Success => "success",
            MessageStatus::Pending => "pending",
            MessageStatus::Fail => "fail",
            MessageStatus::Sending => "sending",
            MessageStatus::Canceled => "canceled",
        }
    }
}

/// Why an attempt was made (Svix `MessageAttemptTriggerType`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum AttemptTrigger {
    Scheduled = 0,
    Manual = 1,
}

impl AttemptTrigger {
    pub fn from_i64(v: i64) -> Option<Self> {
        Some(match v {
            0 => Self::Scheduled,
            1 => Self::Manual,
            _ => return None,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn states_round_trip_by_name() {
        for s in DeliveryState::ALL {
            assert_eq!(DeliveryState::parse(s.as_str()), Some(s));
        }
        assert_eq!(DeliveryState::parse("pending"), None);
    }

    #[test]
    fn waiting_is_never_shown_as_failed_or_canceled() {
        let table = [
            (DeliveryState::Scheduled, 0, MessageStatus::Pending),
            (DeliveryState::Scheduled, 2, MessageStatus::Sending),
            (DeliveryState::Paused, 0, MessageStatus::Pending),
            (DeliveryState::Paused, 3, MessageStatus::Sending),
            (DeliveryState::Leased, 0, MessageStatus::Sending),
            (DeliveryState::Succeeded, 1, MessageStatus::Success),
            (DeliveryState::Failed, 8, MessageStatus::Fail),
            (DeliveryState::Canceled, 0, MessageStatus::Canceled),
        ];
        for (state, attempts, want) in table {
            assert_eq!(state.message_status(attempts), want, "{state} after {attempts}");
        }
    }

    #[test]
    fn statuses_round_trip_by_number() {
        for n in 0..=4 {
            assert_eq!(MessageStatus::from_i64(n).map(|s| s as i64), Some(n));
        }
        assert_eq!(MessageStatus::from_i64(5), None);
    }
}
