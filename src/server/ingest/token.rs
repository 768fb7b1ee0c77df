//! Standalone mode's callers: one bearer token read from a file, or, only
//! when the routes listen on loopback, none at all.

use std::path::Path;

use sha2::{Digest, Sha256};

use super::auth::{User, bearer_token};
use super::errors::ApiError;

/// The one token standalone mode accepts (only its SHA-256 is kept).
#[derive(Clone)]
pub struct Token([u8; 32]);

impl std::fmt::Debug for Token {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Token(redacted)")
    }
}

/// The username of a caller with the token, and of one on loopback without it.
pub const TOKEN_USER: &str = "token";
pub const LOOPBACK_USER: &str = "loopback";

/// The shortest token accepted: shorter ones are guessable.
pub const MIN_TOKEN_CHARS: usize = 16;

impl Token {
    /// The token in `path` (surrounding whitespace ignored).
    pub fn from_file(path: &Path) -> Result<Token, String> {
        let text =
            std::fs::read_to_string(path).map_err(|e| format!("cannot read the token file {}: {e}", path.display()))?;
        Token::new(text.trim()).map_err(|e| format!("the token file {}: {e}", path.display()))
    }

    pub fn new(token: &str) -> Result<Token, String> {
        if token.chars().count() < MIN_TOKEN_CHARS {
            return Err(format!("the token must have at least {MIN_TOKEN_CHARS} characters"));
        }
        if token.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err("the token must not contain spaces or control characters".to_string());
        }
        Ok(Token(Sha256::digest(token.as_bytes()).into()))
    }

    fn matches(&self, presented: &str) -> bool {
        let digest: [u8; 32] = Sha256::digest(presented.as_bytes()).into();
        // Comparing digests: the time taken says nothing about the token.
        digest.iter().zip(self.0.iter()).fold(0u8, |acc, (a, b)| acc | (a ^ b)) == 0
    }
}

/// Who may call, in standalone mode.
#[derive(Clone, Debug)]
pub enum TokenAccess {
    /// Callers must present this bearer token.
    Required(Token),
    /// No token: the routes listen on loopback only.
    LoopbackOnly,
}

impl TokenAccess {
    /// The caller of a request with these headers. Without a token, only a
    /// request made on this machine by a program, not by a web page, is
    /// admitted: a browser says where a request comes from (`Origin`,
    /// `Sec-Fetch-Site`), and a page whose name was rebound to 127.0.0.1
    /// still sends its own name as `Host`.
    pub fn admit(&self, headers: &axum::http::HeaderMap) -> Result<User, ApiError> {
        let user =
            |name: &str| User { username: name.to_string(), uid: None, groups: Vec::new(), extra: Default::default() };
        let authorization = headers.get(axum::http::header::AUTHORIZATION).and_then(|v| v.to_str().ok());
        match self {
            TokenAccess::LoopbackOnly => {
                from_this_machine(
                    headers,
                    "without --token-file, only programs on this machine may call (not web pages)",
                )?;
                Ok(user(LOOPBACK_USER))
            }
            TokenAccess::Required(token) => {
                let presented = bearer_token(authorization)?;
                if token.matches(presented) {
                    Ok(user(TOKEN_USER))
                } else {
                    Err(ApiError::unauthenticated("the bearer token is not the one this kube-notify accepts"))
                }
            }
        }
    }
}

/// Refuse what a web page could send to a loopback address: a request with
/// an `Origin`, a cross-site `Sec-Fetch-Site`, or a `Host` that is not a
/// loopback name (403, the message ending with `hint`). The one check of
/// every listener that takes requests without a token (standalone on
/// loopback, the sidecar).
pub fn from_this_machine(headers: &axum::http::HeaderMap, hint: &str) -> Result<(), ApiError> {
    let refused = |why: &str| ApiError::forbidden(format!("{why}: {hint}"));
    if headers.contains_key(axum::http::header::ORIGIN) {
        return Err(refused("a request from a web page (Origin)"));
    }
    if let Some(site) = headers.get("sec-fetch-site").and_then(|v| v.to_str().ok())
        && !matches!(site, "none" | "same-origin")
    {
        return Err(refused("a cross-site request (Sec-Fetch-Site)"));
    }
    let host = headers.get(axum::http::header::HOST).and_then(|v| v.to_str().ok()).unwrap_or("");
    let name = match host.rsplit_once(':') {
        Some((name, port)) if port.chars().all(|c| c.is_ascii_digit()) && !name.ends_with(':') => name,
        _ => host,
    };
    let ip = name.trim_start_matches('[').trim_end_matches(']').parse::<std::net::IpAddr>();
    if !(name.is_empty() || name.eq_ignore_ascii_case("localhost") || ip.is_ok_and(|ip| ip.is_loopback())) {
        return Err(refused("a request for another host name (Host)"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &str)]) -> axum::http::HeaderMap {
        let mut h = axum::http::HeaderMap::new();
        for (k, v) in pairs {
            h.insert(*k, v.parse().unwrap());
        }
        h
    }

    #[test]
    fn only_the_token_is_admitted() {
        let access = TokenAccess::Required(Token::new("0123456789abcdef-secret").unwrap());
        let ok = headers(&[("authorization", "Bearer 0123456789abcdef-secret")]);
        assert_eq!(access.admit(&ok).unwrap().username, TOKEN_USER);
        for bad in [None, Some("Bearer "), Some("Bearer wrong-but-long-enough"), Some("Basic abc")] {
            let h = bad.map(|b| headers(&[("authorization", b)])).unwrap_or_default();
            let e = access.admit(&h).unwrap_err();
            assert_eq!(e.status, axum::http::StatusCode::UNAUTHORIZED, "{bad:?}");
            assert!(!format!("{e:?}").contains("0123456789abcdef"), "never echoes the token");
        }
        let local = headers(&[("host", "127.0.0.1:8080")]);
        assert_eq!(TokenAccess::LoopbackOnly.admit(&local).unwrap().username, LOOPBACK_USER);
    }

    #[test]
    fn without_a_token_web_pages_are_refused() {
        for ok in [vec![("host", "localhost:8080")], vec![("host", "[::1]:8080")], vec![("sec-fetch-site", "none")]] {
            assert!(TokenAccess::LoopbackOnly.admit(&headers(&ok)).is_ok(), "{ok:?}");
        }
        for bad in [
            vec![("host", "127.0.0.1:8080"), ("origin", "https://evil.example")],
            vec![("host", "127.0.0.1:8080"), ("sec-fetch-site", "cross-site")],
            vec![("host", "evil.example:8080")],
            vec![("host", "evil.example")],
            vec![("host", "127.evil.example:8080")],
        ] {
            let e = TokenAccess::LoopbackOnly.admit(&headers(&bad)).unwrap_err();
            assert_eq!(e.status, axum::http::StatusCode::FORBIDDEN, "{bad:?}");
        }
    }

    #[test]
    fn short_or_spaced_tokens_are_refused() {
        assert!(Token::new("short").is_err());
        assert!(Token::new("has a space in it, long enough").is_err());
        assert!(format!("{:?}", Token::new("0123456789abcdef-secret").unwrap()) == "Token(redacted)");
    }
}
