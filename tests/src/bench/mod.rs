//! Pieces of `scripts/bench`: what a process costs (`measure`), load
//! generators driven as external tools (`load`), the native-Envoy reference
//! (`native`), tokens and admin calls for the propagation figures (`token`,
//! `admin`), Envoy's instruction count under callgrind (`instructions`) and
//! figures (`report`).

pub mod accuracy;
pub mod admin;
pub mod instructions;
pub mod load;
pub mod measure;
pub mod native;
pub mod propagation;
pub mod report;
pub mod token;
pub mod wasm_instructions;
pub mod wasm_profile;
