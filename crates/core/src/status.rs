//! Status codes shared by deliveries and attempts, numbered as the Svix API numbers them.

/// The state of one message's delivery to one endpoint (Svix `MessageStatus`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DeliveryStatus {
    Success = 0,
    Pending = 1,
    Fail = 2,
    Sending = 3,
}

/// Why an attempt was made (Svix `MessageAttemptTriggerType`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AttemptTrigger {
    Scheduled = 0,
    Manual = 1,
}

impl DeliveryStatus {
    pub fn from_i64(v: i64) -> Option<Self> {
        Some(match v {
            0 => Self::Success,
            1 => Self::Pending,
            2 => Self::Fail,
            3 => Self::Sending,
            _ => return None,
        })
    }
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
