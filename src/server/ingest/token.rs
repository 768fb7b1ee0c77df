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
    /// The caller of a request with this `Authorization` header.
    pub fn admit(&self, authorization: Option<&str>) -> Result<User, ApiError> {
        let user =
            |name: &str| User { username: name.to_string(), uid: None, groups: Vec::new(), extra: Default::default() };
        match self {
            TokenAccess::LoopbackOnly => Ok(user(LOOPBACK_USER)),
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_token_is_admitted() {
        let access = TokenAccess::Required(Token::new("0123456789abcdef-secret").unwrap());
        assert_eq!(access.admit(Some("Bearer 0123456789abcdef-secret")).unwrap().username, TOKEN_USER);
        for bad in [None, Some("Bearer "), Some("Bearer wrong-but-long-enough"), Some("Basic abc")] {
            let e = access.admit(bad).unwrap_err();
            assert_eq!(e.status, axum::http::StatusCode::UNAUTHORIZED, "{bad:?}");
            assert!(!format!("{e:?}").contains("0123456789abcdef"), "never echoes the token");
        }
        assert_eq!(TokenAccess::LoopbackOnly.admit(None).unwrap().username, LOOPBACK_USER);
    }

    #[test]
    fn short_or_spaced_tokens_are_refused() {
        assert!(Token::new("short").is_err());
        assert!(Token::new("has a space in it, long enough").is_err());
        assert!(format!("{:?}", Token::new("0123456789abcdef-secret").unwrap()) == "Token(redacted)");
    }
}
