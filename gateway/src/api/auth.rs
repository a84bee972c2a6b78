//! `X-API-Key` authentication of every `/api` route.

use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::middleware::Next;
use axum::response::{IntoResponse as _, Response};
use subtle::ConstantTimeEq as _;

use super::{ApiState, error_response};

pub const HEADER: &str = "x-api-key";

/// The API key, read from the environment variable of the model secret `api.api_key`.
/// Never printed: `Debug` shows only that a key is set.
#[derive(Clone)]
pub struct ApiKey(Vec<u8>);

impl std::fmt::Debug for ApiKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ApiKey(<redacted>)")
    }
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ApiKeyError {
    #[error(
        "environment variable {env} (secret `{secret}`, the API's X-API-Key) is not set; the API refuses to start without it"
    )]
    Missing { env: String, secret: String },
    #[error(
        "environment variable {env} (secret `{secret}`, the API's X-API-Key) is empty, holds control characters or starts or ends with whitespace"
    )]
    Unusable { env: String, secret: String },
}

impl ApiKey {
    /// Reads the key from `env` through `lookup` (the process environment in production).
    /// Errors name the variable and the secret id, never the value.
    pub fn from_env(
        env: &str,
        secret: &str,
        lookup: impl Fn(&str) -> Option<String>,
    ) -> Result<ApiKey, ApiKeyError> {
        match lookup(env) {
            None => Err(ApiKeyError::Missing {
                env: env.to_string(),
                secret: secret.to_string(),
            }),
            // A header value cannot carry control characters, and HTTP strips surrounding
            // whitespace, so such a key could never match.
            Some(value)
                if value.is_empty()
                    || value.chars().any(char::is_control)
                    || value.trim() != value =>
            {
                Err(ApiKeyError::Unusable {
                    env: env.to_string(),
                    secret: secret.to_string(),
                })
            }
            Some(value) => Ok(ApiKey(value.into_bytes())),
        }
    }

    /// Constant-time comparison: the time taken does not depend on how many leading bytes
    /// match (only a length mismatch returns early, and the length is not the secret).
    pub fn matches(&self, presented: &[u8]) -> bool {
        bool::from(self.0.as_slice().ct_eq(presented))
    }
}

/// Rejects requests without the right key with 401 before any handler runs.
pub async fn require_key(State(state): State<ApiState>, request: Request, next: Next) -> Response {
    let presented = request.headers().get(HEADER).map(|value| value.as_bytes());
    let verdict = match presented {
        None => Err("missing X-API-Key header"),
        Some(value) if state.api_key.matches(value) => Ok(()),
        Some(_) => Err("invalid X-API-Key"),
    };
    match verdict {
        Ok(()) => next.run(request).await,
        Err(reason) => {
            metrics::counter!(crate::api::metric::AUTH_FAILURES).increment(1);
            let mut response = error_response(StatusCode::UNAUTHORIZED, reason).into_response();
            response.headers_mut().insert(
                axum::http::header::WWW_AUTHENTICATE,
                axum::http::HeaderValue::from_static("ApiKey header=\"X-API-Key\""),
            );
            response
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_key_names_the_variable_only() {
        let error = ApiKey::from_env("TG_API_KEY", "api_key", |_| None).unwrap_err();
        let text = error.to_string();
        assert!(
            text.contains("TG_API_KEY") && text.contains("api_key"),
            "{text}"
        );
    }

    #[test]
    fn unusable_key_is_refused_without_echoing_it() {
        let error =
            ApiKey::from_env("TG_API_KEY", "api_key", |_| Some(" v4lu3-xyz".into())).unwrap_err();
        assert!(!error.to_string().contains("v4lu3"), "{error}");
        assert!(ApiKey::from_env("TG_API_KEY", "api_key", |_| Some("se\ncret".into())).is_err());
        assert!(ApiKey::from_env("TG_API_KEY", "api_key", |_| Some("in ner".into())).is_ok());
        assert!(ApiKey::from_env("TG_API_KEY", "api_key", |_| Some(String::new())).is_err());
    }

    #[test]
    fn compares_exact_bytes() {
        let key = ApiKey::from_env("K", "k", |_| Some("s3cret-key".into())).unwrap();
        assert!(key.matches(b"s3cret-key"));
        assert!(!key.matches(b"s3cret-kez"));
        assert!(!key.matches(b"s3cret-key2"));
        assert!(!key.matches(b""));
        assert!(!format!("{key:?}").contains("s3cret"));
    }
}
