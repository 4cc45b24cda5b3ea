//! Row buffers: rows are appended per table and handed out in batches of `batch_rows`.

use std::collections::BTreeMap;

use dpl_core::{RowBatch, Table, Value};

use crate::derive::Key;
use crate::session::Scratch;

/// Per-table row buffers and row counts, with the scratch state of row building.
pub(crate) struct Emitter {
    bufs: Vec<RowBatch>,
    batch_rows: usize,
    pub(crate) rows: BTreeMap<Table, u64>,
    /// Scratch space of session building (key cache, index lists), reused across sessions.
    pub(crate) scratch: Scratch,
    /// The withdrawable keys of the rows of the session just built (see `build_session`).
    pub(crate) keys: Vec<(Table, Key)>,
}

impl Emitter {
    pub(crate) fn new(widths: impl Fn(Table) -> usize, batch_rows: usize) -> Emitter {
        Emitter {
            bufs: Table::ALL
                .iter()
                .map(|&t| RowBatch::new(t, widths(t)))
                .collect(),
            batch_rows: batch_rows.max(1),
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
        let Some(buf) = self.bufs.get_mut(table as usize) else {
            return;
        };
        if buf.values.capacity() == 0 {
            // One allocation per batch instead of a series of doublings and copies.
            buf.values.reserve_exact(buf.width * self.batch_rows);
        }
        build(&mut buf.values);
        *self.rows.entry(table).or_default() += 1;
        if buf.len() >= self.batch_rows {
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
