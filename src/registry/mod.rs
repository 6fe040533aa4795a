//! OCI registry access for compatibility artifacts: resolve, referrers, fetch/attach/remove.
//!
//! Covers references, the Referrers API and the tag schema fallback, auth (docker config,
//! helpers, tokens), TLS/plain HTTP per host and containerd hosts.toml mirrors.
//!
//! Decisions (see also each item's docs):
//! - An image's artifacts are looked up on its platform manifest and on its index. The platform
//!   manifest's newest artifact wins over any on the index: it is the more specific statement,
//!   the index's is the default for every platform (`artifact::rank`).
//! - Newest means the latest `org.opencontainers.image.created` (RFC 3339); missing or invalid
//!   counts as oldest, as in NFD; ties go to the highest digest so the choice is stable.
//! - `Ok(None)` from `fetch_spec` means "no compatibility artifact"; everything else that goes
//!   wrong is an `Err` whose `kind()` a failure policy can match.
//! - Every manifest and blob read is digest-checked and size-capped before and while reading.
//! - Without a Referrers API the client reads and writes the `<alg>-<hex>` tag schema index
//!   itself; an index left empty by a removal is deleted (like oras), not pushed empty.
//!
//! Built on reqwest plus oci-client's types and reference parser; `transport` says why not on
//! oci-client's HTTP client.
//!
//! ```no_run
//! # async fn demo() -> Result<(), image_compat::registry::RegistryError> {
//! use image_compat::registry::{Client, ErrorKind, Platform, Reference, RegistryConfig};
//! let client = Client::new(RegistryConfig::default())?;
//! let image = Reference::parse("ghcr.io/org/app:1.0")?;
//! match client.fetch_spec(&image, &Platform::host()).await {
//!     Ok(Some(spec)) => println!("{} bytes from {}", spec.bytes.len(), spec.artifact.digest),
//!     Ok(None) => println!("no compatibility artifact"),
//!     Err(e) if e.kind() == ErrorKind::Timeout => println!("registry too slow: {e}"),
//!     Err(e) => return Err(e),
//! }
//! # Ok(()) }
//! ```

mod artifact;
mod auth;
mod client;
mod config;
pub mod decoders;
mod error;
mod hosts;
pub mod media;
mod ops;
mod platform;
mod reference;
mod transport;

pub use artifact::{ArtifactInfo, Descriptor, Discovery, ResolvedImage, SubjectKind};
pub use client::{AttachOptions, Attached, Client, FetchedSpec, RemoveWhich};
pub use config::{
    ConfigError, Credentials, RegistryConfig, DEFAULT_MAX_MANIFEST_BYTES, DEFAULT_MAX_SPEC_BYTES,
};
pub use error::{ContentCheck, ErrorKind, RegistryError, RegistryErrorCode, RegistrySaid};
pub use platform::{Platform, PlatformError};
pub use reference::{Algorithm, Digest, Reference, ReferenceError};
