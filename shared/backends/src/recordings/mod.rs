//! The two `domain::recording::RecordingStore` implementations: files under
//! `DATA_DIR/recordings` (always built) and an S3 bucket (`s3` feature, `RECORDINGS_BUCKET`).
//! The layout, the sealing and the reading rules live in the domain; these only move bytes.

pub mod local;
#[cfg(feature = "s3")]
pub mod s3;

use std::sync::Arc;

use domain::config::{Config, ConfigError};
use domain::keys::KeyProvider;
use domain::recording::{RecordingStore, Recordings};

pub use local::LocalRecordings;

/// The recording service for this configuration, over the process's key provider.
pub async fn wire(
    config: &Config,
    keys: Arc<dyn KeyProvider>,
) -> Result<Arc<Recordings>, ConfigError> {
    let store: Arc<dyn RecordingStore> = match &config.recordings_bucket {
        Some(bucket) => s3_store(bucket).await?,
        None => Arc::new(LocalRecordings::new(config.data_dir.clone())),
    };
    let recordings = Recordings::new(store, keys, config.recording);
    tracing::info!(recordings = %recordings.describe(), "recording storage selected");
    Ok(Arc::new(recordings))
}

#[cfg(feature = "s3")]
async fn s3_store(bucket: &str) -> Result<Arc<dyn RecordingStore>, ConfigError> {
    let sdk = crate::aws::load_sdk_config().await;
    Ok(Arc::new(s3::S3Recordings::new(&sdk, bucket.to_owned())))
}

#[cfg(not(feature = "s3"))]
async fn s3_store(_bucket: &str) -> Result<Arc<dyn RecordingStore>, ConfigError> {
    Err(ConfigError(
        "this build has no S3 support; unset RECORDINGS_BUCKET".to_owned(),
    ))
}
