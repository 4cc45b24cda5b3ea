//! Shared types of the dpl pipeline: the decoded [`Event`], the output [`Table`]s and their
//! columns, the batches that cross the channels between stages, and the [`Source`] trait.
//!
//! This crate holds no stage logic: parsing lives in `dpl-decode`, sessions in
//! `dpl-sessionize`, loading in `dpl-sink`. Every stage depends on this crate and on no
//! other stage.
//!
//! ```
//! use dpl_core::{Schema, Table, Field};
//! let schema = Schema::default();
//! assert_eq!(Table::Pageviews.name(), "parsely_pageviews");
//! assert!(schema.index(Table::Pageviews, Field::EventId.name()).is_some());
//! ```

mod batch;
mod event;
mod field;
mod source;
mod table;
mod value;

pub use batch::{
    DecodeStats, DecodedBatch, ErrorReason, ErrorRow, ObjectMeta, RawObject, RowBatch,
};
pub use event::{Arrival, Class, Event, RecentBases, SHARE_MAX_OWN};
pub use field::{ALL_FIELDS, FIELD_COUNT, FIELDS, Field, FieldSpec, Kind, TZ_FIELDS};
pub use source::{DayRange, Source};
pub use table::{
    CAMPAIGN_COLUMNS, CONTENT_METADATA_FIELDS, CUSTOM_EVENT_COLUMNS, Column, ERROR_COLUMNS,
    EVENT_DATE_PARTS, EVENT_DERIVED, MAX_TEXT, PAGEVIEW_COLUMNS, POST_CONTENT_TAIL,
    SESSION_FIRST_EVENT_DERIVED, SESSION_FIRST_EVENT_FIELDS, SESSION_HEAD, SESSION_TAIL, Schema,
    SchemaError, SqlType, Table, URL_FIELDS, URL_PARTS, USER_COLUMNS, USER_DAILY_COLUMNS,
    VIDEO_CONTENT_TAIL, VIDEOVIEW_COLUMNS, event_column_count, field_type,
};
pub use value::{
    ShortText, Value, civil_date, datetime_of, day_number, micros_of, write_date, write_ts,
    write_ts_seconds,
};
