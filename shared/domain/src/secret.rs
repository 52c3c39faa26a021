//! Plaintext machine credentials while they are in memory, and their byte encoding inside the
//! vault.
//!
//! Every field is a `SecretString`: no `Debug`/`Display` shows it and it is zeroized on drop, so
//! logging one is a compile error rather than a review comment. The encoding is a tiny
//! length-prefixed format rather than JSON because `secrecy` (rightly) refuses to serialise a
//! secret through serde, and because the buffer it produces is itself `Zeroizing`.

use secrecy::{ExposeSecret, SecretString};
use zeroize::Zeroizing;

/// The credentials the relay needs to log in to a machine.
#[derive(Default)]
pub struct MachineSecrets {
    pub password: Option<SecretString>,
    pub private_key: Option<SecretString>,
    pub passphrase: Option<SecretString>,
}

impl std::fmt::Debug for MachineSecrets {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MachineSecrets")
            .field("password", &self.password.as_ref().map(|_| "<redacted>"))
            .field(
                "private_key",
                &self.private_key.as_ref().map(|_| "<redacted>"),
            )
            .field(
                "passphrase",
                &self.passphrase.as_ref().map(|_| "<redacted>"),
            )
            .finish()
    }
}

#[derive(Debug, thiserror::Error)]
#[error("sealed secrets have an invalid encoding")]
pub struct EncodingError;

const VERSION: u8 = 1;

impl MachineSecrets {
    /// `version, then for each field: present(0|1), u32 big-endian length, utf-8 bytes`.
    pub fn encode(&self) -> Zeroizing<Vec<u8>> {
        let mut out = Zeroizing::new(Vec::with_capacity(
            1 + self
                .fields()
                .map(|f| 5 + f.map_or(0, str::len))
                .sum::<usize>(),
        ));
        out.push(VERSION);
        for field in self.fields() {
            match field {
                None => out.push(0),
                Some(value) => {
                    out.push(1);
                    let len = u32::try_from(value.len()).unwrap_or(u32::MAX);
                    out.extend_from_slice(&len.to_be_bytes());
                    out.extend_from_slice(value.as_bytes());
                }
            }
        }
        out
    }

    pub fn decode(bytes: &[u8]) -> Result<Self, EncodingError> {
        let mut reader = Reader(bytes);
        if reader.byte()? != VERSION {
            return Err(EncodingError);
        }
        let secrets = Self {
            password: reader.field()?,
            private_key: reader.field()?,
            passphrase: reader.field()?,
        };
        if reader.0.is_empty() {
            Ok(secrets)
        } else {
            Err(EncodingError)
        }
    }

    fn fields(&self) -> impl Iterator<Item = Option<&str>> {
        [&self.password, &self.private_key, &self.passphrase]
            .into_iter()
            .map(|field| field.as_ref().map(|s| s.expose_secret()))
    }
}

struct Reader<'a>(&'a [u8]);

impl Reader<'_> {
    fn take(&mut self, n: usize) -> Result<&[u8], EncodingError> {
        if self.0.len() < n {
            return Err(EncodingError);
        }
        let (head, tail) = self.0.split_at(n);
        self.0 = tail;
        Ok(head)
    }

    fn byte(&mut self) -> Result<u8, EncodingError> {
        self.take(1)?.first().copied().ok_or(EncodingError)
    }

    fn field(&mut self) -> Result<Option<SecretString>, EncodingError> {
        match self.byte()? {
            0 => Ok(None),
            1 => {
                let len_bytes: [u8; 4] = self.take(4)?.try_into().map_err(|_| EncodingError)?;
                let len = u32::from_be_bytes(len_bytes) as usize;
                let value = std::str::from_utf8(self.take(len)?).map_err(|_| EncodingError)?;
                Ok(Some(SecretString::from(value.to_owned())))
            }
            _ => Err(EncodingError),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_every_combination_of_fields() {
        let secrets = MachineSecrets {
            password: Some("pässword".to_owned().into()),
            private_key: None,
            passphrase: Some(String::new().into()),
        };
        let decoded = MachineSecrets::decode(&secrets.encode()).unwrap();
        assert_eq!(decoded.password.unwrap().expose_secret(), "pässword");
        assert!(decoded.private_key.is_none());
        assert_eq!(decoded.passphrase.unwrap().expose_secret(), "");
    }

    #[test]
    fn truncated_or_padded_encodings_are_rejected() {
        let encoded = MachineSecrets {
            password: Some("pw".to_owned().into()),
            ..Default::default()
        }
        .encode();
        assert!(MachineSecrets::decode(&encoded[..encoded.len() - 1]).is_err());
        let mut padded = encoded.to_vec();
        padded.push(0);
        assert!(MachineSecrets::decode(&padded).is_err());
    }

    #[test]
    fn debug_never_shows_a_secret() {
        let secrets = MachineSecrets {
            password: Some("hunter2".to_owned().into()),
            ..Default::default()
        };
        assert!(!format!("{secrets:?}").contains("hunter2"));
    }
}
