//! One-use form nonces: every page that offers an action carries a fresh random nonce, and a
//! form is taken only with a nonce this server issued, not yet used and not expired. Another
//! site cannot read one (same-origin policy), and a captured form cannot be sent twice.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// How long a page's forms stay usable.
pub const NONCE_LIFETIME: Duration = Duration::from_secs(3600);

/// Nonces kept at most; past that the oldest are forgotten (their forms are refused), so a
/// client reloading pages in a loop cannot grow the server's memory.
const MAX_NONCES: usize = 8192;

#[derive(Default)]
pub struct Nonces {
    issued: Mutex<HashMap<String, Instant>>,
}

#[derive(Debug, PartialEq, Eq)]
pub enum Refused {
    Missing,
    Unknown,
    Expired,
}

impl std::fmt::Display for Refused {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Refused::Missing => "the form carries no nonce: send it from the page",
            Refused::Unknown => {
                "this form was already sent, or was not issued by this server: reload the page and send it again"
            }
            Refused::Expired => "this form is more than an hour old: reload the page",
        })
    }
}

impl Nonces {
    pub fn issue(&self) -> std::io::Result<String> {
        let nonce = crate::ledger::random_hex(16)?;
        let now = Instant::now();
        let mut issued = self.issued.lock().unwrap_or_else(|e| e.into_inner());
        issued.retain(|_, at| now.duration_since(*at) < NONCE_LIFETIME);
        if issued.len() >= MAX_NONCES {
            let mut ages: Vec<(Instant, String)> =
                issued.iter().map(|(n, at)| (*at, n.clone())).collect();
            ages.sort();
            for (_, n) in ages.into_iter().take(MAX_NONCES / 4) {
                issued.remove(&n);
            }
        }
        issued.insert(nonce.clone(), now);
        Ok(nonce)
    }

    /// Takes the nonce: it is never accepted again.
    pub fn redeem(&self, nonce: &str) -> Result<(), Refused> {
        if nonce.is_empty() {
            return Err(Refused::Missing);
        }
        let mut issued = self.issued.lock().unwrap_or_else(|e| e.into_inner());
        match issued.remove(nonce) {
            None => Err(Refused::Unknown),
            Some(at) if at.elapsed() >= NONCE_LIFETIME => Err(Refused::Expired),
            Some(_) => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_nonce_is_taken_once_and_only_if_issued() {
        let n = Nonces::default();
        let a = n.issue().unwrap();
        let b = n.issue().unwrap();
        assert_ne!(a, b);
        assert_eq!(a.len(), 32);
        assert_eq!(n.redeem(""), Err(Refused::Missing));
        assert_eq!(n.redeem("0123"), Err(Refused::Unknown));
        assert_eq!(n.redeem(&a), Ok(()));
        assert_eq!(n.redeem(&a), Err(Refused::Unknown), "replayed");
        assert_eq!(n.redeem(&b), Ok(()));
    }

    #[test]
    fn the_store_stays_bounded() {
        let n = Nonces::default();
        let first = n.issue().unwrap();
        for _ in 0..MAX_NONCES + 10 {
            n.issue().unwrap();
        }
        assert!(n.issued.lock().unwrap().len() <= MAX_NONCES);
        assert_eq!(
            n.redeem(&first),
            Err(Refused::Unknown),
            "the oldest went first"
        );
    }
}
