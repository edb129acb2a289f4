//! The admin token: held as its SHA-256, compared in constant time.

use std::sync::Arc;

use http::{HeaderMap, HeaderValue, header};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

/// The cookie `/?token=…` sets so the page's own requests carry the token.
const COOKIE: &str = "switchyard_admin";

/// The admin token (only its digest is kept). `Debug` never prints it.
#[derive(Clone)]
pub struct Token(Arc<[u8; 32]>);

impl std::fmt::Debug for Token {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Token([redacted])")
    }
}

impl Token {
    /// `None` for an empty token (which would protect nothing).
    pub fn new(token: &str) -> Result<Token, super::Error> {
        let token = token.trim();
        if token.is_empty() {
            return Err(super::Error::EmptyToken);
        }
        Ok(Token(Arc::new(Sha256::digest(token.as_bytes()).into())))
    }

    fn matches(&self, candidate: &[u8]) -> bool {
        let digest: [u8; 32] = Sha256::digest(candidate).into();
        bool::from(digest.ct_eq(&*self.0))
    }
}

pub(super) enum Outcome {
    Allowed,
    /// `/?token=…` with the right token: set the cookie and go to the page without it.
    SetCookie {
        location: HeaderValue,
        cookie: HeaderValue,
    },
    Refused,
}

pub(super) fn check(token: &Token, headers: &HeaderMap, path: &str, query: &str) -> Outcome {
    let bearer = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "));
    if bearer.is_some_and(|b| token.matches(b.trim().as_bytes())) {
        return Outcome::Allowed;
    }
    let cookie = headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|c| c.trim().strip_prefix(COOKIE)?.strip_prefix('='))
        .any(|c| token.matches(c.as_bytes()));
    if cookie {
        return Outcome::Allowed;
    }
    if path == "/" {
        let mut given = None;
        let mut rest = Vec::new();
        for pair in query.split('&').filter(|p| !p.is_empty()) {
            match pair.strip_prefix("token=") {
                Some(t) => given = Some(super::api::percent_decode(t)),
                None => rest.push(pair),
            }
        }
        if let Some(given) = given
            && token.matches(given.as_bytes())
        {
            let location = if rest.is_empty() {
                "/".to_owned()
            } else {
                format!("/?{}", rest.join("&"))
            };
            // The token is not echoed: the cookie carries the caller's own value back.
            let cookie = format!("{COOKIE}={given}; HttpOnly; SameSite=Strict; Path=/");
            if let (Ok(location), Ok(cookie)) = (
                HeaderValue::from_str(&location),
                HeaderValue::from_str(&cookie),
            ) {
                return Outcome::SetCookie { location, cookie };
            }
        }
    }
    Outcome::Refused
}
