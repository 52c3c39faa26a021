//! Redis ticket table: any relay can find, and open, the relay holding a ticket's session.
//!
//! One key per ticket, named after its bucket: `sushi:ticket:{<uuid>}:<bucket>` (the braces are
//! a cluster hash tag, so both buckets an open checks live on one shard). Registration is
//! `SET … NX EXAT <end of next bucket>`: Redis expires tickets itself. Opening is one Lua
//! script, atomic like `GETDEL`, over the current and previous bucket's keys: it consumes the
//! entry (rewriting it as used with `KEEPTTL`, so a replay inside the ticket's lifetime is
//! recognised as a replay) only when the entry names this relay and, if the caller is known,
//! its owner; otherwise it returns the entry untouched and the relay forwards or refuses. One
//! round trip per open, where a look-up and a consume took two.
//!
//! The hop key relays sign forwarded sockets with lives beside the tickets
//! (`sushi:relay-hop-key`), created once by whichever relay needs it first (`SET NX`), and is
//! cached for [`HOP_KEY_TTL`] so a flushed Redis heals without a restart.

use std::time::{Duration, Instant};

use async_trait::async_trait;
use base64::Engine;
use rand::RngCore;
use redis::aio::ConnectionManager;
use tokio::sync::Mutex;
use uuid::Uuid;

use super::{
    Bucket, HopKey, MAX_LISTED_SHARES, Opening, Route, ShareListing, TicketError, TicketTable,
};
use crate::redis::{Unavailable, bounded};

const OPEN: char = 'O';
const USED: char = 'U';
/// What the script answers for an entry it consumed.
const CONSUMED: char = 'C';

const HOP_KEY: &str = "sushi:relay-hop-key";
/// How long a relay trusts its copy of the hop key before reading it again.
pub const HOP_KEY_TTL: Duration = Duration::from_secs(300);

/// KEYS: the ticket's keys (current and previous bucket). ARGV[1]: this relay's advertised
/// URL; ARGV[2]: the caller's identity, or '' when unknown.
const OPEN_SCRIPT: &str = r"
for _, key in ipairs(KEYS) do
  local value = redis.call('GET', key)
  if value then
    if string.sub(value, 1, 1) ~= 'O' then return value end
    local route = cjson.decode(string.sub(value, 2))
    if route.relay ~= ARGV[1] then return value end
    if ARGV[2] ~= '' and route.owner ~= ARGV[2] then return value end
    redis.call('SET', key, 'U' .. string.sub(value, 2), 'KEEPTTL')
    return 'C' .. string.sub(value, 2)
  end
end
return false
";

impl From<Unavailable> for TicketError {
    fn from(err: Unavailable) -> Self {
        TicketError::Unavailable(err.0)
    }
}

pub struct RedisTickets {
    conn: ConnectionManager,
    open: redis::Script,
    describe: String,
    hop_key: Mutex<Option<(HopKey, Instant)>>,
}

fn key(ticket: Uuid, bucket: Bucket) -> String {
    format!("sushi:ticket:{{{ticket}}}:{}", bucket.index)
}

/// What the script's answer means; an untouched open entry is decided by the same rule the
/// script applied (so the reason it was not consumed is reported exactly).
fn session_key(id: Uuid, bucket: Bucket) -> String {
    format!("sushi:session:{{{id}}}:{}", bucket.index)
}

fn share_key(id: Uuid, bucket: Bucket) -> String {
    format!("sushi:share:{{{id}}}:{}", bucket.index)
}

/// The hash of `owner`'s share listings (field: share id). The owner is hashed: an identity
/// may hold any character, braces (a cluster hash tag) included.
fn owner_shares_key(owner: &str) -> String {
    use sha2::Digest;
    let digest = sha2::Sha256::digest(owner.as_bytes());
    let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
    format!("sushi:owner-shares:{{{hex}}}")
}

fn decode(value: Option<String>, here: &str, caller: Option<&str>) -> Result<Opening, TicketError> {
    let Some(value) = value else {
        return Ok(Opening::Missing);
    };
    let mut chars = value.chars();
    let state = chars.next();
    let route: Route = serde_json::from_str(chars.as_str())
        .map_err(|e| TicketError::Unavailable(format!("malformed ticket entry: {e}")))?;
    match state {
        Some(CONSUMED) => Ok(Opening::Opened(route)),
        Some(USED) => Ok(Opening::Used),
        Some(OPEN) => Ok(Opening::decide(route, here, caller).0),
        _ => Err(TicketError::Unavailable(
            "malformed ticket entry".to_owned(),
        )),
    }
}

impl RedisTickets {
    /// `SET key route EXAT <end of next bucket>` under `key(id, bucket)`.
    async fn publish_route(
        &self,
        key: String,
        route: &Route,
        bucket: Bucket,
    ) -> Result<(), TicketError> {
        let value =
            serde_json::to_string(route).map_err(|e| TicketError::Unavailable(e.to_string()))?;
        let mut conn = self.conn.clone();
        bounded(
            redis::cmd("SET")
                .arg(key)
                .arg(value)
                .arg("EXAT")
                .arg(bucket.expires_at_secs())
                .query_async::<()>(&mut conn),
        )
        .await?;
        Ok(())
    }

    /// The route under the current or the previous bucket's key, in one round trip.
    async fn find_route(
        &self,
        current: String,
        previous: String,
    ) -> Result<Option<Route>, TicketError> {
        let mut conn = self.conn.clone();
        let (current, previous): (Option<String>, Option<String>) = bounded(
            redis::pipe()
                .get(current)
                .get(previous)
                .query_async(&mut conn),
        )
        .await?;
        current
            .or(previous)
            .map(|value| {
                serde_json::from_str(&value)
                    .map_err(|e| TicketError::Unavailable(format!("malformed route: {e}")))
            })
            .transpose()
    }

    async fn delete(&self, keys: [String; 2]) -> Result<(), TicketError> {
        let mut conn = self.conn.clone();
        bounded(
            redis::cmd("DEL")
                .arg(&keys[..])
                .query_async::<()>(&mut conn),
        )
        .await?;
        Ok(())
    }

    pub fn new(conn: ConnectionManager, url_for_log: &str) -> Self {
        // Never log credentials that may be embedded in the URL.
        let host = url_for_log
            .rsplit_once('@')
            .map_or(url_for_log, |(_, host)| host)
            .trim_start_matches("redis://")
            .trim_start_matches("rediss://");
        Self {
            conn,
            open: redis::Script::new(OPEN_SCRIPT),
            describe: format!("redis ({host})"),
            hop_key: Mutex::new(None),
        }
    }
}

#[async_trait]
impl TicketTable for RedisTickets {
    async fn register(
        &self,
        ticket: Uuid,
        route: &Route,
        bucket: Bucket,
    ) -> Result<(), TicketError> {
        let value = format!(
            "{OPEN}{}",
            serde_json::to_string(route).map_err(|e| TicketError::Unavailable(e.to_string()))?
        );
        let mut conn = self.conn.clone();
        let set: Option<String> = bounded(
            redis::cmd("SET")
                .arg(key(ticket, bucket))
                .arg(value)
                .arg("NX")
                .arg("EXAT")
                .arg(bucket.expires_at_secs())
                .query_async(&mut conn),
        )
        .await?;
        match set {
            Some(_) => Ok(()),
            // A v4 uuid collision: practically impossible, and refusing is the safe answer.
            None => Err(TicketError::Unavailable(
                "ticket already registered".to_owned(),
            )),
        }
    }

    async fn open(
        &self,
        ticket: Uuid,
        now: Bucket,
        here: &str,
        caller: Option<&str>,
    ) -> Result<Opening, TicketError> {
        let mut conn = self.conn.clone();
        let value: Option<String> = bounded(
            self.open
                .key(key(ticket, now))
                .key(key(ticket, now.previous()))
                .arg(here)
                .arg(caller.unwrap_or_default())
                .invoke_async(&mut conn),
        )
        .await?;
        decode(value, here, caller)
    }

    async fn publish_session(
        &self,
        id: Uuid,
        route: &Route,
        bucket: Bucket,
    ) -> Result<(), TicketError> {
        self.publish_route(session_key(id, bucket), route, bucket)
            .await
    }

    async fn find_session(&self, id: Uuid, now: Bucket) -> Result<Option<Route>, TicketError> {
        self.find_route(session_key(id, now), session_key(id, now.previous()))
            .await
    }

    async fn forget_session(&self, id: Uuid, now: Bucket) -> Result<(), TicketError> {
        self.delete([session_key(id, now), session_key(id, now.previous())])
            .await
    }

    /// The route (`SET … EXAT`), then the listing in the owner's hash, whose expiry every
    /// refresh of any of the owner's shares pushes to the same end of the next bucket.
    async fn publish_share(
        &self,
        id: Uuid,
        route: &Route,
        listing: &ShareListing,
        bucket: Bucket,
    ) -> Result<(), TicketError> {
        self.publish_route(share_key(id, bucket), route, bucket)
            .await?;
        let value =
            serde_json::to_string(listing).map_err(|e| TicketError::Unavailable(e.to_string()))?;
        let owner = owner_shares_key(&route.owner);
        let mut conn = self.conn.clone();
        bounded(
            redis::pipe()
                .hset(&owner, id.to_string(), value)
                .ignore()
                .cmd("EXPIREAT")
                .arg(&owner)
                .arg(bucket.expires_at_secs())
                .ignore()
                .query_async::<()>(&mut conn),
        )
        .await?;
        Ok(())
    }

    async fn find_share(&self, id: Uuid, now: Bucket) -> Result<Option<Route>, TicketError> {
        self.find_route(share_key(id, now), share_key(id, now.previous()))
            .await
    }

    async fn forget_share(&self, id: Uuid, owner: &str, now: Bucket) -> Result<(), TicketError> {
        self.delete([share_key(id, now), share_key(id, now.previous())])
            .await?;
        let mut conn = self.conn.clone();
        bounded(
            redis::cmd("HDEL")
                .arg(owner_shares_key(owner))
                .arg(id.to_string())
                .query_async::<()>(&mut conn),
        )
        .await?;
        Ok(())
    }

    /// The owner's hash, then every listed share's route in one pipeline: a listing whose
    /// route lapsed (its relay died without forgetting it) is left out and removed.
    async fn list_shares(
        &self,
        owner: &str,
        now: Bucket,
    ) -> Result<Vec<ShareListing>, TicketError> {
        let key = owner_shares_key(owner);
        let mut conn = self.conn.clone();
        let listed: Vec<(String, String)> =
            bounded(redis::cmd("HGETALL").arg(&key).query_async(&mut conn)).await?;
        let listed: Vec<(Uuid, ShareListing)> = listed
            .into_iter()
            .filter_map(|(id, value)| {
                Some((
                    Uuid::parse_str(&id).ok()?,
                    serde_json::from_str(&value).ok()?,
                ))
            })
            .take(MAX_LISTED_SHARES)
            .collect();
        if listed.is_empty() {
            return Ok(Vec::new());
        }
        let mut routes = redis::pipe();
        for (id, _) in &listed {
            routes
                .get(share_key(*id, now))
                .get(share_key(*id, now.previous()));
        }
        let found: Vec<Option<String>> = bounded(routes.query_async(&mut conn)).await?;
        let mut live = Vec::with_capacity(listed.len());
        let mut lapsed = Vec::new();
        for ((id, listing), pair) in listed.into_iter().zip(found.chunks(2)) {
            let route = pair
                .iter()
                .flatten()
                .next()
                .and_then(|value| serde_json::from_str::<Route>(value).ok());
            match route {
                Some(route) if route.owner == owner => live.push(listing),
                _ => lapsed.push(id.to_string()),
            }
        }
        if !lapsed.is_empty() {
            let _ = bounded(
                redis::cmd("HDEL")
                    .arg(&key)
                    .arg(&lapsed)
                    .query_async::<()>(&mut conn),
            )
            .await;
        }
        Ok(live)
    }

    async fn hop_key(&self) -> Result<HopKey, TicketError> {
        let mut cached = self.hop_key.lock().await;
        if let Some((key, fetched)) = cached.as_ref() {
            if fetched.elapsed() < HOP_KEY_TTL {
                return Ok(key.clone());
            }
        }
        let mut fresh = [0u8; 32];
        rand::rngs::OsRng.fill_bytes(&mut fresh);
        let engine = base64::engine::general_purpose::STANDARD;
        let mut conn = self.conn.clone();
        // Whoever sets it first wins; everyone then reads the same value.
        let stored: String = bounded(
            redis::pipe()
                .cmd("SET")
                .arg(HOP_KEY)
                .arg(engine.encode(fresh))
                .arg("NX")
                .ignore()
                .get(HOP_KEY)
                .query_async::<(String,)>(&mut conn),
        )
        .await
        .map(|(value,)| value)?;
        let decoded = zeroize::Zeroizing::new(
            engine
                .decode(stored.as_bytes())
                .map_err(|_| TicketError::Unavailable("malformed hop key".to_owned()))?,
        );
        let mut key = HopKey::default();
        if decoded.len() != key.len() {
            return Err(TicketError::Unavailable("malformed hop key".to_owned()));
        }
        key.copy_from_slice(&decoded);
        *cached = Some((key.clone(), Instant::now()));
        Ok(key)
    }

    fn describe(&self) -> String {
        self.describe.clone()
    }
}
