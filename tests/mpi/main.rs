//! Integration tests: the real `hpcmap` binary and examples under real `mpirun`.
//!
//! Each job runs under `timeout`, so a hang fails the test instead of the suite.
//! Answers and checksums are compared with serial computations in this process
//! (through the library's workload types, without MPI) and with known values.

mod errors;
mod examples;
mod exec;
mod follow;
mod hardening;
mod resume;
mod util;
mod workloads;
