//! Who a request acts for. The domain only ever sees an identity that the edge has already
//! verified (a JWT, a sign-in session, a relay-to-relay proof); it never parses credentials.

/// The authenticated caller: the `owner_id` of their machines and vault.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Identity(pub String);

impl Identity {
    pub fn as_str(&self) -> &str {
        &self.0
    }
}
