//! hookd's delivery engine: takes deliveries (fresh ones handed over in memory,
//! due retries and expired leases claimed from the store), sends them as signed
//! HTTP requests under per-endpoint concurrency limits, and records the outcomes
//! in batches.
//!
//! - [`dispatcher`]: per-endpoint queues and the concurrency caps.
//! - [`claim`]: the loop that leases due work from the store.
//! - [`sender`]: builds and sends one request; [`ssrf`] guards where it may go.
//! - [`record`]: turns a send result into the delivery's next state and writes
//!   outcomes in batches.

pub mod claim;
pub mod dispatcher;
pub mod metrics;
pub mod record;
pub mod sender;
pub mod ssrf;

pub use dispatcher::{Dispatcher, DispatcherConfig};
pub use metrics::Metrics;
pub use sender::{HttpSender, SenderConfig};
