//! hookd's domain: identifiers, Standard Webhooks signing, the retry schedule,
//! address classification for the SSRF guard, and the validated value types that
//! the API parses its input into.
//!
//! Nothing here does I/O; every other crate builds on these types.

pub mod batching;
pub mod broker;
pub mod filter;
pub mod headers;
pub mod id;
pub mod jwe;
pub mod net;
pub mod openapi;
pub mod ordering;
pub mod payload;
pub mod policy;
pub mod relay;
pub mod schedule;
pub mod schema;
pub mod signing;
pub mod status;
pub mod text;
pub mod timefmt;
pub mod trail;
pub mod validate;

pub use id::{new_id, IdPrefix};
pub use schedule::RetrySchedule;
pub use signing::{Secret, SigningError};
pub use status::{AttemptTrigger, DeliveryState, MessageStatus};
