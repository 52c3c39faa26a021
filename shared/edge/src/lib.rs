//! The one HTTP edge every binary (the API function, the relay, the local `sushi`) serves
//! through: the response envelope, [`ApiError`] with its codes and the single mapping from
//! domain errors, JWT/JWKS authentication, extractors, the tower layers, the cross-site and Host guards
//! ([`site`]), and [`serve::serve`].
//!
//! It depends on the domain (to map its errors and hand it validated requests), never the
//! other way round, and on no backend: a binary wires backends and hands the edge a router.

pub mod auth;
pub mod envelope;
pub mod error;
pub mod extract;
pub mod forwarded;
pub mod layers;
pub mod metrics;
#[cfg(feature = "otlp")]
pub mod otlp;
pub mod serve;
pub mod site;
pub mod telemetry;
pub mod tls;

pub use envelope::Reply;
pub use error::{ApiError, ErrorCode};
