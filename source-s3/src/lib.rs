//! Sources of DPL objects: the `local` directory source, the `s3` source ([`S3Source`]:
//! paginated listing, retries with backoff, resumable bodies), and the stage that fetches
//! objects with bounded concurrency and hands them to the decoders in key order.
//!
//! A source lists the objects under the `events/YYYY/MM/DD/` prefixes of a day range and
//! fetches whole objects as stored (gzip or plain). It does not decompress or parse (that is
//! `dpl-decode`) and does not decide which objects were loaded before (the ledger in the
//! sink says so; the binary filters the list).
//!
//! ```no_run
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! use dpl_core::{DayRange, Source};
//! let source = dpl_source::LocalSource::new("dpl-demo/data")?;
//! let range = DayRange { start: jiff::civil::date(2026, 11, 1), end: jiff::civil::date(2026, 11, 3) };
//! let objects = source.list(range).await?;
//! # Ok(()) }
//! ```

mod error;
mod local;
mod s3;
mod stage;

pub use error::Error;
pub use local::LocalSource;
pub use s3::{S3Config, S3Source};
pub use stage::{ReadError, read_objects};
