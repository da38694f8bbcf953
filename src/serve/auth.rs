//! HTTP basic authentication against bcrypt hashes: one check at a time, successes remembered.
//!
//! bcrypt is slow on purpose (tens of milliseconds at cost 10), so a client sending many wrong passwords could
//! keep cores busy. Checks run one at a time on a blocking thread, whatever the number of connections, and a
//! credential that passed once is remembered (by its SHA-256, never in clear) so Prometheus's scrapes cost a
//! hash lookup. An unknown user is checked against a real hash too, so the answer's timing does not tell which
//! user names exist; bcrypt compares hashes in constant time.

use std::collections::{BTreeMap, HashSet};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use base64::Engine as _;
use tokio::sync::Semaphore;

/// Credentials remembered at most; past this the memory starts over (a few users are expected).
const CACHE_MAX: usize = 64;
/// How long a request waits for its turn to check a password before it is answered 503.
const QUEUE_WAIT: Duration = Duration::from_secs(5);

/// The outcome of [`Users::check`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Allowed,
    Denied,
    /// Too many password checks queued: try later.
    Busy,
}

pub struct Users {
    hashes: BTreeMap<String, String>,
    /// SHA-256 of `user \0 hash \0 password` of credentials that passed.
    verified: Mutex<HashSet<[u8; 32]>>,
    checks: Arc<Semaphore>,
}

impl Users {
    /// `hashes`: user name to bcrypt hash, as checked by the web config; empty means everyone is allowed.
    pub fn new(hashes: BTreeMap<String, String>) -> Users {
        Users {
            hashes,
            verified: Mutex::new(HashSet::new()),
            checks: Arc::new(Semaphore::new(1)),
        }
    }

    pub fn required(&self) -> bool {
        !self.hashes.is_empty()
    }

    /// Checks an `Authorization` header value.
    pub async fn check(&self, authorization: Option<&[u8]>) -> Verdict {
        if !self.required() {
            return Verdict::Allowed;
        }
        let Some((user, password)) = authorization.and_then(parse_basic) else {
            return Verdict::Denied;
        };
        // An unknown user costs the same bcrypt as a known one, and never passes.
        let (known, hash) = match self.hashes.get(&user) {
            Some(h) => (true, h.clone()),
            None => match self.hashes.values().next() {
                Some(h) => (false, h.clone()),
                None => return Verdict::Denied,
            },
        };
        let key = digest(&user, &hash, &password);
        if known && self.remembered(&key) {
            return Verdict::Allowed;
        }
        let Ok(Ok(permit)) =
            tokio::time::timeout(QUEUE_WAIT, Arc::clone(&self.checks).acquire_owned()).await
        else {
            return Verdict::Busy;
        };
        // A request queued behind the same credential's check finds it remembered now.
        if known && self.remembered(&key) {
            return Verdict::Allowed;
        }
        let matched = tokio::task::spawn_blocking(move || {
            let _permit = permit;
            bcrypt::verify(password.as_bytes(), &hash).unwrap_or(false)
        })
        .await
        .unwrap_or(false);
        if !(known && matched) {
            return Verdict::Denied;
        }
        let mut verified = self.verified.lock().unwrap_or_else(PoisonError::into_inner);
        if verified.len() >= CACHE_MAX {
            verified.clear();
        }
        verified.insert(key);
        Verdict::Allowed
    }

    fn remembered(&self, key: &[u8; 32]) -> bool {
        self.verified
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .contains(key)
    }
}

fn digest(user: &str, hash: &str, password: &str) -> [u8; 32] {
    let mut ctx = ring::digest::Context::new(&ring::digest::SHA256);
    for part in [user, hash, password] {
        ctx.update(part.as_bytes());
        ctx.update(&[0]);
    }
    let mut out = [0; 32];
    out.copy_from_slice(ctx.finish().as_ref());
    out
}

/// `Basic BASE64(user:password)` into (user, password).
pub fn parse_basic(value: &[u8]) -> Option<(String, String)> {
    let value = std::str::from_utf8(value).ok()?.trim();
    let (scheme, encoded) = value.split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(encoded.trim())
        .ok()?;
    let decoded = String::from_utf8(decoded).ok()?;
    let (user, password) = decoded.split_once(':')?;
    Some((user.to_string(), password.to_string()))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn header(user: &str, password: &str) -> Vec<u8> {
        format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"))
        )
        .into_bytes()
    }

    #[test]
    fn basic_credentials_parse() {
        assert_eq!(
            parse_basic(&header("alice", "a:b")),
            Some(("alice".into(), "a:b".into()))
        );
        assert_eq!(parse_basic(b"Bearer xyz"), None);
        assert_eq!(parse_basic(b"Basic !!!"), None);
        assert_eq!(parse_basic(b"Basic"), None);
    }

    #[test]
    fn right_password_passes_and_is_remembered_wrong_ones_and_unknown_users_do_not() {
        let hash = bcrypt::hash("s3cret", 4).unwrap();
        let users = Users::new([("alice".to_string(), hash)].into_iter().collect());
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async {
            assert_eq!(users.check(None).await, Verdict::Denied);
            assert_eq!(
                users.check(Some(&header("alice", "wrong"))).await,
                Verdict::Denied
            );
            // The right password of another user name: still denied.
            assert_eq!(
                users.check(Some(&header("bob", "s3cret"))).await,
                Verdict::Denied
            );
            assert_eq!(
                users.check(Some(&header("alice", "s3cret"))).await,
                Verdict::Allowed
            );
            assert_eq!(users.verified.lock().unwrap().len(), 1);
            assert_eq!(
                users.check(Some(&header("alice", "s3cret"))).await,
                Verdict::Allowed
            );
        });
        let open = Users::new(BTreeMap::new());
        assert!(!open.required());
        assert_eq!(rt.block_on(open.check(None)), Verdict::Allowed);
    }
}
