//! Who is calling: the virtual key presented as `Authorization: Bearer …` or `x-api-key`,
//! matched against the policy's SHA-256 hashes in constant time.
//!
//! Invariant: the presented secret is hashed at once and never stored, logged or echoed; only
//! the key's *name* and team travel on. With no `keys` in the policy every client is the one
//! anonymous tenant.

use http::HeaderMap;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use super::error::ApiError;
use crate::budget::Tenant;
use crate::policy::Policy;

/// The tenant a request is charged to, or 401.
pub fn authenticate(policy: &Policy, headers: &HeaderMap) -> Result<Tenant, ApiError> {
    if policy.keys.is_empty() {
        return Ok(Tenant::anonymous());
    }
    let presented = presented_key(headers).ok_or(ApiError::Unauthorized)?;
    let digest: [u8; 32] = Sha256::digest(presented.as_bytes()).into();
    // Compare against every key, so the time taken does not depend on which one matched.
    let mut found = None;
    for key in &policy.keys {
        if bool::from(key.sha256.ct_eq(&digest)) {
            found = Some(key);
        }
    }
    let key = found.ok_or(ApiError::Unauthorized)?;
    Ok(Tenant {
        key: key.name.clone(),
        team: key.team.clone(),
    })
}

/// `Authorization: Bearer KEY` or `x-api-key: KEY` (the Anthropic SDK's header).
fn presented_key(headers: &HeaderMap) -> Option<&str> {
    if let Some(v) = headers
        .get(http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
    {
        let key = v
            .strip_prefix("Bearer ")
            .or_else(|| v.strip_prefix("bearer "))?;
        return Some(key.trim());
    }
    headers
        .get("x-api-key")
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
}

/// The hex SHA-256 of a key, as the policy stores it.
pub fn hash_key(key: &str) -> String {
    Sha256::digest(key.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}
