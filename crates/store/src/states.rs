//! SQL that both backends share about delivery states: which rows show as which
//! Svix status (the SQL side of `DeliveryState::message_status`), and the
//! per-status counts of endpoint stats.

use hookd_core::{DeliveryState, MessageStatus};

use crate::model::EndpointStats;

/// A condition on the delivery aliased `d` that holds exactly when the API
/// shows it with `status`. Both backends run it as is.
pub fn status_condition(status: MessageStatus) -> &'static str {
    match status {
        MessageStatus::Success => "d.state = 'succeeded'",
        MessageStatus::Pending => "(d.state IN ('scheduled', 'paused') AND d.attempts = 0)",
        MessageStatus::Fail => "d.state = 'failed'",
        MessageStatus::Sending => "(d.state = 'leased' OR (d.state IN ('scheduled', 'paused') AND d.attempts > 0))",
        MessageStatus::Canceled => "d.state = 'canceled'",
    }
}

/// Adds `n` deliveries in `state` after `attempts` to the stats.
pub fn count(stats: &mut EndpointStats, state: DeliveryState, attempted: bool, n: u64) {
    match state.message_status(u32::from(attempted)) {
        MessageStatus::Success => stats.success += n,
        MessageStatus::Pending => stats.pending += n,
        MessageStatus::Fail => stats.fail += n,
        MessageStatus::Sending => stats.sending += n,
        MessageStatus::Canceled => stats.canceled += n,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The SQL conditions and `message_status` must agree; checked against a
    /// tiny evaluator of the same conditions.
    #[test]
    fn conditions_match_the_state_mapping() {
        for state in DeliveryState::ALL {
            for attempts in [0u32, 1, 5] {
                let want = state.message_status(attempts);
                for status in [
                    MessageStatus::Success,
                    MessageStatus::Pending,
                    MessageStatus::Fail,
                    MessageStatus::Sending,
                    MessageStatus::Canceled,
                ] {
                    let cond = status_condition(status);
                    let s = state.as_str();
                    let holds = match status {
                        MessageStatus::Pending => (s == "scheduled" || s == "paused") && attempts == 0,
                        MessageStatus::Sending => {
                            s == "leased" || ((s == "scheduled" || s == "paused") && attempts > 0)
                        }
                        _ => cond.contains(&format!("'{s}'")),
                    };
                    assert_eq!(holds, want == status, "{state} after {attempts} for {status:?}: {cond}");
                }
            }
        }
    }
}
