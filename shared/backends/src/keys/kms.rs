//! AWS KMS key provider: `GenerateDataKey` at create, `Decrypt` at connect, both with the
//! machine's encryption context so the key policy can (and the `infra/` template does) bind use
//! of the key to it, and so a wrapped key copied to another item fails to decrypt.

use std::collections::HashMap;

use async_trait::async_trait;
use aws_sdk_kms::Client;
use aws_sdk_kms::primitives::Blob;
use aws_sdk_kms::types::DataKeySpec;
use zeroize::Zeroizing;

use crate::aws::{AwsFailure, classify};
use domain::keys::{DataKey, EncryptionContext, KeyError, KeyProvider};

pub struct KmsKeys {
    client: Client,
    key_id: String,
}

impl KmsKeys {
    pub fn new(config: &aws_config::SdkConfig, key_id: String) -> Self {
        Self {
            client: Client::new(config),
            key_id,
        }
    }
}

fn context_map(context: &EncryptionContext) -> HashMap<String, String> {
    context
        .pairs()
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect()
}

fn key_error(failure: AwsFailure) -> KeyError {
    match failure {
        AwsFailure::Unavailable(detail) => KeyError::Unavailable(detail),
        AwsFailure::Service { code, message } => KeyError::Denied(format!("{code}: {message}")),
    }
}

fn to_key(bytes: &[u8]) -> Result<Zeroizing<[u8; 32]>, KeyError> {
    let key: [u8; 32] = bytes
        .try_into()
        .map_err(|_| KeyError::Denied("KMS returned a data key that is not 256 bits".to_owned()))?;
    Ok(Zeroizing::new(key))
}

#[async_trait]
impl KeyProvider for KmsKeys {
    async fn generate_data_key(&self, context: &EncryptionContext) -> Result<DataKey, KeyError> {
        let output = self
            .client
            .generate_data_key()
            .key_id(&self.key_id)
            .key_spec(DataKeySpec::Aes256)
            .set_encryption_context(Some(context_map(context)))
            .send()
            .await
            .map_err(|err| key_error(classify(&err)))?;
        let missing = || KeyError::Denied("GenerateDataKey returned no key".to_owned());
        // The SDK's `Blob` is not zeroized; take our copy and let the response drop promptly.
        let plaintext = to_key(output.plaintext().ok_or_else(missing)?.as_ref())?;
        let wrapped = output
            .ciphertext_blob()
            .ok_or_else(missing)?
            .as_ref()
            .to_vec();
        Ok(DataKey { plaintext, wrapped })
    }

    async fn decrypt_data_key(
        &self,
        wrapped: &[u8],
        context: &EncryptionContext,
    ) -> Result<Zeroizing<[u8; 32]>, KeyError> {
        let output = self
            .client
            .decrypt()
            .key_id(&self.key_id)
            .ciphertext_blob(Blob::new(wrapped.to_vec()))
            .set_encryption_context(Some(context_map(context)))
            .send()
            .await
            .map_err(|err| key_error(classify(&err)))?;
        let plaintext = output
            .plaintext()
            .ok_or_else(|| KeyError::Denied("Decrypt returned no plaintext".to_owned()))?;
        to_key(plaintext.as_ref())
    }

    fn describe(&self) -> String {
        format!("AWS KMS key {}", self.key_id)
    }
}
