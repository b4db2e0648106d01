//! Feature flags: flagd-compatible bucketing, targeting rules, evaluation of
//! the `meshguard-api` flag model, and import of flagd definitions.
//!
//! Order of evaluation for one flag: a disabled flag gives its default
//! variant; otherwise the first matching rule decides; otherwise a subject
//! inside `percentage` is placed by `weights` (or gets the default variant
//! when there are none); everyone else gets the default variant. Bucketing
//! input is `salt` (default: the flag key) followed by the targeting key.

pub mod bucket;
pub mod eval;
pub mod flagd;

pub use eval::{Attribute, Evaluation, Flag, FlagSet, Reason, Rejected, Subject};
pub use flagd::{import as import_flagd, ImportError, ImportOptions};
pub use meshguard_api::flags::FlagDefinition;

#[cfg(test)]
mod tests;
