//! The request lifecycle: received → identity_unverified → verified →
//! in_progress → completed, or rejected (with a reason), or failed
//! (resumable). Deadlines per Art. 12(3).

mod decisions;
mod execution;
mod filing;
mod model;
mod store;
mod verification;

pub use decisions::{extend, reject};
pub use execution::{fail, start};
pub use filing::{create, create_by_subject};
pub use model::{Kind, Request, COMPLETED, VERIFIED};
pub use store::{get, get_for_subject, list, list_for_subject};
pub use verification::{send_code, verify};
