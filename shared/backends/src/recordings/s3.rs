//! Recordings in an S3 bucket, one object per name (see `domain::recording` for the layout).
//!
//! Not multipart: a multipart upload's parts cannot be read until it completes and must be at
//! least 5 MiB, so a relay that crashed mid-session would leave nothing readable; one small
//! object per sealed chunk is readable the moment its PUT returns. Encryption at rest is the
//! bucket's default (infra/template.yaml) on top of the recording's own sealing.
//!
//! With `AWS_ENDPOINT_URL` (or `AWS_ENDPOINT_URL_S3`) set, the client uses path-style
//! addresses (`http://host/bucket/key`), which is what moto and LocalStack serve; against AWS
//! itself the default virtual-hosted style is kept.

use async_trait::async_trait;
use aws_config::SdkConfig;
use aws_sdk_s3::Client;
use aws_sdk_s3::config::RequestChecksumCalculation;
use aws_sdk_s3::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{Delete, ObjectIdentifier};
use bytes::Bytes;
use domain::recording::{RecordingStore, StorageError};

pub struct S3Recordings {
    client: Client,
    bucket: String,
}

impl S3Recordings {
    pub fn new(sdk: &SdkConfig, bucket: String) -> Self {
        let local_endpoint = ["AWS_ENDPOINT_URL_S3", "AWS_ENDPOINT_URL"]
            .iter()
            .any(|name| std::env::var_os(name).is_some_and(|v| !v.is_empty()));
        let config = aws_sdk_s3::config::Builder::from(sdk)
            .force_path_style(local_endpoint)
            // Checksums only where S3 requires them (DeleteObjects): the chunk is sealed
            // with AES-GCM already, and S3-compatible test servers differ on the others.
            .request_checksum_calculation(RequestChecksumCalculation::WhenRequired)
            .build();
        Self {
            client: Client::from_conf(config),
            bucket,
        }
    }
}

fn failed<E, R>(what: &str, err: &SdkError<E, R>) -> StorageError
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
    R: std::fmt::Debug,
{
    match err {
        SdkError::ServiceError(service) => StorageError(format!(
            "S3 {what}: {} {}",
            service.err().code().unwrap_or("error"),
            service.err().message().unwrap_or_default()
        )),
        other => StorageError(format!("S3 {what}: {other}")),
    }
}

#[async_trait]
impl RecordingStore for S3Recordings {
    async fn put(&self, name: &str, body: Bytes) -> Result<(), StorageError> {
        self.client
            .put_object()
            .bucket(&self.bucket)
            .key(name)
            .body(ByteStream::from(body))
            .send()
            .await
            .map_err(|e| failed("PutObject", &e))?;
        Ok(())
    }

    async fn get(&self, name: &str) -> Result<Option<Vec<u8>>, StorageError> {
        let output = match self
            .client
            .get_object()
            .bucket(&self.bucket)
            .key(name)
            .send()
            .await
        {
            Ok(output) => output,
            Err(SdkError::ServiceError(service)) if service.err().is_no_such_key() => {
                return Ok(None);
            }
            Err(err) => return Err(failed("GetObject", &err)),
        };
        let body = output
            .body
            .collect()
            .await
            .map_err(|e| StorageError(format!("S3 GetObject body: {e}")))?;
        Ok(Some(body.into_bytes().to_vec()))
    }

    async fn list(&self, prefix: &str, limit: usize) -> Result<Vec<String>, StorageError> {
        let mut names = Vec::new();
        let mut token = None;
        while names.len() < limit {
            let page = self
                .client
                .list_objects_v2()
                .bucket(&self.bucket)
                .prefix(prefix)
                .max_keys(i32::try_from(limit - names.len()).unwrap_or(1000).min(1000))
                .set_continuation_token(token.take())
                .send()
                .await
                .map_err(|e| failed("ListObjectsV2", &e))?;
            names.extend(
                page.contents()
                    .iter()
                    .filter_map(|object| object.key().map(str::to_owned)),
            );
            match page.next_continuation_token() {
                Some(next) if page.is_truncated().unwrap_or(false) => token = Some(next.to_owned()),
                _ => break,
            }
        }
        names.truncate(limit);
        Ok(names)
    }

    async fn delete(&self, names: &[String]) -> Result<(), StorageError> {
        for batch in names.chunks(1000) {
            let objects = batch
                .iter()
                .map(|name| ObjectIdentifier::builder().key(name).build())
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| StorageError(e.to_string()))?;
            let delete = Delete::builder()
                .set_objects(Some(objects))
                .quiet(true)
                .build()
                .map_err(|e| StorageError(e.to_string()))?;
            let output = self
                .client
                .delete_objects()
                .bucket(&self.bucket)
                .delete(delete)
                .send()
                .await
                .map_err(|e| failed("DeleteObjects", &e))?;
            if let Some(error) = output.errors().first() {
                return Err(StorageError(format!(
                    "S3 DeleteObjects: {} {}",
                    error.code().unwrap_or("error"),
                    error.key().unwrap_or_default()
                )));
            }
        }
        Ok(())
    }

    fn describe(&self) -> String {
        format!("S3 bucket {}", self.bucket)
    }
}
