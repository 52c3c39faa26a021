//! The relay-to-relay hop: how a relay that forwards a terminal WebSocket tells the relay
//! holding the session who the caller is, in a way no outside client can forge.
//!
//! The forwarding relay has already done the checks a browser-facing relay does (Origin, the
//! `jwt` cookie, the ticket's owner) and has looked the ticket up without consuming it. It sends
//! [`HOP_HEADER`](super::protocol::HOP_HEADER) with `ticket.owner.expiry.mac`, an HMAC-SHA256
//! under the hop key every relay sharing the ticket table reads from it (`TicketTable::hop_key`).
//! The owner relay verifies the MAC, that the proof names this very ticket and has not expired,
//! and then consumes the ticket for that owner without verifying any JWT again. A request that
//! carries the header without a valid proof is refused before the upgrade: the header is never
//! a way in from outside. A proof lives [`PROOF_TTL`] and names one single-use ticket (or one session, which
//! also needs its secret), so a captured one is worth nothing.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, Mac};
use sha2::Sha256;
use uuid::Uuid;

use crate::tickets::HopKey;

/// How long a proof is accepted after it was made (a forward connects within seconds).
pub const PROOF_TTL: Duration = Duration::from_secs(30);

/// Longest header accepted (an owner id is at most 256 bytes).
const MAX_PROOF_LEN: usize = 1024;

fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or_default()
}

fn mac(key: &HopKey, payload: &str) -> Option<Hmac<Sha256>> {
    let mut mac = Hmac::<Sha256>::new_from_slice(key.as_slice()).ok()?;
    mac.update(payload.as_bytes());
    Some(mac)
}

/// What a forwarded socket is for: opening a ticket, or resuming a session. Part of the signed
/// payload, so a proof for one can never be presented as the other.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Hop {
    Ticket(Uuid),
    Session(Uuid),
    /// A viewer joining a share; the proof names the viewer (empty: not signed in).
    Share(Uuid),
    /// An owner's HTTP revoke of a share (`DELETE /api/v1/share/{id}`), forwarded to the relay
    /// holding its terminal; the proof names the owner.
    Revoke(Uuid),
    /// A file request (`crate::files`) for a terminal's owner: plain HTTP, not a WebSocket.
    Files(Uuid),
}

impl Hop {
    fn label(self) -> String {
        match self {
            Hop::Ticket(id) => format!("t:{id}"),
            Hop::Session(id) => format!("s:{id}"),
            Hop::Share(id) => format!("v:{id}"),
            Hop::Revoke(id) => format!("r:{id}"),
            Hop::Files(id) => format!("f:{id}"),
        }
    }
}

/// The header value proving that `owner` may open `hop` on the next relay.
pub fn sign(key: &HopKey, hop: Hop, owner: &str) -> Option<String> {
    let expires = now_secs().saturating_add(PROOF_TTL.as_secs());
    let payload = format!(
        "{}.{}.{expires}",
        hop.label(),
        URL_SAFE_NO_PAD.encode(owner)
    );
    let tag = mac(key, &payload)?.finalize().into_bytes();
    Some(format!("{payload}.{}", URL_SAFE_NO_PAD.encode(tag)))
}

/// The owner a valid, unexpired proof for `hop` names; `None` for anything else.
pub fn verify(key: &HopKey, proof: &str, hop: Hop) -> Option<String> {
    if proof.len() > MAX_PROOF_LEN {
        return None;
    }
    let (payload, tag) = proof.rsplit_once('.')?;
    let tag = URL_SAFE_NO_PAD.decode(tag).ok()?;
    // Constant-time comparison, inside `verify_slice`.
    mac(key, payload)?.verify_slice(&tag).ok()?;
    let mut parts = payload.split('.');
    let (named, owner, expires) = (parts.next()?, parts.next()?, parts.next()?);
    if parts.next().is_some() || named != hop.label() {
        return None;
    }
    if expires.parse::<u64>().ok()? < now_secs() {
        return None;
    }
    String::from_utf8(URL_SAFE_NO_PAD.decode(owner).ok()?).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(byte: u8) -> HopKey {
        zeroize::Zeroizing::new([byte; 32])
    }

    #[test]
    fn a_proof_names_its_owner_for_its_ticket_only() {
        let ticket = Hop::Ticket(Uuid::new_v4());
        let proof = sign(&key(1), ticket, "alice@example.com").unwrap();
        assert_eq!(
            verify(&key(1), &proof, ticket).as_deref(),
            Some("alice@example.com")
        );
        assert_eq!(verify(&key(2), &proof, ticket), None, "other key");
        assert_eq!(
            verify(&key(1), &proof, Hop::Ticket(Uuid::new_v4())),
            None,
            "other ticket"
        );
        let Hop::Ticket(id) = ticket else {
            unreachable!()
        };
        assert_eq!(
            verify(&key(1), &proof, Hop::Session(id)),
            None,
            "a ticket's proof does not resume a session of the same id"
        );
        let share = sign(&key(1), Hop::Share(id), "bob@example.com").unwrap();
        assert_eq!(
            verify(&key(1), &share, Hop::Share(id)).as_deref(),
            Some("bob@example.com")
        );
        assert_eq!(verify(&key(1), &share, Hop::Session(id)), None);
        assert_eq!(verify(&key(1), &proof, Hop::Share(id)), None);
        let revoke = sign(&key(1), Hop::Revoke(id), "alice@example.com").unwrap();
        assert_eq!(
            verify(&key(1), &revoke, Hop::Revoke(id)).as_deref(),
            Some("alice@example.com")
        );
        assert_eq!(verify(&key(1), &revoke, Hop::Share(id)), None);
        assert_eq!(verify(&key(1), &share, Hop::Revoke(id)), None);
        let files = sign(&key(1), Hop::Files(id), "alice@example.com").unwrap();
        assert_eq!(
            verify(&key(1), &files, Hop::Files(id)).as_deref(),
            Some("alice@example.com")
        );
        assert_eq!(verify(&key(1), &files, Hop::Session(id)), None);
        assert_eq!(verify(&key(1), &proof, Hop::Files(id)), None);
        let anonymous = sign(&key(1), Hop::Share(id), "").unwrap();
        assert_eq!(
            verify(&key(1), &anonymous, Hop::Share(id)).as_deref(),
            Some("")
        );
    }

    #[test]
    fn tampered_or_expired_proofs_are_refused() {
        let id = Uuid::new_v4();
        let ticket = Hop::Ticket(id);
        let proof = sign(&key(1), ticket, "alice").unwrap();
        let forged_owner = proof.replacen(
            &URL_SAFE_NO_PAD.encode("alice"),
            &URL_SAFE_NO_PAD.encode("mallory"),
            1,
        );
        assert_eq!(verify(&key(1), &forged_owner, ticket), None);
        let payload = format!("t:{id}.{}.{}", URL_SAFE_NO_PAD.encode("alice"), 1);
        let tag = mac(&key(1), &payload).unwrap().finalize().into_bytes();
        let expired = format!("{payload}.{}", URL_SAFE_NO_PAD.encode(tag));
        assert_eq!(verify(&key(1), &expired, ticket), None);
        assert_eq!(verify(&key(1), "1", ticket), None);
    }
}
