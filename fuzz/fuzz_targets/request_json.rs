//! Request bodies: whatever arrives, decoding and validating it answers an
//! error or a value, never a panic.
#![no_main]

use hookd_api::extract::parse_json;
use hookd_api::v1::endpoint::crud::{new_endpoint, EndpointIn};
use hookd_api::v1::management::{ApiTokenIn, EnvironmentIn};
use hookd_api::v1::message::MessageIn;
use hookd_api::v1::portal::AppPortalAccessIn;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = hookd_core::validate::json_depth(data);
    if let Ok(ep) = parse_json::<EndpointIn>(data) {
        let _ = new_endpoint(ep, "org_1", "app_1");
    }
    let _ = parse_json::<MessageIn>(data);
    let _ = parse_json::<AppPortalAccessIn>(data);
    let _ = parse_json::<ApiTokenIn>(data);
    let _ = parse_json::<EnvironmentIn>(data);
});
