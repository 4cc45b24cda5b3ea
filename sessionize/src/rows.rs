//! Row building: what every column of every table holds, given the facts the sessionizer
//! computed. Pure functions; the column order is `dpl_core::Schema::columns`.
//!
//! OWNED BY helper S1 (derive.rs, rows.rs). The struct definitions below are the contract
//! with the stateful sessionizer (helper S2); do not change field names or meaning without
//! telling the lead.
//!
//! Every `push_*` appends exactly the table's column count (checked by a `debug_assert`).
//! Choices where SPEC.md is silent:
//! - `user_type` is `New` when the visitor has at most one session (`user_total_sessions`
//!   0 or 1): a visitor who has not come back is new. Late sessions count as sessions.
//! - Session date parts and `session_date_id` come from the local start; `entry_ts_action`
//!   and `exit_ts_action` are the UTC `ts_action` of the first and last event;
//!   `session_duration_seconds` is whole seconds, floored.
//! - `word_count_buckets` puts negative counts in `< 100`; null when the count is null.
//! - Errors: `reason` is the reason label, then `: <detail>` when the decoder gave one.
//! - A time stamp outside jiff's range (which parsed input cannot produce) makes the
//!   `_tz`, date-part and since-publish values derived from it null.

// Helpers here serve the sessionizer and the reference model; not every one is used by both.
#![allow(dead_code)]

use std::sync::Arc;

use dpl_core::{
    CONTENT_METADATA_FIELDS, ErrorRow, Event, Field, SESSION_FIRST_EVENT_FIELDS, TZ_FIELDS, Table,
    URL_FIELDS, Value,
};

use crate::derive::{
    Derive, Key, date_parts_of_micros, day_of_micros, since_publish, word_count_bucket,
};

/// Facts of one `parsely_pageviews` row beyond its event's own columns.
pub(crate) struct PageviewFacts<'a> {
    pub session_key: &'a str,
    /// 1 for a real pageview, 0 for an orphan row built from a heartbeat.
    pub counter: i64,
    /// true for a real pageview (`pageview_match`).
    pub matched: bool,
    pub engaged_time: i64,
    /// Videoview rows (orphans included) whose parent is this pageview event.
    pub videoviews: i64,
    pub video_engaged_time: i64,
    /// 1-based among the session's real pageviews; None on orphans.
    pub sequence: Option<i64>,
    /// Post ids (text, or null when the event has none).
    pub previous_post_id: Option<Value>,
    pub next_post_id: Option<Value>,
    pub is_entry: bool,
    pub is_exit: bool,
}

/// Facts of one `parsely_videoviews` row beyond its event's own columns.
pub(crate) struct VideoviewFacts<'a> {
    pub session_key: &'a str,
    /// 1 for a real videostart, 0 for an orphan row built from a vheartbeat.
    pub counter: i64,
    pub matched: bool,
    pub video_engaged_time: i64,
    /// 1-based among the session's real videostarts; None on orphans.
    pub sequence: Option<i64>,
    /// The parent pageview's `pageview_key` (stored in this table's `pageview_key` column).
    pub parent_pageview_key: Option<&'a str>,
}

/// The user at the start and end of an on-time session (None on late sessions).
pub(crate) struct SessionUserFacts {
    /// This is the visitor's first on-time session (`New`, else `Returning`).
    pub is_new: bool,
    /// Lifetime pageviews strictly before the session's first event.
    pub pageviews_before: i64,
    /// Pageviews in [start - rolling_window_days, start).
    pub rolling_pageviews_before: i64,
    /// This session's real pageviews.
    pub session_pageviews: i64,
}

/// Facts of one `parsely_sessions` row.
pub(crate) struct SessionFacts<'a> {
    pub session_key: &'a str,
    /// First and last activity event by (ts_action, event_id).
    pub first: &'a Event,
    pub last: &'a Event,
    pub user_session_number: Option<i64>,
    pub pageviews: i64,
    pub engaged_time: i64,
    pub videoviews: i64,
    pub video_engaged_time: i64,
    pub custom_events: i64,
    pub is_late: bool,
    pub user: Option<SessionUserFacts>,
    /// First and last non-null `Event::extra` over the session's events in time order.
    pub extra_first: Value,
    pub extra_last: Value,
}

/// Facts of one `parsely_users` row.
pub(crate) struct UserFacts<'a> {
    pub apikey_visitor_id: &'a str,
    pub apikey: &'a Arc<str>,
    pub visitor_site_id: &'a Arc<str>,
    /// UTC micros of the first and last activity event ever.
    pub first_seen_ts: i64,
    pub last_seen_ts: i64,
    pub pageviews: i64,
    pub engaged_time: i64,
    pub videoviews: i64,
    pub video_engaged_time: i64,
    pub sessions: i64,
    pub custom_events: i64,
    /// Pageviews of the rolling_window_days local days ending on date_last_seen.
    pub rolling_pageviews: i64,
    pub last_extra: Value,
}

/// Facts of one `parsely_user_daily` row.
pub(crate) struct UserDailyFacts<'a> {
    pub apikey_visitor_id: &'a str,
    /// Local day number (days since 1970-01-01).
    pub date: i32,
    pub pageviews: i64,
    pub videoviews: i64,
    pub engaged_time: i64,
    pub video_engaged_time: i64,
    pub sessions: i64,
}

/// Facts of one `parsely_post_content` row.
pub(crate) struct PostContentFacts<'a> {
    pub pageview_post_id: &'a Arc<str>,
    /// `url` of the latest pageview/heartbeat of the post.
    pub url: &'a Value,
    /// Its values of `dpl_core::CONTENT_METADATA_FIELDS`, in that order.
    pub metadata: &'a [Value],
    pub first_seen_ts: i64,
    pub last_seen_ts: i64,
    pub pageviews: i64,
    pub engaged_time: i64,
}

/// Facts of one `parsely_video_content` row.
pub(crate) struct VideoContentFacts<'a> {
    pub metadata_canonical_url: &'a Arc<str>,
    pub url: &'a Value,
    /// Values of `dpl_core::CONTENT_METADATA_FIELDS` (canonical url included; it is skipped
    /// when the row is built).
    pub metadata: &'a [Value],
    pub first_seen_ts: i64,
    pub last_seen_ts: i64,
    pub videoviews: i64,
    pub video_engaged_time: i64,
}

/// Facts of one `parsely_campaigns` row.
pub(crate) struct CampaignFacts<'a> {
    pub utm_id: &'a str,
    pub apikey: &'a Arc<str>,
    /// utm_campaign, utm_medium, utm_source, utm_term, utm_content.
    pub utm: &'a [Value; 5],
    /// Latest non-null campaign_id.
    pub campaign_id: &'a Value,
    pub first_seen_ts: i64,
    pub last_seen_ts: i64,
    pub pageviews: i64,
    pub engaged_time: i64,
    pub videoviews: i64,
    pub video_engaged_time: i64,
    pub sessions: i64,
}

/// The md5 keys of an event-grain row, computed once by the caller (the sessionizer reuses
/// the session's visitor and session keys, the attribution's view keys and a per-session
/// cache of the rest).
pub(crate) struct EventKeys {
    pub avid: Key,
    pub utm_id: Key,
    /// The `pageview_key` column: the event's own recipe, or for videoviews the parent's.
    pub pageview_key: Value,
    pub videostart_key: Key,
    pub session_id: Key,
    /// The `session_key` column (one shared value for all the rows of a session); unused
    /// by bot rows.
    pub session_key: Value,
}

impl EventKeys {
    /// Every key computed from `ev`, with the `session_key` column `session_key`.
    pub(crate) fn of(ev: &Event, session_key: Value) -> EventKeys {
        EventKeys {
            avid: Derive::apikey_visitor_id(ev),
            utm_id: Derive::utm_id(ev),
            pageview_key: Value::Text(Derive::pageview_key(ev)),
            videostart_key: Derive::videostart_key(ev),
            session_id: Derive::parsely_session_id(ev),
            session_key,
        }
    }
}

/// The keys of a `parsely_sessions` row, computed once by the caller.
pub(crate) struct SessionKeys {
    /// The `session_key` column (shared with the session's event rows).
    pub session_key: Value,
    /// `parsely_session_id` of the first event.
    pub session_id: Key,
    /// `apikey_visitor_id` of the first event.
    pub avid: Key,
    /// `utm_id` of the first event.
    pub utm_id: Key,
}

fn key(k: &str) -> Value {
    Value::text(k)
}

fn opt_int(v: Option<i64>) -> Value {
    v.map_or(Value::Null, Value::Int)
}

/// The `_tz` value's local micros, if any.
fn local_ts(v: &Value) -> Option<i64> {
    v.as_ts()
}

impl Derive {
    /// Pushes the event columns: the 122 raw fields, `EVENT_DERIVED`, one `_tz` per
    /// `TZ_FIELDS`, then `EVENT_DATE_PARTS`, with the keys of `keys`.
    fn push_event_columns(&self, ev: &Event, keys: EventKeys, out: &mut Vec<Value>) {
        ev.clone_values_into(out);
        out.push(Value::Text(keys.avid));
        out.push(Derive::pageview_post_value(ev).clone());
        out.push(Value::Text(keys.utm_id));
        out.push(keys.pageview_key);
        out.push(Value::Text(keys.videostart_key));
        out.push(Value::Text(keys.session_id));
        out.push(ev.extra.clone());
        out.push(Value::Bool(is_fbia(ev)));
        let mut action_local = None;
        let mut session_local = None;
        for &f in TZ_FIELDS {
            let v = self.tz_value(ev.get(f));
            match f {
                Field::TsAction => action_local = local_ts(&v),
                Field::TsSessionCurrent => session_local = local_ts(&v),
                _ => {}
            }
            out.push(v);
        }
        match action_local.map(date_parts_of_micros) {
            Some(p) => out.extend([
                Value::Int(p.day),
                Value::Int(p.month),
                Value::Int(p.quarter),
                Value::Int(p.year),
                Value::Int(p.iso_week),
                Value::Int(p.date_id),
            ]),
            None => out.extend(std::iter::repeat_n(Value::Null, 6)),
        }
        out.push(opt_int(
            session_local.map(|us| date_parts_of_micros(us).date_id),
        ));
    }

    /// `publish_time`, `<read/watch/event>_time` and the three `*_since_publish` columns.
    fn push_publish_columns(&self, ev: &Event, out: &mut Vec<Value>) {
        let pub_ms = ev.int(Field::MetadataPubDateTmsp);
        let read_ms = ev.int(Field::TimestampInfoNginxMs);
        out.push(
            pub_ms
                .and_then(|ms| self.local_of_ms(ms))
                .map_or(Value::Null, Value::Ts),
        );
        out.push(
            read_ms
                .and_then(|ms| self.local_of_ms(ms))
                .map_or(Value::Null, Value::Ts),
        );
        match pub_ms.zip(read_ms).and_then(|(p, r)| since_publish(p, r)) {
            Some((h, d, w)) => out.extend([Value::Int(h), Value::Int(d), Value::Int(w)]),
            None => out.extend(std::iter::repeat_n(Value::Null, 3)),
        }
    }

    fn check_width(&self, table: Table, start: usize, out: &[Value]) {
        debug_assert_eq!(
            out.len().saturating_sub(start),
            self.width(table),
            "row of {} pushed the wrong number of values",
            table.name()
        );
        let _ = (table, start, out);
    }

    /// Pushes one `parsely_pageviews` row for `ev` (a pageview, or the first heartbeat of an
    /// orphan row).
    pub(crate) fn push_pageview(&self, ev: &Event, f: &PageviewFacts<'_>, out: &mut Vec<Value>) {
        self.push_pageview_keyed(ev, f, EventKeys::of(ev, key(f.session_key)), out);
    }

    /// [`Derive::push_pageview`] with the keys computed by the caller.
    pub(crate) fn push_pageview_keyed(
        &self,
        ev: &Event,
        f: &PageviewFacts<'_>,
        keys: EventKeys,
        out: &mut Vec<Value>,
    ) {
        let start = out.len();
        let session_key = keys.session_key.clone();
        self.push_event_columns(ev, keys, out);
        out.extend([
            session_key,
            Value::Int(f.counter),
            Value::Bool(f.matched),
            Value::Int(f.engaged_time),
            Value::Int(f.videoviews),
            Value::Int(f.video_engaged_time),
            self.label(self.read_category(f.engaged_time)),
            opt_int(f.sequence),
            f.previous_post_id.clone().unwrap_or_default(),
            f.next_post_id.clone().unwrap_or_default(),
            Value::Bool(f.is_entry),
            Value::Bool(f.is_exit),
        ]);
        self.push_publish_columns(ev, out);
        self.check_width(Table::Pageviews, start, out);
    }

    /// Pushes one `parsely_videoviews` row for `ev` (a videostart, or the first vheartbeat
    /// of an orphan row).
    pub(crate) fn push_videoview(&self, ev: &Event, f: &VideoviewFacts<'_>, out: &mut Vec<Value>) {
        let keys = EventKeys {
            pageview_key: Value::opt_text(f.parent_pageview_key),
            ..EventKeys::of(ev, key(f.session_key))
        };
        self.push_videoview_keyed(ev, f, keys, out);
    }

    /// [`Derive::push_videoview`] with the keys computed by the caller (`pageview_key` the
    /// parent's).
    pub(crate) fn push_videoview_keyed(
        &self,
        ev: &Event,
        f: &VideoviewFacts<'_>,
        keys: EventKeys,
        out: &mut Vec<Value>,
    ) {
        let start = out.len();
        let session_key = keys.session_key.clone();
        self.push_event_columns(ev, keys, out);
        out.extend([
            session_key,
            Value::Int(f.counter),
            Value::Bool(f.matched),
            Value::Int(f.video_engaged_time),
            self.label(self.watch_category(f.video_engaged_time)),
            opt_int(f.sequence),
        ]);
        self.push_publish_columns(ev, out);
        self.check_width(Table::Videoviews, start, out);
    }

    pub(crate) fn push_custom_event(&self, ev: &Event, session_key: &str, out: &mut Vec<Value>) {
        self.push_custom_event_keyed(ev, EventKeys::of(ev, key(session_key)), out);
    }

    /// [`Derive::push_custom_event`] with the keys computed by the caller.
    pub(crate) fn push_custom_event_keyed(
        &self,
        ev: &Event,
        keys: EventKeys,
        out: &mut Vec<Value>,
    ) {
        let start = out.len();
        let session_key = keys.session_key.clone();
        self.push_event_columns(ev, keys, out);
        out.extend([session_key, Value::Int(1)]);
        self.push_publish_columns(ev, out);
        self.check_width(Table::CustomEvents, start, out);
    }

    pub(crate) fn push_bot(&self, ev: &Event, out: &mut Vec<Value>) {
        self.push_bot_keyed(ev, EventKeys::of(ev, Value::Null), out);
    }

    /// [`Derive::push_bot`] with the keys computed by the caller.
    pub(crate) fn push_bot_keyed(&self, ev: &Event, keys: EventKeys, out: &mut Vec<Value>) {
        let start = out.len();
        self.push_event_columns(ev, keys, out);
        self.check_width(Table::BotTraffic, start, out);
    }

    pub(crate) fn push_error(&self, e: &ErrorRow, out: &mut Vec<Value>) {
        let start = out.len();
        let reason = match &e.detail {
            Some(d) => format!("{}: {d}", e.reason.as_str()),
            None => e.reason.as_str().to_owned(),
        };
        out.extend([
            Value::Text(e.source_object.clone()),
            Value::Int(i64::try_from(e.line).unwrap_or(i64::MAX)),
            Value::text(reason),
            Value::opt_text(e.event_id.as_deref()),
            Value::opt_text(e.action.as_deref()),
            Value::text(e.raw.as_str()),
        ]);
        self.check_width(Table::Errors, start, out);
    }

    pub(crate) fn push_session(&self, s: &SessionFacts<'_>, out: &mut Vec<Value>) {
        let keys = SessionKeys {
            session_key: key(s.session_key),
            session_id: Derive::parsely_session_id(s.first),
            avid: Derive::apikey_visitor_id(s.first),
            utm_id: Derive::utm_id(s.first),
        };
        self.push_session_keyed(s, keys, out);
    }

    /// [`Derive::push_session`] with the keys computed by the caller.
    pub(crate) fn push_session_keyed(
        &self,
        s: &SessionFacts<'_>,
        keys: SessionKeys,
        out: &mut Vec<Value>,
    ) {
        let start = out.len();
        let first = s.first;
        let last = s.last;
        let start_ts = first.ts(Field::TsAction);
        let end_ts = last.ts(Field::TsAction);
        let start_local = start_ts.and_then(|t| self.try_local(t));
        let end_local = end_ts.and_then(|t| self.try_local(t));
        let duration = start_ts
            .zip(end_ts)
            .and_then(|(a, b)| b.checked_sub(a))
            .map(|d| d.div_euclid(crate::derive::MICROS_PER_SEC));
        let ts = |v: Option<i64>| v.map_or(Value::Null, Value::Ts);
        out.extend([
            keys.session_key,
            Value::Text(keys.session_id),
            first.get(Field::Apikey).clone(),
            first.get(Field::VisitorSiteId).clone(),
            Value::Text(keys.avid),
            opt_int(s.user_session_number),
            ts(start_ts),
            ts(start_local),
            ts(end_ts),
            ts(end_local),
            opt_int(duration),
        ]);
        match start_local.map(date_parts_of_micros) {
            Some(p) => out.extend([
                Value::Int(p.day),
                Value::Int(p.iso_week),
                Value::Int(p.month),
                Value::Int(p.quarter),
                Value::Int(p.year),
                Value::Int(p.date_id),
            ]),
            None => out.extend(std::iter::repeat_n(Value::Null, 6)),
        }
        out.extend([
            Value::Int(s.pageviews),
            Value::Int(s.engaged_time),
            Value::Int(s.videoviews),
            Value::Int(s.video_engaged_time),
            Value::Int(s.custom_events),
            Value::Bool(s.is_late),
        ]);
        for side in [first, last] {
            out.extend(URL_FIELDS.iter().map(|&f| side.get(f).clone()));
            out.push(side.get(Field::TsAction).clone());
        }
        out.extend(
            SESSION_FIRST_EVENT_FIELDS
                .iter()
                .map(|&f| first.get(f).clone()),
        );
        out.push(Value::Bool(is_fbia(first)));
        out.push(Value::Text(keys.utm_id));
        match &s.user {
            Some(u) => {
                let threshold = self.config.loyalty_pageviews;
                let end = u.pageviews_before.saturating_add(u.session_pageviews);
                out.extend([
                    self.label(if u.is_new { "New" } else { "Returning" }),
                    self.label(self.engagement_level(u.pageviews_before)),
                    self.label(self.rolling_level(u.rolling_pageviews_before)),
                    self.label(self.engagement_level(end)),
                    Value::Bool(u.pageviews_before < threshold && threshold <= end),
                ]);
            }
            None => out.extend(std::iter::repeat_n(Value::Null, 5)),
        }
        out.extend([s.extra_first.clone(), s.extra_last.clone(), Value::Int(1)]);
        self.check_width(Table::Sessions, start, out);
    }

    pub(crate) fn push_user(&self, u: &UserFacts<'_>, out: &mut Vec<Value>) {
        let start = out.len();
        let first_local = self.local(u.first_seen_ts);
        let last_local = self.local(u.last_seen_ts);
        out.extend([
            key(u.apikey_visitor_id),
            Value::Text(u.apikey.clone()),
            Value::Text(u.visitor_site_id.clone()),
            Value::Ts(u.first_seen_ts),
            Value::Ts(first_local),
            Value::Ts(u.last_seen_ts),
            Value::Ts(last_local),
            Value::Date(day_of_micros(first_local)),
            Value::Date(day_of_micros(last_local)),
            Value::Int(u.pageviews),
            Value::Int(u.engaged_time),
            Value::Int(u.videoviews),
            Value::Int(u.video_engaged_time),
            Value::Int(u.sessions),
            Value::Int(u.custom_events),
            self.label(if u.sessions <= 1 { "New" } else { "Returning" }),
            self.label(self.engagement_level(u.pageviews)),
            Value::Int(u.rolling_pageviews),
            self.label(self.rolling_level(u.rolling_pageviews)),
            u.last_extra.clone(),
            Value::Int(1),
        ]);
        self.check_width(Table::Users, start, out);
    }

    pub(crate) fn push_user_daily(&self, d: &UserDailyFacts<'_>, out: &mut Vec<Value>) {
        let start = out.len();
        out.extend([
            key(d.apikey_visitor_id),
            Value::Date(d.date),
            Value::Int(d.pageviews),
            Value::Int(d.videoviews),
            Value::Int(d.engaged_time),
            Value::Int(d.video_engaged_time),
            Value::Int(d.sessions),
        ]);
        self.check_width(Table::UserDaily, start, out);
    }

    pub(crate) fn push_post_content(&self, c: &PostContentFacts<'_>, out: &mut Vec<Value>) {
        let start = out.len();
        out.push(Value::Text(c.pageview_post_id.clone()));
        out.push(c.url.clone());
        let mut words = None;
        for (i, &f) in CONTENT_METADATA_FIELDS.iter().enumerate() {
            let v = c.metadata.get(i).cloned().unwrap_or_default();
            if f == Field::MetadataFullContentWordCount {
                words = v.as_int();
            }
            out.push(v);
        }
        out.extend([
            words.map_or(Value::Null, |w| self.label(word_count_bucket(w))),
            Value::Ts(c.first_seen_ts),
            Value::Ts(c.last_seen_ts),
            Value::Int(c.pageviews),
            Value::Int(c.engaged_time),
        ]);
        self.check_width(Table::PostContent, start, out);
    }

    pub(crate) fn push_video_content(&self, c: &VideoContentFacts<'_>, out: &mut Vec<Value>) {
        let start = out.len();
        out.push(Value::Text(c.metadata_canonical_url.clone()));
        out.push(c.url.clone());
        for (i, &f) in CONTENT_METADATA_FIELDS.iter().enumerate() {
            if f != Field::MetadataCanonicalUrl {
                out.push(c.metadata.get(i).cloned().unwrap_or_default());
            }
        }
        out.extend([
            Value::Ts(c.first_seen_ts),
            Value::Ts(c.last_seen_ts),
            Value::Int(c.videoviews),
            Value::Int(c.video_engaged_time),
        ]);
        self.check_width(Table::VideoContent, start, out);
    }

    pub(crate) fn push_campaign(&self, c: &CampaignFacts<'_>, out: &mut Vec<Value>) {
        let start = out.len();
        out.push(key(c.utm_id));
        out.push(Value::Text(c.apikey.clone()));
        out.extend(c.utm.iter().cloned());
        out.extend([
            c.campaign_id.clone(),
            Value::Ts(c.first_seen_ts),
            Value::Ts(c.last_seen_ts),
            Value::Int(c.pageviews),
            Value::Int(c.engaged_time),
            Value::Int(c.videoviews),
            Value::Int(c.video_engaged_time),
            Value::Int(c.sessions),
        ]);
        self.check_width(Table::Campaigns, start, out);
    }
}

/// `flag_is_fbia`: the referrer is Facebook Instant Articles (false when null).
pub(crate) fn is_fbia(ev: &Event) -> bool {
    ev.str(Field::Referrer) == Some(crate::derive::FBIA_REFERRER)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use crate::derive::tests::{derive, us};
    use crate::derive::{FBIA_REFERRER, md5_hex};
    use dpl_core::{Arrival, Class, ErrorReason, day_number};

    /// The value of column `name` in a single pushed row of `table`.
    fn col<'a>(d: &Derive, table: Table, row: &'a [Value], name: &str) -> &'a Value {
        assert_eq!(row.len(), d.width(table), "row width of {}", table.name());
        let i = d
            .schema
            .index(table, name)
            .unwrap_or_else(|| panic!("{} has no column {name}", table.name()));
        &row[i]
    }

    fn t(s: &str) -> Value {
        Value::text(s)
    }

    fn date(y: i16, m: i8, d: i8) -> Value {
        Value::Date(day_number(jiff::civil::date(y, m, d)))
    }

    /// A pageview at 2024-11-03 05:30:00.25 UTC (01:30:00.25 EDT, the first pass through
    /// the autumn fold).
    fn pageview() -> Event {
        let mut e = Event::empty(Class::Pageview, Arrival { object: 0, line: 1 });
        e.set(Field::Action, t("pageview"));
        e.set(Field::Apikey, t("example.com"));
        e.set(Field::VisitorSiteId, t("v1"));
        e.set(Field::EventId, t("e1"));
        e.set(Field::Url, t("http://example.com/a?x=1"));
        e.set(Field::UrlPath, t("/a"));
        e.set(Field::Referrer, t(FBIA_REFERRER));
        e.set(Field::UtmSource, t("fb"));
        e.set(Field::IpCity, t("Boston"));
        e.set(
            Field::TsAction,
            Value::Ts(us(2024, 11, 3, 5, 30, 0) + 250_000),
        );
        // 2024-11-03 06:30 UTC: 01:30 EST, the second pass through the fold.
        e.set(
            Field::TsSessionCurrent,
            Value::Ts(us(2024, 11, 3, 6, 30, 0)),
        );
        // Published 2024-11-01 00:00:00 UTC = 1730419200000 ms; read 2024-11-03 05:30:00.250
        // UTC = 1730611800250 ms: 53.5 hours later.
        e.set(Field::MetadataPubDateTmsp, Value::Int(1_730_419_200_000));
        e.set(Field::TimestampInfoNginxMs, Value::Int(1_730_611_800_250));
        e.extra = t("subscriber");
        e
    }

    #[test]
    fn pageview_row() {
        let d = derive();
        let ev = pageview();
        let f = PageviewFacts {
            session_key: "sk",
            counter: 1,
            matched: true,
            engaged_time: 41,
            videoviews: 2,
            video_engaged_time: 30,
            sequence: Some(2),
            previous_post_id: Some(Value::str("http://example.com/prev")),
            next_post_id: None,
            is_entry: false,
            is_exit: true,
        };
        let mut row = Vec::new();
        d.push_pageview(&ev, &f, &mut row);
        let tb = Table::Pageviews;
        let c = |name| col(&d, tb, &row, name).clone();
        // Raw fields as the event has them.
        assert_eq!(c("url"), t("http://example.com/a?x=1"));
        assert_eq!(
            c("ts_action"),
            Value::Ts(us(2024, 11, 3, 5, 30, 0) + 250_000)
        );
        assert_eq!(c("action"), t("pageview"));
        assert_eq!(c("ip_country"), Value::Null);
        // Derived values.
        assert_eq!(
            c("apikey_visitor_id"),
            t("4e3b6ee5be88f0f88abcd1f8d505883e")
        );
        assert_eq!(c("pageview_post_id"), t("http://example.com/a?x=1"));
        assert_eq!(c("pageview_key"), Value::Text(Derive::pageview_key(&ev)));
        assert_eq!(
            c("videostart_key"),
            Value::Text(Derive::videostart_key(&ev))
        );
        assert_eq!(
            c("parsely_session_id"),
            Value::Text(Derive::parsely_session_id(&ev))
        );
        assert_eq!(c("utm_id"), Value::Text(Derive::utm_id(&ev)));
        assert_eq!(c("custom_extra_data"), t("subscriber"));
        assert_eq!(c("flag_is_fbia"), Value::Bool(true));
        // Local times: the fold repeats 01:30 for ts_action and ts_session_current.
        assert_eq!(
            c("ts_action_tz"),
            Value::Ts(us(2024, 11, 3, 1, 30, 0) + 250_000)
        );
        assert_eq!(
            c("ts_session_current_tz"),
            Value::Ts(us(2024, 11, 3, 1, 30, 0))
        );
        assert_eq!(c("ts_session_last_tz"), Value::Null);
        // 2024-11-01 00:00 UTC = 2024-10-31 20:00 EDT.
        assert_eq!(
            c("metadata_pub_date_tmsp_tz"),
            Value::Ts(us(2024, 10, 31, 20, 0, 0))
        );
        assert_eq!(
            c("timestamp_info_nginx_ms_tz"),
            Value::Ts(us(2024, 11, 3, 1, 30, 0) + 250_000)
        );
        // 2024-11-03 is a Sunday: ISO week 44.
        assert_eq!(c("day"), Value::Int(3));
        assert_eq!(c("month"), Value::Int(11));
        assert_eq!(c("quarter"), Value::Int(4));
        assert_eq!(c("year"), Value::Int(2024));
        assert_eq!(c("week"), Value::Int(44));
        assert_eq!(c("date_id"), Value::Int(20_241_103));
        assert_eq!(c("session_date_id"), Value::Int(20_241_103));
        // Facts.
        assert_eq!(c("session_key"), t("sk"));
        assert_eq!(c("pageview_counter"), Value::Int(1));
        assert_eq!(c("pageview_match"), Value::Bool(true));
        assert_eq!(c("engaged_time"), Value::Int(41));
        assert_eq!(c("videoviews"), Value::Int(2));
        assert_eq!(c("video_engaged_time"), Value::Int(30));
        assert_eq!(c("read_category"), t("Deep Read"));
        assert_eq!(c("pageview_sequence"), Value::Int(2));
        assert_eq!(c("previous_pageview_post_id"), t("http://example.com/prev"));
        assert_eq!(c("next_pageview_post_id"), Value::Null);
        assert_eq!(c("is_entry"), Value::Bool(false));
        assert_eq!(c("is_exit"), Value::Bool(true));
        assert_eq!(c("publish_time"), Value::Ts(us(2024, 10, 31, 20, 0, 0)));
        assert_eq!(
            c("read_time"),
            Value::Ts(us(2024, 11, 3, 1, 30, 0) + 250_000)
        );
        assert_eq!(c("hours_since_publish"), Value::Int(53));
        assert_eq!(c("days_since_publish"), Value::Int(2));
        assert_eq!(c("weeks_since_publish"), Value::Int(0));
    }

    #[test]
    fn orphan_pageview_row_and_missing_times() {
        let d = derive();
        let mut ev = pageview();
        ev.class = Class::Heartbeat;
        ev.set(Field::Referrer, Value::Null);
        ev.set(Field::TsSessionCurrent, Value::Null);
        ev.set(Field::TimestampInfoNginxMs, Value::Null);
        // Published after the read: negative elapsed time floors away from zero.
        ev.set(Field::MetadataCanonicalUrl, t("http://example.com/canon"));
        let f = PageviewFacts {
            session_key: "sk",
            counter: 0,
            matched: false,
            engaged_time: 15,
            videoviews: 0,
            video_engaged_time: 0,
            sequence: None,
            previous_post_id: None,
            next_post_id: None,
            is_entry: false,
            is_exit: false,
        };
        let mut row = Vec::new();
        d.push_pageview(&ev, &f, &mut row);
        let c = |name| col(&d, Table::Pageviews, &row, name).clone();
        assert_eq!(c("flag_is_fbia"), Value::Bool(false));
        assert_eq!(c("pageview_post_id"), t("http://example.com/canon"));
        assert_eq!(c("session_date_id"), Value::Null);
        assert_eq!(c("read_time"), Value::Null);
        assert_eq!(c("hours_since_publish"), Value::Null);
        assert_eq!(c("days_since_publish"), Value::Null);
        assert_eq!(c("pageview_counter"), Value::Int(0));
        assert_eq!(c("pageview_match"), Value::Bool(false));
        assert_eq!(c("pageview_sequence"), Value::Null);
        assert_eq!(c("read_category"), t("Skim"));

        // Read 90 minutes before the publish time: -2 hours, -1 day, -1 week.
        let mut ev2 = pageview();
        ev2.set(
            Field::TimestampInfoNginxMs,
            Value::Int(1_730_419_200_000 - 5_400_000),
        );
        let mut row2 = Vec::new();
        d.push_pageview(&ev2, &f, &mut row2);
        let c2 = |name| col(&d, Table::Pageviews, &row2, name).clone();
        assert_eq!(c2("hours_since_publish"), Value::Int(-2));
        assert_eq!(c2("days_since_publish"), Value::Int(-1));
        assert_eq!(c2("weeks_since_publish"), Value::Int(-1));
    }

    #[test]
    fn spring_gap_date_parts() {
        // 2024-03-10 07:00 UTC is 03:00 EDT; 06:59:59 UTC is 01:59:59 EST.
        let d = derive();
        let mut ev = pageview();
        ev.set(Field::TsAction, Value::Ts(us(2024, 3, 10, 7, 0, 0)));
        let mut row = Vec::new();
        d.push_bot(&ev, &mut row);
        let c = |name| col(&d, Table::BotTraffic, &row, name).clone();
        assert_eq!(c("ts_action_tz"), Value::Ts(us(2024, 3, 10, 3, 0, 0)));
        assert_eq!(c("date_id"), Value::Int(20_240_310));
        // Bots keep their own pageview_key.
        assert_eq!(c("pageview_key"), Value::Text(Derive::pageview_key(&ev)));
        // Local midnight differs from UTC: 2024-01-01 03:00 UTC is 2023-12-31 22:00 EST,
        // a Sunday in ISO week 52 of 2023.
        ev.set(Field::TsAction, Value::Ts(us(2024, 1, 1, 3, 0, 0)));
        row.clear();
        d.push_bot(&ev, &mut row);
        let c = |name| col(&d, Table::BotTraffic, &row, name).clone();
        assert_eq!(c("date_id"), Value::Int(20_231_231));
        assert_eq!(c("year"), Value::Int(2023));
        assert_eq!(c("week"), Value::Int(52));
        assert_eq!(c("quarter"), Value::Int(4));
        assert_eq!(c("day"), Value::Int(31));
    }

    #[test]
    fn videoview_row_holds_parent_key() {
        let d = derive();
        let mut ev = pageview();
        ev.class = Class::Videostart;
        ev.set(Field::VideostartId, t("vs1"));
        for (parent, want) in [(Some("parentkey"), t("parentkey")), (None, Value::Null)] {
            let f = VideoviewFacts {
                session_key: "sk",
                counter: 1,
                matched: true,
                video_engaged_time: 61,
                sequence: Some(1),
                parent_pageview_key: parent,
            };
            let mut row = Vec::new();
            d.push_videoview(&ev, &f, &mut row);
            let c = |name| col(&d, Table::Videoviews, &row, name).clone();
            assert_eq!(c("pageview_key"), want);
            assert_eq!(
                c("videostart_key"),
                Value::Text(Derive::videostart_key(&ev))
            );
            assert_eq!(c("watch_category"), t("Deep Watch"));
            assert_eq!(c("videostart_counter"), Value::Int(1));
            assert_eq!(c("videostart_match"), Value::Bool(true));
            assert_eq!(c("videoview_sequence"), Value::Int(1));
            assert_eq!(
                c("watch_time"),
                Value::Ts(us(2024, 11, 3, 1, 30, 0) + 250_000)
            );
            assert_eq!(c("hours_since_publish"), Value::Int(53));
        }
    }

    #[test]
    fn custom_event_and_error_rows() {
        let d = derive();
        let mut ev = pageview();
        ev.class = Class::Custom;
        let mut row = Vec::new();
        d.push_custom_event(&ev, "sk", &mut row);
        let c = |name| col(&d, Table::CustomEvents, &row, name).clone();
        assert_eq!(c("session_key"), t("sk"));
        assert_eq!(c("custom_event_counter"), Value::Int(1));
        assert_eq!(
            c("event_time"),
            Value::Ts(us(2024, 11, 3, 1, 30, 0) + 250_000)
        );
        assert_eq!(c("days_since_publish"), Value::Int(2));

        let mut e = ErrorRow {
            source_object: Arc::from("events/2024/11/03/a.gz"),
            line: 7,
            reason: ErrorReason::MissingRequiredField,
            detail: Some("visitor_site_id".to_owned()),
            event_id: Some("e9".to_owned()),
            action: None,
            raw: "{\"action\":\"pageview\"}".to_owned(),
        };
        let mut row = Vec::new();
        d.push_error(&e, &mut row);
        let c = |name| col(&d, Table::Errors, &row, name).clone();
        assert_eq!(c("source_object"), t("events/2024/11/03/a.gz"));
        assert_eq!(c("line_number"), Value::Int(7));
        assert_eq!(c("reason"), t("missing_required_field: visitor_site_id"));
        assert_eq!(c("event_id"), t("e9"));
        assert_eq!(c("action"), Value::Null);
        assert_eq!(c("raw"), t("{\"action\":\"pageview\"}"));
        e.detail = None;
        row.clear();
        d.push_error(&e, &mut row);
        assert_eq!(
            col(&d, Table::Errors, &row, "reason"),
            &t("missing_required_field")
        );
    }

    fn session_events() -> (Event, Event) {
        // First event 2024-01-01 03:00:00.9 UTC (2023-12-31 22:00:00.9 EST), last 10 seconds
        // and 0.2 s later: a duration of 10.2 s, 10 whole seconds.
        let mut first = pageview();
        first.set(
            Field::TsAction,
            Value::Ts(us(2024, 1, 1, 3, 0, 0) + 900_000),
        );
        let mut last = pageview();
        last.set(Field::EventId, t("e2"));
        last.set(Field::Url, t("http://example.com/b"));
        last.set(Field::UrlPath, t("/b"));
        last.set(Field::IpCity, t("Paris"));
        last.set(Field::Referrer, Value::Null);
        last.set(
            Field::TsAction,
            Value::Ts(us(2024, 1, 1, 3, 0, 11) + 100_000),
        );
        (first, last)
    }

    #[test]
    fn session_row() {
        let d = derive();
        let (first, last) = session_events();
        let f = SessionFacts {
            session_key: "sk",
            first: &first,
            last: &last,
            user_session_number: Some(4),
            pageviews: 5,
            engaged_time: 100,
            videoviews: 1,
            video_engaged_time: 20,
            custom_events: 2,
            is_late: false,
            user: Some(SessionUserFacts {
                is_new: false,
                pageviews_before: 95,
                rolling_pageviews_before: 30,
                session_pageviews: 5,
            }),
            extra_first: Value::Null,
            extra_last: t("subscriber"),
        };
        let mut row = Vec::new();
        d.push_session(&f, &mut row);
        let tb = Table::Sessions;
        let c = |name| col(&d, tb, &row, name).clone();
        assert_eq!(c("session_key"), t("sk"));
        assert_eq!(
            c("parsely_session_id"),
            Value::Text(Derive::parsely_session_id(&first))
        );
        assert_eq!(c("apikey"), t("example.com"));
        assert_eq!(c("visitor_site_id"), t("v1"));
        assert_eq!(
            c("apikey_visitor_id"),
            t("4e3b6ee5be88f0f88abcd1f8d505883e")
        );
        assert_eq!(c("user_session_number"), Value::Int(4));
        assert_eq!(
            c("session_start_ts"),
            Value::Ts(us(2024, 1, 1, 3, 0, 0) + 900_000)
        );
        assert_eq!(
            c("session_start_ts_tz"),
            Value::Ts(us(2023, 12, 31, 22, 0, 0) + 900_000)
        );
        assert_eq!(
            c("session_end_ts"),
            Value::Ts(us(2024, 1, 1, 3, 0, 11) + 100_000)
        );
        assert_eq!(
            c("session_end_ts_tz"),
            Value::Ts(us(2023, 12, 31, 22, 0, 11) + 100_000)
        );
        assert_eq!(c("session_duration_seconds"), Value::Int(10));
        assert_eq!(c("session_day"), Value::Int(31));
        assert_eq!(c("session_week"), Value::Int(52));
        assert_eq!(c("session_month"), Value::Int(12));
        assert_eq!(c("session_quarter"), Value::Int(4));
        assert_eq!(c("session_year"), Value::Int(2023));
        assert_eq!(c("session_date_id"), Value::Int(20_231_231));
        assert_eq!(c("pageviews"), Value::Int(5));
        assert_eq!(c("engaged_time"), Value::Int(100));
        assert_eq!(c("videoviews"), Value::Int(1));
        assert_eq!(c("video_engaged_time"), Value::Int(20));
        assert_eq!(c("custom_events"), Value::Int(2));
        assert_eq!(c("is_late_session"), Value::Bool(false));
        assert_eq!(c("entry_url"), t("http://example.com/a?x=1"));
        assert_eq!(c("entry_url_path"), t("/a"));
        assert_eq!(c("entry_url_query"), Value::Null);
        assert_eq!(
            c("entry_ts_action"),
            Value::Ts(us(2024, 1, 1, 3, 0, 0) + 900_000)
        );
        assert_eq!(c("exit_url"), t("http://example.com/b"));
        assert_eq!(c("exit_url_path"), t("/b"));
        assert_eq!(
            c("exit_ts_action"),
            Value::Ts(us(2024, 1, 1, 3, 0, 11) + 100_000)
        );
        // Attributes of the first event.
        assert_eq!(c("ip_city"), t("Boston"));
        assert_eq!(c("referrer"), t(FBIA_REFERRER));
        assert_eq!(c("flag_is_fbia"), Value::Bool(true));
        assert_eq!(c("utm_source"), t("fb"));
        assert_eq!(c("utm_id"), Value::Text(Derive::utm_id(&first)));
        // 95 before, 100 at the end: crossed the loyalty threshold in this session.
        assert_eq!(c("session_user_type"), t("Returning"));
        assert_eq!(c("session_user_engagement_level"), t("Non-Loyalty"));
        assert_eq!(c("session_rolling_30_day_user_type"), t("Loyalty"));
        assert_eq!(c("session_user_engagement_level_end"), t("Loyalty"));
        assert_eq!(c("converted_to_loyalty"), Value::Bool(true));
        assert_eq!(c("custom_extra_data_first"), Value::Null);
        assert_eq!(c("custom_extra_data_last"), t("subscriber"));
        assert_eq!(c("session_counter"), Value::Int(1));
    }

    #[test]
    fn session_user_labels() {
        let d = derive();
        let (first, last) = session_events();
        // (is_new, before, rolling, session) -> (type, level, rolling, level_end, converted)
        let cases = [
            (
                (true, 0, 0, 3),
                ("New", "Non-Loyalty", "Non-Loyalty", "Non-Loyalty", false),
            ),
            (
                (false, 100, 29, 0),
                ("Returning", "Loyalty", "Non-Loyalty", "Loyalty", false),
            ),
            (
                (false, 99, 0, 1),
                ("Returning", "Non-Loyalty", "Non-Loyalty", "Loyalty", true),
            ),
            (
                (false, 98, 0, 1),
                (
                    "Returning",
                    "Non-Loyalty",
                    "Non-Loyalty",
                    "Non-Loyalty",
                    false,
                ),
            ),
            (
                (false, 150, 31, 4),
                ("Returning", "Loyalty", "Loyalty", "Loyalty", false),
            ),
        ];
        for ((is_new, before, rolling, session), want) in cases {
            let f = SessionFacts {
                session_key: "sk",
                first: &first,
                last: &last,
                user_session_number: Some(1),
                pageviews: session,
                engaged_time: 0,
                videoviews: 0,
                video_engaged_time: 0,
                custom_events: 0,
                is_late: false,
                user: Some(SessionUserFacts {
                    is_new,
                    pageviews_before: before,
                    rolling_pageviews_before: rolling,
                    session_pageviews: session,
                }),
                extra_first: Value::Null,
                extra_last: Value::Null,
            };
            let mut row = Vec::new();
            d.push_session(&f, &mut row);
            let c = |name| col(&d, Table::Sessions, &row, name).clone();
            let got = (
                c("session_user_type"),
                c("session_user_engagement_level"),
                c("session_rolling_30_day_user_type"),
                c("session_user_engagement_level_end"),
                c("converted_to_loyalty"),
            );
            let want = (
                t(want.0),
                t(want.1),
                t(want.2),
                t(want.3),
                Value::Bool(want.4),
            );
            assert_eq!(got, want, "{is_new} {before} {rolling} {session}");
        }
    }

    #[test]
    fn late_session_row_has_null_user_columns() {
        let d = derive();
        let (first, last) = session_events();
        let f = SessionFacts {
            session_key: "late",
            first: &first,
            last: &first,
            user_session_number: None,
            pageviews: 1,
            engaged_time: 0,
            videoviews: 0,
            video_engaged_time: 0,
            custom_events: 0,
            is_late: true,
            user: None,
            extra_first: t("a"),
            extra_last: t("a"),
        };
        let _ = last;
        let mut row = Vec::new();
        d.push_session(&f, &mut row);
        let c = |name| col(&d, Table::Sessions, &row, name).clone();
        assert_eq!(c("is_late_session"), Value::Bool(true));
        assert_eq!(c("user_session_number"), Value::Null);
        assert_eq!(c("session_duration_seconds"), Value::Int(0));
        for name in [
            "session_user_type",
            "session_user_engagement_level",
            "session_rolling_30_day_user_type",
            "session_user_engagement_level_end",
            "converted_to_loyalty",
        ] {
            assert_eq!(c(name), Value::Null, "{name}");
        }
        assert_eq!(c("custom_extra_data_first"), t("a"));
        assert_eq!(c("session_counter"), Value::Int(1));
    }

    #[test]
    fn user_and_user_daily_rows() {
        let d = derive();
        let apikey: Arc<str> = Arc::from("example.com");
        let vsid: Arc<str> = Arc::from("v1");
        let mk = |sessions, pageviews, rolling| UserFacts {
            apikey_visitor_id: "avid",
            apikey: &apikey,
            visitor_site_id: &vsid,
            // 2024-03-10 04:59:59 UTC = 23:59:59 EST on 03-09; 2024-03-11 03:59:59 UTC =
            // 23:59:59 EDT on 03-10.
            first_seen_ts: us(2024, 3, 10, 4, 59, 59),
            last_seen_ts: us(2024, 3, 11, 3, 59, 59),
            pageviews,
            engaged_time: 7,
            videoviews: 1,
            video_engaged_time: 2,
            sessions,
            custom_events: 3,
            rolling_pageviews: rolling,
            last_extra: t("subscriber"),
        };
        let mut row = Vec::new();
        d.push_user(&mk(1, 100, 29), &mut row);
        let c = |name| col(&d, Table::Users, &row, name).clone();
        assert_eq!(c("apikey_visitor_id"), t("avid"));
        assert_eq!(c("first_seen_ts"), Value::Ts(us(2024, 3, 10, 4, 59, 59)));
        assert_eq!(c("first_seen_ts_tz"), Value::Ts(us(2024, 3, 9, 23, 59, 59)));
        assert_eq!(c("last_seen_ts_tz"), Value::Ts(us(2024, 3, 10, 23, 59, 59)));
        assert_eq!(c("date_first_seen"), date(2024, 3, 9));
        assert_eq!(c("date_last_seen"), date(2024, 3, 10));
        assert_eq!(c("user_total_pageviews"), Value::Int(100));
        assert_eq!(c("user_total_engaged_time"), Value::Int(7));
        assert_eq!(c("user_total_videoviews"), Value::Int(1));
        assert_eq!(c("user_total_video_engaged_time"), Value::Int(2));
        assert_eq!(c("user_total_sessions"), Value::Int(1));
        assert_eq!(c("user_total_custom_events"), Value::Int(3));
        assert_eq!(c("user_type"), t("New"));
        assert_eq!(c("user_engagement_level"), t("Loyalty"));
        assert_eq!(c("rolling_30_day_pageviews"), Value::Int(29));
        assert_eq!(c("rolling_30_day_user_type"), t("Non-Loyalty"));
        assert_eq!(c("last_custom_extra_data"), t("subscriber"));
        assert_eq!(c("user_counter"), Value::Int(1));
        for (sessions, want) in [(0, "New"), (1, "New"), (2, "Returning")] {
            let mut row = Vec::new();
            d.push_user(&mk(sessions, 99, 30), &mut row);
            let c = |name| col(&d, Table::Users, &row, name).clone();
            assert_eq!(c("user_type"), t(want), "{sessions}");
            assert_eq!(c("user_engagement_level"), t("Non-Loyalty"));
            assert_eq!(c("rolling_30_day_user_type"), t("Loyalty"));
        }

        let mut row = Vec::new();
        let f = UserDailyFacts {
            apikey_visitor_id: "avid",
            date: day_number(jiff::civil::date(2024, 3, 10)),
            pageviews: 1,
            videoviews: 2,
            engaged_time: 3,
            video_engaged_time: 4,
            sessions: 5,
        };
        d.push_user_daily(&f, &mut row);
        assert_eq!(
            row,
            vec![
                t("avid"),
                date(2024, 3, 10),
                Value::Int(1),
                Value::Int(2),
                Value::Int(3),
                Value::Int(4),
                Value::Int(5)
            ]
        );
    }

    #[test]
    fn content_and_campaign_rows() {
        let d = derive();
        let post: Arc<str> = Arc::from("http://example.com/canon");
        let url = t("http://example.com/a");
        let mut metadata = vec![Value::Null; CONTENT_METADATA_FIELDS.len()];
        let idx = |f| {
            CONTENT_METADATA_FIELDS
                .iter()
                .position(|&x| x == f)
                .unwrap()
        };
        metadata[idx(Field::MetadataTitle)] = t("Title");
        metadata[idx(Field::MetadataCanonicalUrl)] = Value::Text(post.clone());
        metadata[idx(Field::MetadataFullContentWordCount)] = Value::Int(1_000);
        let c = PostContentFacts {
            pageview_post_id: &post,
            url: &url,
            metadata: &metadata,
            first_seen_ts: 1,
            last_seen_ts: 2,
            pageviews: 3,
            engaged_time: 4,
        };
        let mut row = Vec::new();
        d.push_post_content(&c, &mut row);
        let g = |name| col(&d, Table::PostContent, &row, name).clone();
        assert_eq!(g("pageview_post_id"), Value::Text(post.clone()));
        assert_eq!(g("url"), url);
        assert_eq!(g("metadata_title"), t("Title"));
        assert_eq!(g("metadata_canonical_url"), Value::Text(post.clone()));
        assert_eq!(g("metadata_authors"), Value::Null);
        assert_eq!(g("word_count_buckets"), t("1,000 - 1,999"));
        assert_eq!(g("first_seen_ts"), Value::Ts(1));
        assert_eq!(g("last_seen_ts"), Value::Ts(2));
        assert_eq!(g("pageviews"), Value::Int(3));
        assert_eq!(g("engaged_time"), Value::Int(4));
        // No word count: no bucket.
        let mut no_words = metadata.clone();
        no_words[idx(Field::MetadataFullContentWordCount)] = Value::Null;
        let c = PostContentFacts {
            metadata: &no_words,
            ..c
        };
        row.clear();
        d.push_post_content(&c, &mut row);
        assert_eq!(
            col(&d, Table::PostContent, &row, "word_count_buckets"),
            &Value::Null
        );

        let v = VideoContentFacts {
            metadata_canonical_url: &post,
            url: &url,
            metadata: &metadata,
            first_seen_ts: 5,
            last_seen_ts: 6,
            videoviews: 7,
            video_engaged_time: 8,
        };
        let mut row = Vec::new();
        d.push_video_content(&v, &mut row);
        let g = |name| col(&d, Table::VideoContent, &row, name).clone();
        assert_eq!(g("metadata_canonical_url"), Value::Text(post.clone()));
        assert_eq!(g("metadata_title"), t("Title"));
        assert_eq!(g("first_seen_ts"), Value::Ts(5));
        assert_eq!(g("video_engaged_time"), Value::Int(8));

        let apikey: Arc<str> = Arc::from("example.com");
        let utm = [t("spring"), Value::Null, t("fb"), Value::Null, Value::Null];
        let cid = t("c1");
        let k = CampaignFacts {
            utm_id: "u",
            apikey: &apikey,
            utm: &utm,
            campaign_id: &cid,
            first_seen_ts: 1,
            last_seen_ts: 2,
            pageviews: 3,
            engaged_time: 4,
            videoviews: 5,
            video_engaged_time: 6,
            sessions: 7,
        };
        let mut row = Vec::new();
        d.push_campaign(&k, &mut row);
        let g = |name| col(&d, Table::Campaigns, &row, name).clone();
        assert_eq!(g("utm_id"), t("u"));
        assert_eq!(g("utm_campaign"), t("spring"));
        assert_eq!(g("utm_medium"), Value::Null);
        assert_eq!(g("utm_source"), t("fb"));
        assert_eq!(g("campaign_id"), t("c1"));
        assert_eq!(g("last_seen_ts"), Value::Ts(2));
        assert_eq!(g("sessions"), Value::Int(7));
    }

    #[test]
    fn configured_extra_column_name_is_used() {
        let schema = Arc::new(dpl_core::Schema::new("subscriber").unwrap());
        let d = Derive::new(&crate::SessionizeConfig::default(), schema).unwrap();
        let ev = pageview();
        let mut row = Vec::new();
        d.push_bot(&ev, &mut row);
        assert_eq!(
            col(&d, Table::BotTraffic, &row, "subscriber"),
            &t("subscriber")
        );
        assert_eq!(&*md5_hex(b"a_b"), "dbf08e00b01fd58a4a5967753b43784f");
    }
}
