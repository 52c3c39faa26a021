//! The recording service against an in-memory object map and a test key provider that, like
//! the real ones, unwraps a key only under the context it was wrapped with.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};

use zeroize::Zeroizing;

use super::*;
use crate::keys::{DataKey, EncryptionContext, KeyError};

#[derive(Default)]
struct Memory {
    objects: Mutex<BTreeMap<String, Vec<u8>>>,
    failing: AtomicBool,
}

#[async_trait]
impl RecordingStore for Memory {
    async fn put(&self, name: &str, body: Bytes) -> Result<(), StorageError> {
        if self.failing.load(Ordering::SeqCst) {
            return Err(StorageError("down".into()));
        }
        self.objects
            .lock()
            .unwrap()
            .insert(name.to_owned(), body.to_vec());
        Ok(())
    }
    async fn get(&self, name: &str) -> Result<Option<Vec<u8>>, StorageError> {
        Ok(self.objects.lock().unwrap().get(name).cloned())
    }
    async fn list(&self, prefix: &str, limit: usize) -> Result<Vec<String>, StorageError> {
        Ok(self
            .objects
            .lock()
            .unwrap()
            .keys()
            .filter(|k| k.starts_with(prefix))
            .take(limit)
            .cloned()
            .collect())
    }
    async fn delete(&self, names: &[String]) -> Result<(), StorageError> {
        let mut objects = self.objects.lock().unwrap();
        for name in names {
            objects.remove(name);
        }
        Ok(())
    }
    fn describe(&self) -> String {
        "memory".into()
    }
}

/// Wraps by XOR with the context's hash: enough to bind a key to its context in a test.
struct TestKeys;

fn mask(context: &EncryptionContext) -> [u8; 32] {
    Sha256::digest(context.canonical_bytes()).into()
}

#[async_trait]
impl KeyProvider for TestKeys {
    async fn generate_data_key(&self, context: &EncryptionContext) -> Result<DataKey, KeyError> {
        let plaintext: [u8; 32] = rand::random();
        let mut wrapped = plaintext.to_vec();
        for (w, m) in wrapped.iter_mut().zip(mask(context)) {
            *w ^= m;
        }
        let check = Sha256::digest(plaintext);
        wrapped.extend_from_slice(&check[..4]);
        Ok(DataKey {
            plaintext: Zeroizing::new(plaintext),
            wrapped,
        })
    }
    async fn decrypt_data_key(
        &self,
        wrapped: &[u8],
        context: &EncryptionContext,
    ) -> Result<Zeroizing<[u8; 32]>, KeyError> {
        let mut key = [0u8; 32];
        for ((k, w), m) in key.iter_mut().zip(&wrapped[..32]).zip(mask(context)) {
            *k = w ^ m;
        }
        if Sha256::digest(key)[..4] != wrapped[32..] {
            return Err(KeyError::Denied("wrong context".into()));
        }
        Ok(Zeroizing::new(key))
    }
    fn describe(&self) -> String {
        "test".into()
    }
}

fn service() -> (Arc<Memory>, Recordings) {
    let store = Arc::new(Memory::default());
    let recordings = Recordings::new(store.clone(), Arc::new(TestKeys), Policy::On);
    (store, recordings)
}

fn alice() -> Identity {
    Identity("alice@example.com".into())
}

const ID: &str = "0b7c8a5e-1f2d-4c3b-9a8e-7d6c5b4a3f21";

fn subject(record_input: bool) -> Subject<'static> {
    Subject {
        user: "owner@example.com",
        machine_id: 7,
        machine_name: "web",
        record_input,
        cols: 80,
        rows: 24,
    }
}

async fn recorded(recordings: &Recordings, record_input: bool) -> Writer {
    let mut writer = recordings
        .begin(
            &alice(),
            RecordingId::parse(ID).unwrap(),
            subject(record_input),
        )
        .await
        .unwrap();
    let t = Instant::now();
    writer.output(t, b"$ ");
    writer.input(t, b"hunter2\r");
    writer.flush().await.unwrap();
    writer.resize(t, 100, 30);
    writer.output(t, "caf\u{e9}".as_bytes());
    writer.flush().await.unwrap();
    writer.output(t, b"\r\nbye\r\n");
    writer
        .finish(Ending {
            exit_status: Some(0),
        })
        .await
        .unwrap();
    writer
}

fn chunk(index: u64) -> String {
    chunk_name(&alice(), &RecordingId::parse(ID).unwrap(), index)
}

#[tokio::test]
async fn a_recording_replays_its_output_and_lists_its_facts() {
    let (_, recordings) = service();
    recorded(&recordings, false).await;
    let id = RecordingId::parse(ID).unwrap();
    let cast = recordings.fetch(&alice(), &id).await.unwrap();
    assert_eq!(
        cast::replay_output(&cast).unwrap(),
        "$ caf\u{e9}\r\nbye\r\n".as_bytes()
    );
    let text = String::from_utf8(cast).unwrap();
    assert!(text.starts_with("{\"version\":2,\"width\":80,\"height\":24"));
    assert!(text.contains("\"r\",\"100x30\""));
    assert!(!text.contains("hunter2"), "input is off by default");
    let listed = recordings.list(&alice()).await.unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].id, ID);
    assert_eq!(listed[0].exit_status, Some(0));
    assert_eq!(listed[0].bytes, 2 + 5 + 7);
    assert!(listed[0].ended_at.is_some());
}

#[tokio::test]
async fn input_is_recorded_only_when_turned_on() {
    let (_, recordings) = service();
    recorded(&recordings, true).await;
    let cast = recordings
        .fetch(&alice(), &RecordingId::parse(ID).unwrap())
        .await
        .unwrap();
    assert!(
        String::from_utf8(cast)
            .unwrap()
            .contains(",\"i\",\"hunter2\\r\"]")
    );
}

#[tokio::test]
async fn another_owner_sees_nothing() {
    let (_, recordings) = service();
    recorded(&recordings, false).await;
    let mallory = Identity("mallory@example.com".into());
    let id = RecordingId::parse(ID).unwrap();
    assert!(recordings.list(&mallory).await.unwrap().is_empty());
    assert!(matches!(
        recordings.fetch(&mallory, &id).await,
        Err(DomainError::RecordingNotFound)
    ));
    assert!(matches!(
        recordings.delete(&mallory, &id).await,
        Err(DomainError::RecordingNotFound)
    ));
}

#[tokio::test]
async fn a_recording_moved_to_another_owner_does_not_open() {
    let (store, recordings) = service();
    recorded(&recordings, false).await;
    let mallory = Identity("mallory@example.com".into());
    let id = RecordingId::parse(ID).unwrap();
    let copied: Vec<(String, Vec<u8>)> = store
        .objects
        .lock()
        .unwrap()
        .iter()
        .map(|(k, v)| {
            (
                k.replace(&owner_prefix(&alice()), &owner_prefix(&mallory)),
                v.clone(),
            )
        })
        .collect();
    store.objects.lock().unwrap().extend(copied);
    let err = recordings.fetch(&mallory, &id).await.unwrap_err();
    assert!(matches!(err, DomainError::RecordingDamaged(_)), "{err}");
}

async fn damaged(change: impl FnOnce(&mut BTreeMap<String, Vec<u8>>)) -> String {
    let (store, recordings) = service();
    recorded(&recordings, false).await;
    change(&mut store.objects.lock().unwrap());
    match recordings
        .fetch(&alice(), &RecordingId::parse(ID).unwrap())
        .await
    {
        Err(DomainError::RecordingDamaged(why)) => why,
        other => panic!("expected a damaged recording, got {other:?}"),
    }
}

#[tokio::test]
async fn a_tampered_chunk_is_detected() {
    let why = damaged(|objects| {
        let blob = objects.get_mut(&chunk(1)).unwrap();
        let last = blob.len() - 1;
        blob[last] ^= 0x01;
    })
    .await;
    assert!(why.contains("chunk 1 failed authentication"), "{why}");
}

#[tokio::test]
async fn reordered_chunks_are_detected() {
    let why = damaged(|objects| {
        let one = objects.remove(&chunk(1)).unwrap();
        let two = objects.remove(&chunk(2)).unwrap();
        objects.insert(chunk(1), two);
        objects.insert(chunk(2), one);
    })
    .await;
    assert!(why.contains("chunk 1 failed authentication"), "{why}");
}

#[tokio::test]
async fn a_truncated_recording_is_detected() {
    // The final chunk (index 3) removed: chunks 0..=2 still open, but nothing says "last".
    let why = damaged(|objects| {
        objects.remove(&chunk(3));
    })
    .await;
    assert!(why.contains("chunk 3 is missing"), "{why}");
}

#[tokio::test]
async fn a_hole_in_the_indices_is_detected() {
    let why = damaged(|objects| {
        objects.remove(&chunk(1));
    })
    .await;
    assert!(why.contains("chunk 1 is missing"), "{why}");
}

#[tokio::test]
async fn a_failed_write_keeps_the_buffer_and_the_indices_gapless() {
    let (store, recordings) = service();
    let mut writer = recordings
        .begin(&alice(), RecordingId::parse(ID).unwrap(), subject(false))
        .await
        .unwrap();
    let t = Instant::now();
    writer.output(t, b"one ");
    store.failing.store(true, Ordering::SeqCst);
    assert!(writer.flush().await.is_err());
    writer.output(t, b"two ");
    store.failing.store(false, Ordering::SeqCst);
    writer.flush().await.unwrap();
    writer.output(t, b"lost");
    writer.abandon_pending(t);
    writer.output(t, b"three");
    writer.finish(Ending::default()).await.unwrap();
    let cast = recordings
        .fetch(&alice(), &RecordingId::parse(ID).unwrap())
        .await
        .unwrap();
    assert_eq!(cast::replay_output(&cast).unwrap(), b"one two three");
    assert!(String::from_utf8(cast).unwrap().contains("\"m\",\"gap: "));
    assert_eq!(recordings.list(&alice()).await.unwrap()[0].gaps, 1);
}

#[tokio::test]
async fn begin_fails_when_storage_is_down() {
    let (store, recordings) = service();
    store.failing.store(true, Ordering::SeqCst);
    let err = recordings
        .begin(&alice(), RecordingId::parse(ID).unwrap(), subject(false))
        .await
        .err()
        .unwrap();
    assert!(matches!(err, DomainError::RecordingUnavailable(_)));
}

#[tokio::test]
async fn delete_removes_every_object() {
    let (store, recordings) = service();
    recorded(&recordings, false).await;
    recordings
        .delete(&alice(), &RecordingId::parse(ID).unwrap())
        .await
        .unwrap();
    assert!(store.objects.lock().unwrap().is_empty());
}

#[test]
fn ids_are_lower_case_uuids_only() {
    assert!(RecordingId::parse(ID).is_ok());
    for bad in ["", "../../etc", &ID.to_uppercase(), &format!("{ID}/x")] {
        assert!(RecordingId::parse(bad).is_err(), "{bad}");
    }
}

#[test]
fn policy_decides_with_the_machine_toggle() {
    assert!(!Policy::Off.records(true));
    assert!(Policy::On.records(true));
    assert!(!Policy::On.records(false));
    assert!(Policy::Required.records(false));
    assert_eq!(Policy::parse("required"), Some(Policy::Required));
    assert_eq!(Policy::parse("yes"), None);
}

#[tokio::test]
async fn output_within_the_coalescing_window_is_one_event() {
    let (_, recordings) = service();
    let mut writer = recordings
        .begin(&alice(), RecordingId::parse(ID).unwrap(), subject(false))
        .await
        .unwrap();
    let t = Instant::now();
    let arrow = "→".as_bytes();
    // "a→" split inside the arrow, both frames in one window: one event.
    writer.output(t, &[b"a", &arrow[..1]].concat());
    writer.output(t + Duration::from_millis(4), &arrow[1..]);
    // Past the window: a new event; the "é" split across the event boundary is written
    // whole in the second event, not as U+FFFD.
    writer.output(t + Duration::from_millis(12), b"\"b\" \xc3");
    writer.output(t + Duration::from_millis(30), b"\xa9\r\n");
    // A resize closes the open event; output after it opens a new one.
    writer.output(t + Duration::from_millis(31), b"x");
    writer.resize(t + Duration::from_millis(32), 90, 20);
    writer.output(t + Duration::from_millis(33), b"y");
    writer.finish(Ending::default()).await.unwrap();
    let cast = recordings
        .fetch(&alice(), &RecordingId::parse(ID).unwrap())
        .await
        .unwrap();
    assert_eq!(
        cast::replay_output(&cast).unwrap(),
        "a→\"b\" é\r\nxy".as_bytes()
    );
    let text = String::from_utf8(cast).unwrap();
    // Code and data of each event (the times are offsets from the writer's start).
    let events: Vec<&str> = text
        .lines()
        .skip(1)
        .map(|line| line.split_once(',').unwrap().1)
        .collect();
    assert_eq!(
        events,
        [
            "\"o\",\"a→\"]",
            "\"o\",\"\\\"b\\\" \"]",
            "\"o\",\"é\\r\\nx\"]",
            "\"r\",\"90x20\"]",
            "\"o\",\"y\"]",
        ],
        "{text}"
    );
}

fn meta_object() -> String {
    meta_name(&alice(), &RecordingId::parse(ID).unwrap())
}

#[tokio::test]
async fn changed_metadata_is_reported_on_fetch_and_list() {
    let (store, recordings) = service();
    recorded(&recordings, false).await;
    let id = RecordingId::parse(ID).unwrap();
    let original = store.objects.lock().unwrap()[&meta_object()].clone();
    let stored: serde_json::Value = serde_json::from_slice(&original).unwrap();
    assert!(
        !String::from_utf8_lossy(&original).contains("\"web\""),
        "the facts are not in the clear"
    );

    // One bit of the sealed facts changed.
    let mut changed = stored.clone();
    let engine = base64::engine::general_purpose::STANDARD;
    let mut sealed = engine.decode(stored["sealed"].as_str().unwrap()).unwrap();
    sealed[20] ^= 1;
    changed["sealed"] = engine.encode(&sealed).into();
    let put = |value: &serde_json::Value| {
        store
            .objects
            .lock()
            .unwrap()
            .insert(meta_object(), serde_json::to_vec(value).unwrap());
    };
    put(&changed);
    let err = recordings.fetch(&alice(), &id).await.unwrap_err();
    assert!(
        matches!(&err, DomainError::RecordingDamaged(why) if why.contains("metadata failed authentication")),
        "{err}"
    );
    let listed = recordings.list(&alice()).await.unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].id, ID);
    assert!(
        listed[0]
            .damaged
            .as_deref()
            .unwrap()
            .contains("failed authentication"),
        "{listed:?}"
    );

    // Facts written in the clear, as version 1 did: refused, not trusted.
    let mut plain = stored.clone();
    plain["version"] = 1.into();
    put(&plain);
    assert!(matches!(
        recordings.fetch(&alice(), &id).await,
        Err(DomainError::RecordingDamaged(_))
    ));
    put(&json_facts_v1());
    assert!(
        recordings.list(&alice()).await.unwrap()[0]
            .damaged
            .is_some()
    );

    // Restored, it opens again; a damaged one can still be deleted.
    put(&stored);
    assert!(recordings.fetch(&alice(), &id).await.is_ok());
    assert_eq!(recordings.list(&alice()).await.unwrap()[0].damaged, None);
    put(&changed);
    recordings.delete(&alice(), &id).await.unwrap();
    assert!(store.objects.lock().unwrap().is_empty());
}

/// A version 1 metadata object: the facts in the clear.
fn json_facts_v1() -> serde_json::Value {
    serde_json::json!({"version": 1, "id": ID, "machine_id": 7, "machine_name": "web",
        "started_at": 1, "ended_at": 2, "duration_secs": 1.0, "bytes": 0, "exit_status": 0,
        "gaps": 0, "chunks": 4, "record_input": false, "wrapped_key": "AAAA"})
}

#[tokio::test]
async fn metadata_of_another_recording_is_refused() {
    // Two recordings of the same owner; the first's metadata object copied over the second's.
    let (store, recordings) = service();
    recorded(&recordings, false).await;
    const OTHER: &str = "1b7c8a5e-1f2d-4c3b-9a8e-7d6c5b4a3f21";
    let other = RecordingId::parse(OTHER).unwrap();
    let mut writer = recordings
        .begin(&alice(), other.clone(), subject(false))
        .await
        .unwrap();
    writer.finish(Ending::default()).await.unwrap();
    let first = store.objects.lock().unwrap()[&meta_object()].clone();
    store
        .objects
        .lock()
        .unwrap()
        .insert(meta_name(&alice(), &other), first);
    let err = recordings.fetch(&alice(), &other).await.unwrap_err();
    assert!(matches!(err, DomainError::RecordingDamaged(_)), "{err}");
}

#[tokio::test]
async fn windows_concatenate_to_the_recording() {
    let (_, recordings) = service();
    let id = RecordingId::parse(ID).unwrap();
    let mut writer = recordings
        .begin(&alice(), id.clone(), subject(false))
        .await
        .unwrap();
    // About 12 MiB of asciicast in chunks of about 1 MiB (JSON-escaped text with newlines).
    let line: Vec<u8> = (0..1000u32)
        .flat_map(|i| format!("line {i} \"quoted\" é\r\n").into_bytes())
        .collect();
    let t = Instant::now();
    while writer.meta.bytes <= 12 * 1024 * 1024 {
        writer.output(t, &line);
        if writer.pending_bytes() >= CHUNK_BYTES {
            writer.flush().await.unwrap();
        }
    }
    writer.finish(Ending::default()).await.unwrap();
    assert!(matches!(
        recordings.fetch(&alice(), &id).await,
        Err(DomainError::RecordingTooLarge { .. })
    ));

    let mut whole = Vec::new();
    let mut from = 0;
    let mut windows = 0;
    loop {
        let window = recordings.fetch_window(&alice(), &id, from).await.unwrap();
        assert!(window.cast.len() <= MAX_FETCH_BYTES);
        whole.extend_from_slice(&window.cast);
        windows += 1;
        match window.next {
            Some(next) => from = next,
            None => break,
        }
    }
    assert!(windows >= 3, "{windows} windows");
    let replayed = cast::replay_output(&whole).unwrap();
    assert_eq!(replayed.len() as u64, writer.meta.bytes);
    assert!(
        replayed
            .chunks(line.len())
            .all(|piece| piece == line.as_slice())
    );
    let err = recordings
        .fetch_window(&alice(), &id, writer.next_index)
        .await
        .unwrap_err();
    assert!(matches!(err, DomainError::Invalid(_)), "{err}");
}
