//! The communication model a run is explained against: Hockney's
//! T(n) = alpha + n beta per message, one fit per *placement* (the path
//! between two hosts, or shared memory inside one), fitted by `hpcmap bench
//! pingpong` and saved keyed by hostnames so that a fit is only ever used
//! for the hosts it was measured on.
//!
//! * [`hockney`]: the model of one path and its fit to a ping-pong sweep
//!   (bandwidth from the largest sizes, latency from the smallest);
//! * [`models`]: the saved fits, keyed by [`Link`], in one file per user
//!   (shared by a cluster's nodes through `$HOME`);
//! * [`predict`]: a run's communication, each byte charged to the link it
//!   crossed; a run that used a link without a fit is told so, not
//!   explained with another link's fit.

pub mod hockney;
pub mod models;
pub mod predict;

pub use hockney::{Hockney, Sample};
pub use models::{Fit, Link, Models};
pub use predict::{LinkUse, MapShape, Verdict, explain};
