//! End-to-end tests: the real `dpl` binary on generated files, loaded into the real
//! PostgreSQL. One test binary; each test uses its own temp dir and schema.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod crash;
mod files_sink;
mod runs;
mod secrets;
