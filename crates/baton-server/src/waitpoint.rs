//! Waitpoint tokens: what lets a third party (a webhook, a link in an
//! email) deliver one signal to one waitpoint of one execution without the
//! API token.
//!
//! A token is `v1.<kid>.<expires_ms>.<hex HMAC-SHA256>` over
//! `baton-waitpoint\0<execution id>\0<waitpoint>\0<expires_ms>` with the
//! secret named by `kid`. The server holds the secrets (the backend never
//! sees them): the first key signs, every listed key verifies, so a key
//! rotates without downtime — add the new key in front, keep the old one
//! listed while its tokens may still be presented, then remove it.
//! Verification compares the MACs in constant time.

use std::time::Duration;

use baton_core::{EngineError, ExecutionId, SignalName, Timestamp};
use hmac::{Hmac, Mac};
use sha2::Sha256;

type HmacSha256 = Hmac<Sha256>;

/// Shortest secret accepted, in bytes.
pub const MIN_SECRET_BYTES: usize = 16;

/// The signing keys of a server: `kid:secret` pairs, the first signs.
#[derive(Clone)]
pub struct WaitpointKeys {
    keys: Vec<(String, Vec<u8>)>,
    /// How long a token for a wait without a timeout stays valid.
    pub ttl: Duration,
}

impl std::fmt::Debug for WaitpointKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The secrets are credentials: only the key ids.
        let kids: Vec<&str> = self.keys.iter().map(|(k, _)| k.as_str()).collect();
        f.debug_struct("WaitpointKeys")
            .field("kids", &kids)
            .field("ttl", &self.ttl)
            .finish()
    }
}

/// Why a presented token was refused (said in logs, never to the caller
/// beyond "unauthorized").
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Refusal {
    /// Not a token of this format.
    Malformed,
    /// Its key id is not among the server's keys.
    UnknownKey,
    /// Its MAC does not match (forged, or for another execution or
    /// waitpoint).
    BadSignature,
    /// Its expiry passed.
    Expired,
}

impl WaitpointKeys {
    /// Default lifetime of a token for a wait without a timeout: 7 days.
    pub const DEFAULT_TTL: Duration = Duration::from_secs(7 * 24 * 3600);

    /// Parses `kid:secret[,kid:secret…]` (what `--waitpoint-secret` and
    /// `BATON_WAITPOINT_SECRET` take).
    ///
    /// ```
    /// use baton_server::WaitpointKeys;
    /// assert!(WaitpointKeys::parse("k2:0123456789abcdef0123,k1:fedcba9876543210fedc").is_ok());
    /// assert!(WaitpointKeys::parse("no-colon").is_err());
    /// assert!(WaitpointKeys::parse("k1:short").is_err());
    /// ```
    ///
    /// # Errors
    /// `Configuration` naming the pair that is wrong: no `:`, an empty or
    /// malformed key id, a secret shorter than [`MIN_SECRET_BYTES`], a key
    /// id listed twice.
    pub fn parse(text: &str) -> Result<Self, EngineError> {
        let mut keys: Vec<(String, Vec<u8>)> = Vec::new();
        for (i, pair) in text.split(',').map(str::trim).enumerate() {
            let Some((kid, secret)) = pair.split_once(':') else {
                return Err(config_error(format!(
                    "waitpoint secret #{}: expected `kid:secret` (several separated by commas)",
                    i + 1
                )));
            };
            if kid.is_empty()
                || !kid
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
            {
                return Err(config_error(format!(
                    "waitpoint secret #{}: key id {kid:?} must be 1 or more of A-Z a-z 0-9 - _",
                    i + 1
                )));
            }
            if secret.len() < MIN_SECRET_BYTES {
                return Err(config_error(format!(
                    "waitpoint secret {kid}: the secret is {} bytes; use at least {MIN_SECRET_BYTES} random bytes",
                    secret.len()
                )));
            }
            if keys.iter().any(|(k, _)| k == kid) {
                return Err(config_error(format!(
                    "waitpoint secret {kid}: key id listed twice"
                )));
            }
            keys.push((kid.to_owned(), secret.as_bytes().to_vec()));
        }
        Ok(WaitpointKeys {
            keys,
            ttl: Self::DEFAULT_TTL,
        })
    }

    /// Sets how long a token for a wait without a timeout stays valid.
    pub fn with_ttl(mut self, ttl: Duration) -> Self {
        self.ttl = ttl;
        self
    }

    /// A token for `waitpoint` of `id`, valid until `expires`; `None`
    /// without keys.
    pub fn sign(
        &self,
        id: &ExecutionId,
        waitpoint: &SignalName,
        expires: Timestamp,
    ) -> Option<String> {
        let (kid, secret) = self.keys.first()?;
        let mac = mac(secret, id, waitpoint, expires.as_millis())?.finalize();
        Some(format!(
            "v1.{kid}.{}.{}",
            expires.as_millis(),
            hex::encode(mac.into_bytes())
        ))
    }

    /// Checks `token` for `waitpoint` of `id` at `now`.
    ///
    /// # Errors
    /// The [`Refusal`]; nothing about the secret leaks through timing.
    pub fn verify(
        &self,
        token: &str,
        id: &ExecutionId,
        waitpoint: &SignalName,
        now: Timestamp,
    ) -> Result<(), Refusal> {
        let mut parts = token.trim().split('.');
        let (Some("v1"), Some(kid), Some(expires), Some(sig), None) = (
            parts.next(),
            parts.next(),
            parts.next(),
            parts.next(),
            parts.next(),
        ) else {
            return Err(Refusal::Malformed);
        };
        let expires: i64 = expires.parse().map_err(|_| Refusal::Malformed)?;
        let sig = hex::decode(sig).map_err(|_| Refusal::Malformed)?;
        let (_, secret) = self
            .keys
            .iter()
            .find(|(k, _)| k == kid)
            .ok_or(Refusal::UnknownKey)?;
        mac(secret, id, waitpoint, expires)
            .ok_or(Refusal::BadSignature)?
            .verify_slice(&sig)
            .map_err(|_| Refusal::BadSignature)?;
        if Timestamp::from_millis(expires) <= now {
            return Err(Refusal::Expired);
        }
        Ok(())
    }
}

fn config_error(message: String) -> EngineError {
    EngineError::Configuration { message }
}

/// The MAC state over a token's fields; `None` only if the HMAC
/// implementation refused the key, which it does for no length.
fn mac(
    secret: &[u8],
    id: &ExecutionId,
    waitpoint: &SignalName,
    expires: i64,
) -> Option<HmacSha256> {
    let mut mac = HmacSha256::new_from_slice(secret).ok()?;
    mac.update(b"baton-waitpoint\0");
    mac.update(id.to_string().as_bytes());
    mac.update(b"\0");
    mac.update(waitpoint.as_str().as_bytes());
    mac.update(b"\0");
    mac.update(expires.to_string().as_bytes());
    Some(mac)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use baton_core::PartitionCount;

    fn keys(text: &str) -> WaitpointKeys {
        WaitpointKeys::parse(text).unwrap()
    }

    #[test]
    fn tokens_verify_for_their_execution_waitpoint_and_time_only() {
        let k = keys("a:0123456789abcdef0123");
        let id = ExecutionId::generate(PartitionCount::DEFAULT);
        let other = ExecutionId::generate(PartitionCount::DEFAULT);
        let w = SignalName::new("approval").unwrap();
        let now = Timestamp::from_millis(1_000);
        let token = k.sign(&id, &w, Timestamp::from_millis(2_000)).unwrap();
        assert!(token.starts_with("v1.a.2000."), "{token}");
        assert_eq!(k.verify(&token, &id, &w, now), Ok(()));
        assert_eq!(
            k.verify(&token, &other, &w, now),
            Err(Refusal::BadSignature)
        );
        let w2 = SignalName::new("payment").unwrap();
        assert_eq!(k.verify(&token, &id, &w2, now), Err(Refusal::BadSignature));
        assert_eq!(
            k.verify(&token, &id, &w, Timestamp::from_millis(2_000)),
            Err(Refusal::Expired)
        );
        // A later expiry written into the token breaks its MAC.
        let stretched = token.replace(".2000.", ".9000.");
        assert_eq!(
            k.verify(&stretched, &id, &w, now),
            Err(Refusal::BadSignature)
        );
        assert_eq!(k.verify("v1.a.x.00", &id, &w, now), Err(Refusal::Malformed));
        assert_eq!(k.verify("nonsense", &id, &w, now), Err(Refusal::Malformed));
        let forged = keys("a:another-secret-of-16b")
            .sign(&id, &w, Timestamp::from_millis(2_000))
            .unwrap();
        assert_eq!(k.verify(&forged, &id, &w, now), Err(Refusal::BadSignature));
    }

    #[test]
    fn keys_rotate_the_first_signs_all_verify() {
        let old = keys("k1:0123456789abcdef0123");
        let both = keys("k2:fedcba9876543210fedc,k1:0123456789abcdef0123");
        let id = ExecutionId::generate(PartitionCount::DEFAULT);
        let w = SignalName::new("w").unwrap();
        let (now, later) = (Timestamp::from_millis(0), Timestamp::from_millis(10));
        let before = old.sign(&id, &w, later).unwrap();
        assert_eq!(
            both.verify(&before, &id, &w, now),
            Ok(()),
            "old tokens still work"
        );
        let after = both.sign(&id, &w, later).unwrap();
        assert!(after.starts_with("v1.k2."));
        assert_eq!(old.verify(&after, &id, &w, now), Err(Refusal::UnknownKey));
        let new_only = keys("k2:fedcba9876543210fedc");
        assert_eq!(
            new_only.verify(&before, &id, &w, now),
            Err(Refusal::UnknownKey),
            "removed keys stop verifying"
        );
    }

    #[test]
    fn bad_key_lists_are_refused_by_name() {
        for bad in [
            "",
            "k1",
            ":0123456789abcdef0123",
            "k 1:0123456789abcdef0123",
            "k1:short",
        ] {
            assert!(WaitpointKeys::parse(bad).is_err(), "{bad:?}");
        }
        let twice = WaitpointKeys::parse("k:0123456789abcdef0123,k:0123456789abcdef0124");
        assert!(twice.unwrap_err().to_string().contains("twice"));
        let debug = format!("{:?}", keys("k:0123456789abcdef0123"));
        assert!(!debug.contains("0123456789"), "{debug}");
    }
}
