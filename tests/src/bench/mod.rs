//! Pieces of `scripts/bench`: its options (`options`), the configurations
//! under test (`variants`; the auth plugin verifying every token, per
//! algorithm, in `auth_variants`), one module per figure (`figure`), the
//! report's tables and notes (`report`) and its heading and files
//! (`writer`); under
//! them, what a process costs (`measure`), load generators driven as
//! external tools (`load`), the native-Envoy reference (`native`), tokens
//! and admin calls for the propagation figures (`token`, `admin`), Envoy's
//! instruction count under callgrind (`instructions`), the Wasm profiles
//! (`wasm_profile`, `wasm_instructions`) and the measurements behind the
//! accuracy and propagation figures (`accuracy`, `propagation`).

pub mod accuracy;
pub mod admin;
pub mod auth_variants;
pub mod cache;
pub mod figure;
pub mod instructions;
pub mod load;
pub mod measure;
pub mod native;
pub mod options;
pub mod propagation;
pub mod report;
pub mod token;
pub mod variants;
pub mod wasm_instructions;
pub mod wasm_profile;
pub mod writer;
