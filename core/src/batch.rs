//! What crosses the channels between stages.

use std::sync::Arc;

use crate::event::Event;
use crate::field::FIELD_COUNT;
use crate::table::Table;
use crate::value::Value;

/// An object listed by a source.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ObjectMeta {
    /// Key relative to the source root, always `events/YYYY/MM/DD/...` with `/` separators.
    pub key: String,
    pub size: u64,
    /// S3 ETag, or for local files a fingerprint of size and modification time.
    pub etag: String,
}

/// One whole object's bytes, as read (gzip or plain), from the source to the decoders.
#[derive(Clone, Debug)]
pub struct RawObject {
    /// Run-wide index of the object; objects are numbered in key order.
    pub id: u32,
    pub key: Arc<str>,
    pub bytes: bytes::Bytes,
}

/// Why a line was rejected (SPEC.md section 2). `as_str` is the `reason` label.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ErrorReason {
    InvalidUtf8,
    InvalidJson,
    NotAnObject,
    MissingAction,
    MissingRequiredField,
    UnparseableRequiredField,
    /// The gzip stream of the object is corrupt or truncated: the bytes after the last
    /// complete line could not be read.
    CorruptGzip,
}

impl ErrorReason {
    pub const ALL: [ErrorReason; 7] = [
        ErrorReason::InvalidUtf8,
        ErrorReason::InvalidJson,
        ErrorReason::NotAnObject,
        ErrorReason::MissingAction,
        ErrorReason::MissingRequiredField,
        ErrorReason::UnparseableRequiredField,
        ErrorReason::CorruptGzip,
    ];
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorReason::InvalidUtf8 => "invalid_utf8",
            ErrorReason::InvalidJson => "invalid_json",
            ErrorReason::NotAnObject => "not_an_object",
            ErrorReason::MissingAction => "missing_action",
            ErrorReason::MissingRequiredField => "missing_required_field",
            ErrorReason::UnparseableRequiredField => "unparseable_required_field",
            ErrorReason::CorruptGzip => "corrupt_gzip",
        }
    }
}

/// A rejected line: one row of `parsely_errors`.
#[derive(Clone, Debug, PartialEq)]
pub struct ErrorRow {
    pub source_object: Arc<str>,
    pub line: u64,
    pub reason: ErrorReason,
    /// Human detail appended to the reason in the `reason` column (for example the field).
    pub detail: Option<String>,
    pub event_id: Option<String>,
    pub action: Option<String>,
    /// The line, invalid UTF-8 replaced, cut at 65,536 bytes on a character boundary.
    pub raw: String,
}

/// Counters the decoder keeps per batch; the binary sums them for the run summary.
#[derive(Clone, Debug, PartialEq)]
pub struct DecodeStats {
    /// Lines read, blank lines included.
    pub lines: u64,
    /// Decompressed bytes.
    pub bytes: u64,
    /// Events by class, indexed like [`crate::Class`] declaration order.
    pub events: [u64; 6],
    /// Custom events whose action is not in `custom_actions`: counted and dropped.
    pub unlisted_custom: u64,
    /// Optional fields whose value could not be parsed and became null, per field.
    pub coerced: [u32; FIELD_COUNT],
}

impl Default for DecodeStats {
    fn default() -> Self {
        DecodeStats {
            lines: 0,
            bytes: 0,
            events: [0; 6],
            unlisted_custom: 0,
            coerced: [0; FIELD_COUNT],
        }
    }
}

impl DecodeStats {
    pub fn add(&mut self, other: &DecodeStats) {
        self.lines += other.lines;
        self.bytes += other.bytes;
        for (a, b) in self.events.iter_mut().zip(other.events) {
            *a += b;
        }
        self.unlisted_custom += other.unlisted_custom;
        for (a, b) in self.coerced.iter_mut().zip(other.coerced) {
            *a += b;
        }
    }
}

/// Decoded lines of one object, from a decoder to the sessionizer.
///
/// An object is decoded into batches `seq = 0, 1, ...`; the one with `last` set closes the
/// object. Decoders run in parallel, so batches may arrive out of order: `(object, seq)`
/// lets the receiver restore arrival order.
#[derive(Clone, Debug)]
pub struct DecodedBatch {
    pub object: u32,
    pub seq: u32,
    pub last: bool,
    pub events: Vec<Event>,
    pub errors: Vec<ErrorRow>,
    pub stats: DecodeStats,
}

/// Rows of one table, flat: `values.len()` is a multiple of `width`.
///
/// A batch either carries rows to insert or replace (`withdraw == false`, `width` = the
/// table's column count), or primary keys of rows that an earlier run loaded and that no
/// longer exist (`withdraw == true`, `width` = the primary key's column count, in
/// [`Table::primary_key`] order): a session emitted while still open whose key changed
/// when later events bridged it with another session or moved its start, or an orphan row
/// whose pageview arrived later. Sinks delete withdrawn keys in the same transaction,
/// before the run's rows replace theirs.
#[derive(Clone, Debug, PartialEq)]
pub struct RowBatch {
    pub table: Table,
    pub width: usize,
    pub values: Vec<Value>,
    pub withdraw: bool,
}

impl RowBatch {
    /// An empty batch of rows.
    pub fn new(table: Table, width: usize) -> RowBatch {
        RowBatch {
            table,
            width,
            values: Vec::new(),
            withdraw: false,
        }
    }
    /// An empty batch of withdrawn primary keys of `table`.
    pub fn withdrawals(table: Table) -> RowBatch {
        RowBatch {
            table,
            width: table.primary_key().len(),
            values: Vec::new(),
            withdraw: true,
        }
    }
    pub fn len(&self) -> usize {
        self.values.len().checked_div(self.width).unwrap_or(0)
    }
    pub fn is_empty(&self) -> bool {
        self.values.is_empty()
    }
    /// The rows as slices of `width` values.
    pub fn rows(&self) -> std::slice::Chunks<'_, Value> {
        self.values.chunks(self.width.max(1))
    }
}
