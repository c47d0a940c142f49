//! Polling endpoints, for receivers that cannot accept connections: an
//! application's poller sinks, read in pages instead of pushed to.
//!
//! - [`sink`]: the sinks themselves, as Svix makes them: `POST
//!   /api/v1/app/{app}/stream/sink` with `"type": "poller"`, and the newer
//!   `/api/v1/app/{app}/destination` with `"type": "pollingEndpoint"`.
//! - [`consume`]: reading one. v1: `GET …/poller/{sink}` (the caller keeps
//!   the iterator), `GET …/poller/{sink}/consumer/{consumer}` (hookd keeps it,
//!   moving on with every read) and `POST …/consumer/{consumer}/seek`. v2: `GET
//!   …/polling-endpoint/{sink}/consumer/{consumer}` leases a batch to the
//!   consumer and `POST …/commit` records how far it got: what it does not
//!   commit it is shown again once the lease ends (at least once).
//! - [`token`]: a sink's poller token, which can do nothing but read that sink.
//!
//! Offsets are the store's log positions ([`hookd_store::poller`]); an
//! iterator is an offset written in decimal.

pub mod consume;
pub mod sink;
pub mod token;

use hookd_store::PollerSink;

use crate::auth::AppAuth;
use crate::error::{ApiError, ApiResult};
use crate::AppState;

/// The sink `id_or_uid` of the path's application, if the caller may read it:
/// a poller token only its own.
pub async fn load_sink(state: &AppState, auth: &AppAuth, id_or_uid: &str) -> ApiResult<PollerSink> {
    let sink = state.resources.get_poller_sink(auth.org_id(), &auth.app.id, id_or_uid).await?;
    if auth.auth.poller_sink.as_deref().is_some_and(|own| own != sink.id) {
        return Err(ApiError::NotFound);
    }
    Ok(sink)
}
