//! Tailor's evaluation engine: the one place that buckets users and matches rules.
//!
//! The server (preview, OFREP, dashboard) and the SDK both call this crate; nothing else
//! evaluates. It is synchronous and does no I/O.
//!
//! # Layout
//! - [`model`]: the config document (segments, flags, rules, experiments, layers) as serde data.
//! - [`compile()`](compile::compile): validates a document, reporting every problem with its
//!   path, and builds a [`Snapshot`]. The only fallible step.
//! - `targeting`: conditions pre-parsed into fast forms, matched against a [`User`].
//! - [`bucketing`]: the murmur3 bucketing contract (DESIGN §3), splits, coverage, holdouts, layers.
//! - [`assign()`](evaluation::assign): pure, infallible, allocation-free evaluation.
//! - [`context`]: OpenFeature evaluation contexts as user attributes (dotted names).
//! - [`user`]: the user key and typed attributes.
//! - [`traits`]: computed traits, the contract from a user's events to values "as of now".
//! - [`profile`]: a user's trait values and large-list memberships, which evaluation reads.
//! - [`events`]: the exposure and conversion wire format shared by the SDK and the collector.
//! - [`error`]: [`ConfigError`], a list of [`Problem`]s with paths.
//! - [`key_rule`]: what a new segment, flag, variant, experiment or layer key may look like.
//! - [`yaml_out`]: YAML output that quotes what YAML 1.1 readers would take for booleans or numbers.
//! - [`nesting`]: the nesting limit every config text is checked against before it is parsed.
//!
//! # Example
//! ```
//! use tailor_core::{assign, compile, ConfigDocument, Reason, User};
//!
//! let doc = ConfigDocument::from_yaml(r#"
//! segments:
//!   - key: beginners
//!     conditions: {attribute: lifecycle, op: eq, values: [new]}
//! experiments:
//!   - {key: homepage-personalization, status: running}
//! flags:
//!   - key: homepage
//!     type: string
//!     variants:
//!       - {key: generic, value: "Welcome back"}
//!       - {key: beginner-onboarding, value: "Start here"}
//!     default_variant: generic
//!     rules:
//!       - when: {segment: beginners}
//!         variant: beginner-onboarding
//!         holdout: {basis_points: 1000}
//!         experiment: homepage-personalization
//! "#).unwrap();
//! let snapshot = compile(doc).unwrap();
//! let user = User::new("user-1").with("lifecycle", "new");
//! let a = assign(&snapshot, &user, "homepage");
//! assert_eq!(a.segment, Some("beginners"));
//! assert_eq!(a.experiment, Some("homepage-personalization"));
//! assert!(matches!(a.reason, Reason::Rule { rule: 0 } | Reason::Holdout { rule: 0, .. }));
//! ```
#![deny(missing_docs)]
#![forbid(unsafe_code)]

pub mod bucketing;
pub mod changes;
pub mod compile;
pub mod context;
pub mod error;
pub mod evaluation;
pub mod events;
pub mod key_rule;
pub mod model;
pub mod nesting;
pub mod partition;
pub mod profile;
pub mod snapshot;
mod targeting;
pub mod traits;
pub mod user;
pub mod yaml_out;

pub use compile::compile;
pub use error::{ConfigError, Problem};
pub use evaluation::{
    assign, assign_lazy, assign_with_profile, Assignment, OpenFeatureReason, Reason, VariantRef,
};
pub use model::{ConfigDocument, ParseError, SerializeError};
pub use profile::Profile;
pub use snapshot::Snapshot;
pub use traits::TraitValue;
pub use user::{AttributeList, AttributeRef, AttributeValue, User};
