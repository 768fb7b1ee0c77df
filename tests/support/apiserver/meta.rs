//! ObjectMeta helpers: name/label validation, uids, timestamps.

pub(crate) use kube_notify::admission::object_meta::{
    is_config_key, is_dns_label, is_label_value, is_qualified_name, validate_object_meta,
};
use rand::Rng;
use serde_json::Value;

pub(crate) fn now_rfc3339() -> String {
    jiff::Timestamp::now().strftime("%Y-%m-%dT%H:%M:%SZ").to_string()
}

pub(crate) fn new_uid() -> String {
    let mut rng = rand::rng();
    let b: [u8; 16] = rng.random();
    let h: String = b.iter().map(|x| format!("{x:02x}")).collect();
    format!("{}-{}-4{}-{:x}{}-{}", &h[0..8], &h[8..12], &h[13..16], 8 + (b[8] & 0x3), &h[17..20], &h[20..32])
}

pub(crate) fn random_suffix() -> String {
    const ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
    let mut rng = rand::rng();
    (0..5).map(|_| ALPHABET[rng.random_range(0..ALPHABET.len())] as char).collect()
}

/// Keeps only the fields `ObjectMeta` knows; fails (as a decode error would)
/// when a field has the wrong type.
pub(crate) fn normalize_object_meta(meta: &Value) -> Result<Value, String> {
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
    let m: ObjectMeta = serde_json::from_value(meta.clone()).map_err(|e| e.to_string())?;
    serde_json::to_value(m).map_err(|e| e.to_string())
}
