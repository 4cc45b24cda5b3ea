//! Row buffers: rows are appended per table and handed out in batches of `batch_rows`, fewer
//! for a wide table (see [`BATCH_BYTES`]).

use std::collections::BTreeMap;

use dpl_core::{RowBatch, Table, Value};

use crate::derive::Key;
use crate::session::Scratch;

/// The most bytes of values in one batch. The allocator (mimalloc) serves a block up to
/// 512 KiB from pages it keeps; a bigger one it maps for the block alone and gives back to
/// the system soon after it is freed (by the sink, once written), so every batch would
/// fault in and zero its pages anew: a quarter of the sessionizer's time in `dpl bench`
/// with 2,048 page view rows (7 MB) per batch. Page view and video view batches are about
/// 120 rows under this bound.
pub(crate) const BATCH_BYTES: usize = 448 << 10;

/// Per-table row buffers and row counts, with the scratch state of row building.
pub(crate) struct Emitter {
    bufs: Vec<RowBatch>,
    /// Rows per batch, by table: `batch_rows`, or fewer to stay within [`BATCH_BYTES`].
    batch_rows: Vec<usize>,
    pub(crate) rows: BTreeMap<Table, u64>,
    /// Scratch space of session building (key cache, index lists), reused across sessions.
    pub(crate) scratch: Scratch,
    /// The withdrawable keys of the rows of the session just built (see `build_session`).
    pub(crate) keys: Vec<(Table, Key)>,
}

impl Emitter {
    pub(crate) fn new(widths: impl Fn(Table) -> usize, batch_rows: usize) -> Emitter {
        let bufs: Vec<RowBatch> = Table::ALL
            .iter()
            .map(|&t| RowBatch::new(t, widths(t)))
            .collect();
        let row_bytes = |b: &RowBatch| b.width.max(1) * std::mem::size_of::<Value>();
        Emitter {
            batch_rows: bufs
                .iter()
                .map(|b| batch_rows.min(BATCH_BYTES / row_bytes(b)).max(1))
                .collect(),
            bufs,
            rows: BTreeMap::new(),
            scratch: Scratch::default(),
            keys: Vec::new(),
        }
    }

    /// Appends one row built by `build`; hands the table's batch to `out` once full.
    pub(crate) fn row(
        &mut self,
        table: Table,
        out: &mut dyn FnMut(RowBatch),
        build: impl FnOnce(&mut Vec<Value>),
    ) {
        let (Some(buf), Some(&batch_rows)) = (
            self.bufs.get_mut(table as usize),
            self.batch_rows.get(table as usize),
        ) else {
            return;
        };
        if buf.values.capacity() == 0 {
            // One allocation per batch instead of a series of doublings and copies.
            buf.values.reserve_exact(buf.width * batch_rows);
        }
        build(&mut buf.values);
        *self.rows.entry(table).or_default() += 1;
        if buf.len() >= batch_rows {
            let full = std::mem::replace(buf, RowBatch::new(table, buf.width));
            out(full);
        }
    }

    /// Hands every non-empty buffer to `out`, in table order.
    pub(crate) fn flush(&mut self, out: &mut dyn FnMut(RowBatch)) {
        for buf in &mut self.bufs {
            if !buf.is_empty() {
                let full = std::mem::replace(buf, RowBatch::new(buf.table, buf.width));
                out(full);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_wide_table_s_batches_stay_within_the_byte_bound() {
        let width = |t| if t == Table::Pageviews { 150 } else { 10 };
        let mut em = Emitter::new(width, 2048);
        let mut out = Vec::new();
        for _ in 0..1000 {
            for t in [Table::Pageviews, Table::Users] {
                em.row(t, &mut |b| out.push(b), |buf| {
                    buf.extend(std::iter::repeat_n(Value::Int(1), width(t)));
                });
            }
        }
        em.flush(&mut |b| out.push(b));
        let rows = |t| -> Vec<usize> {
            out.iter()
                .filter(|b| b.table == t)
                .map(RowBatch::len)
                .collect()
        };
        let per_batch = BATCH_BYTES / (150 * std::mem::size_of::<Value>());
        let pageviews = rows(Table::Pageviews);
        assert_eq!(pageviews.iter().sum::<usize>(), 1000);
        assert!(pageviews.iter().all(|&n| n <= per_batch), "{pageviews:?}");
        assert_eq!(pageviews.len(), 1000usize.div_ceil(per_batch));
        for b in out.iter().filter(|b| b.table == Table::Pageviews) {
            assert!(b.values.capacity() * std::mem::size_of::<Value>() <= BATCH_BYTES);
        }
        // A narrow table keeps `batch_rows` (here all 1,000 rows fit in one batch).
        assert_eq!(rows(Table::Users), vec![1000]);
    }
}
