//! Payload shaping at send time: what a receiver gets, in the shape and format
//! it reads. Templates (minijinja) render a message into JSON, XML, form or
//! text; transformations (JavaScript on QuickJS) may change the payload, the
//! method, the URL and the headers, or cancel the send. Both run sandboxed:
//! no I/O, bounded time, memory and output.

pub mod presets;
pub mod template;
pub mod transform;
