//! The source trait: where raw objects come from.

use std::future::Future;

use crate::batch::ObjectMeta;

/// An inclusive range of UTC delivery days.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DayRange {
    pub start: jiff::civil::Date,
    pub end: jiff::civil::Date,
}

impl DayRange {
    /// Every day of the range in order.
    pub fn days(&self) -> impl Iterator<Item = jiff::civil::Date> + use<> {
        let end = self.end;
        std::iter::successors(Some(self.start), |d| d.tomorrow().ok())
            .take_while(move |d| *d <= end)
    }
    /// The key prefix of a day: `events/YYYY/MM/DD/`.
    pub fn prefix(day: jiff::civil::Date) -> String {
        format!(
            "events/{:04}/{:02}/{:02}/",
            day.year(),
            day.month(),
            day.day()
        )
    }
}

/// A place that holds DPL objects in the `events/YYYY/MM/DD/` layout.
///
/// The pipeline calls [`Source::list`] once at the start of a run, then
/// [`Source::fetch`] for each object it has not loaded before, several at a time. An `Err`
/// from either stops the run (after the source's own retries); nothing is committed.
pub trait Source: Send + Sync + 'static {
    type Error: std::error::Error + Send + Sync + 'static;

    /// Every object under the day prefixes of `range`, sorted by key (byte order).
    fn list(
        &self,
        range: DayRange,
    ) -> impl Future<Output = Result<Vec<ObjectMeta>, Self::Error>> + Send;

    /// The whole object, as stored (compressed or not).
    fn fetch(
        &self,
        object: &ObjectMeta,
    ) -> impl Future<Output = Result<bytes::Bytes, Self::Error>> + Send;
}
