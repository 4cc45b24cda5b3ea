//! What the sessionizer remembers between sessions and runs: one record per known visitor,
//! post, video and campaign, and the [`Contribution`] a finished session adds to them.

use std::collections::BTreeMap;
use std::sync::Arc;

use dpl_core::{CONTENT_METADATA_FIELDS, Event, Field, Value};
use serde::{Deserialize, Serialize};

use crate::derive::{Derive, HashMap, Key, UTM_FIELDS};
use crate::ser;

/// A visitor's activity on one reporting-zone day (`parsely_user_daily`).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub(crate) struct DayCounts {
    pub day: i32,
    pub pageviews: i64,
    pub videoviews: i64,
    pub engaged_time: i64,
    pub video_engaged_time: i64,
    pub sessions: i64,
}

impl DayCounts {
    fn add(&mut self, o: &DayCounts) {
        self.pageviews += o.pageviews;
        self.videoviews += o.videoviews;
        self.engaged_time += o.engaged_time;
        self.video_engaged_time += o.video_engaged_time;
        self.sessions += o.sessions;
    }
}

/// The compact record of one known visitor.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub(crate) struct User {
    pub apikey: Arc<str>,
    pub visitor_site_id: Arc<str>,
    pub first_seen: i64,
    pub last_seen: i64,
    pub pageviews: i64,
    pub engaged_time: i64,
    pub videoviews: i64,
    pub video_engaged_time: i64,
    pub sessions: i64,
    pub custom_events: i64,
    /// On-time sessions folded so far (numbers the next one).
    pub on_time_sessions: i64,
    #[serde(with = "ser::value")]
    pub last_extra: Value,
    pub last_extra_ts: i64,
    /// `event_id` of the event `last_extra` came from (ties of `ts_action` break by it).
    pub last_extra_id: Box<str>,
    /// Days with activity, ascending, within `daily_retention_days` of the latest.
    pub days: Vec<DayCounts>,
    /// Pageview `ts_action`s, ascending, within `rolling_window_days` of the latest.
    pub pv_ts: Vec<i64>,
}

impl User {
    pub(crate) fn new(c: &Contribution) -> User {
        User {
            apikey: c.apikey.clone(),
            visitor_site_id: c.visitor_site_id.clone(),
            first_seen: c.first_seen,
            last_seen: c.last_seen,
            pageviews: 0,
            engaged_time: 0,
            videoviews: 0,
            video_engaged_time: 0,
            sessions: 0,
            custom_events: 0,
            on_time_sessions: 0,
            last_extra: Value::Null,
            last_extra_ts: i64::MIN,
            last_extra_id: "".into(),
            days: Vec::new(),
            pv_ts: Vec::new(),
        }
    }

    /// A new visitor's record with one contribution folded in.
    pub(crate) fn from_contribution(c: &Contribution, w: Windows) -> User {
        let mut u = User::new(c);
        apply_user(&mut u, c, w);
        u
    }

    /// Pageviews with `ts_action` in `[from, to)`.
    pub(crate) fn pageviews_between(&self, from: i64, to: i64) -> i64 {
        let a = self.pv_ts.partition_point(|&t| t < from);
        let b = self.pv_ts.partition_point(|&t| t < to);
        b.saturating_sub(a) as i64
    }

    /// Pageviews of the local days `[last - (n - 1), last]`.
    pub(crate) fn pageviews_of_days(&self, last: i32, n: i64) -> i64 {
        let first = i64::from(last) - (n - 1);
        self.days
            .iter()
            .filter(|d| i64::from(d.day) >= first && d.day <= last)
            .map(|d| d.pageviews)
            .sum()
    }

    /// Approximate heap and inline bytes of this record (for the state size estimate).
    pub(crate) fn bytes(&self) -> usize {
        std::mem::size_of::<User>()
            + self.days.capacity() * std::mem::size_of::<DayCounts>()
            + self.pv_ts.capacity() * 8
            + value_bytes(&self.last_extra)
            + self.last_extra_id.len()
            + self.apikey.len()
            + self.visitor_site_id.len()
            + 32
    }
}

/// Latest metadata and totals of one post (`parsely_post_content`) or video
/// (`parsely_video_content`).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub(crate) struct Content {
    pub latest_ts: i64,
    pub latest_id: Arc<str>,
    #[serde(with = "ser::value")]
    pub url: Value,
    /// Values of `CONTENT_METADATA_FIELDS` of the latest event.
    #[serde(with = "ser::values")]
    pub meta: Box<[Value]>,
    pub first_seen: i64,
    pub last_seen: i64,
    /// Pageviews (posts) or videoviews (videos).
    pub views: i64,
    /// Engaged time (posts) or video engaged time (videos).
    pub engaged: i64,
}

impl Content {
    fn of(ev: &Event) -> Content {
        Content {
            latest_ts: ev.ts_action(),
            latest_id: event_id(ev),
            url: ev.get(Field::Url).clone(),
            meta: CONTENT_METADATA_FIELDS
                .iter()
                .map(|&f| ev.get(f).clone())
                .collect(),
            first_seen: ev.ts_action(),
            last_seen: ev.ts_action(),
            views: 0,
            engaged: 0,
        }
    }
    /// An event of this content was seen.
    pub(crate) fn observe(&mut self, ev: &Event) {
        let ts = ev.ts_action();
        self.first_seen = self.first_seen.min(ts);
        self.last_seen = self.last_seen.max(ts);
        if (ts, ev.event_id()) >= (self.latest_ts, &*self.latest_id) {
            self.latest_ts = ts;
            self.latest_id = event_id(ev);
            self.url = ev.get(Field::Url).clone();
            for (m, &f) in self.meta.iter_mut().zip(CONTENT_METADATA_FIELDS) {
                *m = ev.get(f).clone();
            }
        }
    }
    fn merge(&mut self, o: &Content) {
        self.first_seen = self.first_seen.min(o.first_seen);
        self.last_seen = self.last_seen.max(o.last_seen);
        if (o.latest_ts, &*o.latest_id) >= (self.latest_ts, &*self.latest_id) {
            self.latest_ts = o.latest_ts;
            self.latest_id = o.latest_id.clone();
            self.url = o.url.clone();
            self.meta = o.meta.clone();
        }
        self.views += o.views;
        self.engaged += o.engaged;
    }
    fn bytes(&self) -> usize {
        std::mem::size_of::<Content>()
            + self.latest_id.len()
            + value_bytes(&self.url)
            + self.meta.iter().map(value_bytes).sum::<usize>()
            + self.meta.len() * std::mem::size_of::<Value>()
    }
}

/// One campaign (`parsely_campaigns`).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub(crate) struct Campaign {
    pub apikey: Arc<str>,
    #[serde(with = "ser::values5")]
    pub utm: [Value; 5],
    pub latest_ts: i64,
    pub latest_id: Arc<str>,
    /// Latest non-null `campaign_id` and its `(ts_action, event_id)`.
    #[serde(with = "ser::value")]
    pub campaign_id: Value,
    pub campaign_ts: i64,
    pub campaign_event: Arc<str>,
    pub first_seen: i64,
    pub last_seen: i64,
    pub pageviews: i64,
    pub engaged_time: i64,
    pub videoviews: i64,
    pub video_engaged_time: i64,
    pub sessions: i64,
}

impl Campaign {
    /// A record not yet seen on a standard event (`observe` fills the metadata): a session
    /// opened by a custom event carrying the campaign counts, but only standard events make
    /// the campaign a row.
    fn of(ev: &Event) -> Campaign {
        Campaign {
            apikey: ev.arc(Field::Apikey).unwrap_or_else(|| Arc::from("")),
            utm: UTM_FIELDS.map(|f| ev.get(f).clone()),
            latest_ts: i64::MIN,
            latest_id: "".into(),
            campaign_id: Value::Null,
            campaign_ts: i64::MIN,
            campaign_event: "".into(),
            first_seen: i64::MAX,
            last_seen: i64::MIN,
            pageviews: 0,
            engaged_time: 0,
            videoviews: 0,
            video_engaged_time: 0,
            sessions: 0,
        }
    }
    /// Whether a standard event carried the campaign (the record is a row).
    pub(crate) fn seen(&self) -> bool {
        self.first_seen <= self.last_seen
    }
    /// A standard event carrying the campaign was seen.
    pub(crate) fn observe(&mut self, ev: &Event) {
        let ts = ev.ts_action();
        self.first_seen = self.first_seen.min(ts);
        self.last_seen = self.last_seen.max(ts);
        if (ts, ev.event_id()) >= (self.latest_ts, &*self.latest_id) {
            self.latest_ts = ts;
            self.latest_id = event_id(ev);
            if let Some(a) = ev.arc(Field::Apikey) {
                self.apikey = a;
            }
            self.utm = UTM_FIELDS.map(|f| ev.get(f).clone());
        }
        let cid = ev.get(Field::CampaignId);
        if !cid.is_null() && (ts, ev.event_id()) >= (self.campaign_ts, &*self.campaign_event) {
            self.campaign_id = cid.clone();
            self.campaign_ts = ts;
            self.campaign_event = event_id(ev);
        }
    }
    fn merge(&mut self, o: &Campaign) {
        self.first_seen = self.first_seen.min(o.first_seen);
        self.last_seen = self.last_seen.max(o.last_seen);
        if (o.latest_ts, &*o.latest_id) >= (self.latest_ts, &*self.latest_id) {
            self.latest_ts = o.latest_ts;
            self.latest_id = o.latest_id.clone();
            self.apikey = o.apikey.clone();
            self.utm = o.utm.clone();
        }
        if !o.campaign_id.is_null()
            && (o.campaign_ts, &*o.campaign_event) >= (self.campaign_ts, &*self.campaign_event)
        {
            self.campaign_id = o.campaign_id.clone();
            self.campaign_ts = o.campaign_ts;
            self.campaign_event = o.campaign_event.clone();
        }
        self.pageviews += o.pageviews;
        self.engaged_time += o.engaged_time;
        self.videoviews += o.videoviews;
        self.video_engaged_time += o.video_engaged_time;
        self.sessions += o.sessions;
    }
    fn bytes(&self) -> usize {
        std::mem::size_of::<Campaign>()
            + self.latest_id.len()
            + self.campaign_event.len()
            + self.utm.iter().map(value_bytes).sum::<usize>()
            + value_bytes(&self.campaign_id)
    }
}

/// Heap bytes of a value (text only).
pub(crate) fn value_bytes(v: &Value) -> usize {
    match v {
        Value::Text(s) => s.len() + 16,
        _ => 0,
    }
}

/// A day of a session's contribution, with the number of events dated that day (counted as
/// too old when the day is past the visitor's retention).
#[derive(Clone, Debug, Default)]
pub(crate) struct DayDelta {
    pub counts: DayCounts,
    pub events: u64,
}

/// What one session adds to the visitor, content and campaign totals.
#[derive(Clone, Debug)]
pub(crate) struct Contribution {
    pub avid: Key,
    pub apikey: Arc<str>,
    pub visitor_site_id: Arc<str>,
    pub on_time: bool,
    pub first_seen: i64,
    pub last_seen: i64,
    pub pageviews: i64,
    pub engaged_time: i64,
    pub videoviews: i64,
    pub video_engaged_time: i64,
    pub custom_events: i64,
    /// The last non-null extra value: `(ts_action, event_id, value)`.
    pub last_extra: Option<(i64, Box<str>, Value)>,
    pub days: BTreeMap<i32, DayDelta>,
    pub pv_ts: Vec<i64>,
    pub posts: BTreeMap<Arc<str>, Content>,
    pub videos: BTreeMap<Arc<str>, Content>,
    pub campaigns: BTreeMap<Key, Campaign>,
}

impl Contribution {
    pub(crate) fn new(first: &Event, avid: Key, on_time: bool) -> Contribution {
        let text = |f| first.arc(f).unwrap_or_else(|| Arc::<str>::from(""));
        Contribution {
            avid,
            apikey: text(Field::Apikey),
            visitor_site_id: text(Field::VisitorSiteId),
            on_time,
            first_seen: first.ts_action(),
            last_seen: first.ts_action(),
            pageviews: 0,
            engaged_time: 0,
            videoviews: 0,
            video_engaged_time: 0,
            custom_events: 0,
            last_extra: None,
            days: BTreeMap::new(),
            pv_ts: Vec::new(),
            posts: BTreeMap::new(),
            videos: BTreeMap::new(),
            campaigns: BTreeMap::new(),
        }
    }
    pub(crate) fn day(&mut self, d: &Derive, utc: i64) -> &mut DayDelta {
        let day = d.local_day(utc);
        let e = self.days.entry(day).or_default();
        e.counts.day = day;
        e
    }
    pub(crate) fn post(&mut self, id: &str, ev: &Event) -> &mut Content {
        content_of(&mut self.posts, id, ev)
    }
    pub(crate) fn video(&mut self, url: &str, ev: &Event) -> &mut Content {
        content_of(&mut self.videos, url, ev)
    }
    /// The campaign `utm_id` (of `ev`, computed by the caller).
    pub(crate) fn campaign(&mut self, utm_id: Key, ev: &Event) -> &mut Campaign {
        self.campaigns
            .entry(utm_id)
            .or_insert_with(|| Campaign::of(ev))
    }
}

/// The record of `id` in `map`, made from `ev` when there is none (the key is copied only
/// then).
fn content_of<'m>(
    map: &'m mut BTreeMap<Arc<str>, Content>,
    id: &str,
    ev: &Event,
) -> &'m mut Content {
    if !map.contains_key(id) {
        map.insert(Arc::from(id), Content::of(ev));
    }
    map.get_mut(id)
        .unwrap_or_else(|| unreachable!("inserted above"))
}

/// Settings of the user record windows.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Windows {
    /// Days kept behind the latest day (`daily_retention_days`).
    pub retention_days: i64,
    /// `rolling_window_days` in microseconds.
    pub rolling_micros: i64,
}

/// What applying a contribution dropped or skipped.
#[derive(Debug, Default)]
pub(crate) struct Applied {
    /// Events of days past retention (not loaded into user_daily).
    pub too_old: u64,
    /// Days that fell out of retention.
    pub evicted: Vec<DayCounts>,
}

/// Folds a contribution into a visitor record.
pub(crate) fn apply_user(u: &mut User, c: &Contribution, w: Windows) -> Applied {
    let mut applied = Applied::default();
    u.first_seen = u.first_seen.min(c.first_seen);
    u.last_seen = u.last_seen.max(c.last_seen);
    u.pageviews += c.pageviews;
    u.engaged_time += c.engaged_time;
    u.videoviews += c.videoviews;
    u.video_engaged_time += c.video_engaged_time;
    u.custom_events += c.custom_events;
    u.sessions += 1;
    if c.on_time {
        u.on_time_sessions += 1;
    }
    if let Some((ts, id, v)) = &c.last_extra
        && (*ts, &**id) >= (u.last_extra_ts, &*u.last_extra_id)
    {
        u.last_extra = v.clone();
        u.last_extra_ts = *ts;
        u.last_extra_id = id.clone();
    }
    for delta in c.days.values() {
        let day = delta.counts.day;
        if let Some(latest) = u.days.last().map(|d| d.day)
            && i64::from(day) <= i64::from(latest) - w.retention_days
        {
            applied.too_old += delta.events;
            continue;
        }
        match u.days.binary_search_by_key(&day, |d| d.day) {
            Ok(i) => {
                if let Some(d) = u.days.get_mut(i) {
                    d.add(&delta.counts);
                }
            }
            Err(i) => u.days.insert(i, delta.counts.clone()),
        }
    }
    if let Some(latest) = u.days.last().map(|d| d.day) {
        let keep_from = u
            .days
            .partition_point(|d| i64::from(d.day) <= i64::from(latest) - w.retention_days);
        applied.evicted = u.days.drain(..keep_from).collect();
    }
    for &t in &c.pv_ts {
        let i = u.pv_ts.partition_point(|&x| x <= t);
        u.pv_ts.insert(i, t);
    }
    if let Some(&latest) = u.pv_ts.last() {
        let cut = u
            .pv_ts
            .partition_point(|&t| t < latest.saturating_sub(w.rolling_micros));
        u.pv_ts.drain(..cut);
    }
    applied
}

/// Merges each record of `src` into `dst`.
fn fold_in<K, R>(
    dst: &mut HashMap<K, R>,
    src: impl IntoIterator<Item = (K, R)>,
    merge: fn(&mut R, &R),
) where
    K: Eq + std::hash::Hash,
{
    for (k, p) in src {
        match dst.get_mut(&k) {
            Some(r) => merge(r, &p),
            None => {
                dst.insert(k, p);
            }
        }
    }
}

/// `base`'s record merged with `overlay`'s, whichever exist.
fn overlaid<R: Clone>(base: Option<&R>, overlay: Option<&R>, merge: fn(&mut R, &R)) -> Option<R> {
    match (base, overlay) {
        (Some(b), Some(o)) => {
            let mut r = b.clone();
            merge(&mut r, o);
            Some(r)
        }
        (b, o) => b.or(o).cloned(),
    }
}

/// Post, video and campaign records: the totals every visitor adds to, so kept once, after
/// the split by visitor. Also the shape of what sessions add to them (a delta).
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub(crate) struct ContentTotals {
    #[serde(with = "ser::sorted_map")]
    pub posts: HashMap<Arc<str>, Content>,
    #[serde(with = "ser::sorted_map")]
    pub videos: HashMap<Arc<str>, Content>,
    #[serde(with = "ser::sorted_map")]
    pub campaigns: HashMap<Key, Campaign>,
}

impl ContentTotals {
    /// Moves the content part of a session's contribution in (its maps are left empty).
    pub(crate) fn take_from(&mut self, c: &mut Contribution) {
        fold_in(
            &mut self.posts,
            std::mem::take(&mut c.posts),
            Content::merge,
        );
        fold_in(
            &mut self.videos,
            std::mem::take(&mut c.videos),
            Content::merge,
        );
        fold_in(
            &mut self.campaigns,
            std::mem::take(&mut c.campaigns),
            Campaign::merge,
        );
    }

    /// Folds a delta in. Merging is associative and commutative (sums, minima, maxima and
    /// the latest by `(ts_action, event_id)`), so the order of the deltas does not matter.
    pub(crate) fn merge(&mut self, delta: ContentTotals) {
        fold_in(&mut self.posts, delta.posts, Content::merge);
        fold_in(&mut self.videos, delta.videos, Content::merge);
        fold_in(&mut self.campaigns, delta.campaigns, Campaign::merge);
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.posts.is_empty() && self.videos.is_empty() && self.campaigns.is_empty()
    }

    pub(crate) fn post(&self, k: &Arc<str>, overlay: &ContentTotals) -> Option<Content> {
        overlaid(self.posts.get(k), overlay.posts.get(k), Content::merge)
    }

    pub(crate) fn video(&self, k: &Arc<str>, overlay: &ContentTotals) -> Option<Content> {
        overlaid(self.videos.get(k), overlay.videos.get(k), Content::merge)
    }

    pub(crate) fn campaign(&self, k: &Key, overlay: &ContentTotals) -> Option<Campaign> {
        overlaid(
            self.campaigns.get(k),
            overlay.campaigns.get(k),
            Campaign::merge,
        )
    }

    /// Approximate bytes held (records, keys and hash table slots).
    pub(crate) fn bytes(&self) -> usize {
        let slot = 16;
        self.posts
            .iter()
            .chain(self.videos.iter())
            .map(|(k, c)| k.len() + 16 + slot + c.bytes())
            .sum::<usize>()
            + self
                .campaigns
                .iter()
                .map(|(k, c)| k.len() + 16 + slot + c.bytes())
                .sum::<usize>()
    }
}

/// Approximate bytes of the visitor records (records, keys and hash table slots).
pub(crate) fn users_bytes(users: &HashMap<Key, User>) -> usize {
    users
        .iter()
        .map(|(k, u)| k.len() + 16 + 16 + u.bytes())
        .sum()
}

/// Every record the sessionizer keeps across runs, as the checkpoint stores it (postcard
/// writes the nested content fields as if they were inline: the format is unchanged).
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub(crate) struct Totals {
    #[serde(with = "ser::sorted_map")]
    pub users: HashMap<Key, User>,
    pub content: ContentTotals,
}

/// The event's `event_id`, shared (no copy of the text).
pub(crate) fn event_id(ev: &Event) -> Arc<str> {
    ev.arc(Field::EventId)
        .unwrap_or_else(|| Arc::from(ev.event_id()))
}
