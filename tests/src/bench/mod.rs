//! Pieces of `scripts/bench`: what a process costs (`measure`), load
//! generators driven as external tools (`load`), and figures (`report`).

pub mod load;
pub mod measure;
pub mod report;
