//! The simulation: visitors, their sessions, pages, videos and the events they send, as
//! compact records. Rendering to JSON happens later, object by object.

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::catalog::Catalog;
use crate::config::GenConfig;
use crate::tables::{CAMPAIGNS, CITIES, DEVICES, REFERRERS, SUBSCRIBE};

pub(crate) const SEC: i64 = 1000;
pub(crate) const MIN: i64 = 60 * SEC;
pub(crate) const HOUR: i64 = 60 * MIN;
pub(crate) const DAY: i64 = 24 * HOUR;

/// Device index meaning the crawler profile.
pub(crate) const BOT_DEVICE: u16 = u16::MAX;
/// `Ev::play` of an event that is not a video event.
pub(crate) const NO_PLAY: u32 = u32::MAX;

/// SplitMix64 finaliser: a bijection on u64, so distinct counters give distinct ids.
pub(crate) fn mix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum UserKind {
    /// No `extra_data` at all.
    Unknown,
    /// `{"user_type":"anonymous"}` until a `_subscribe` event, subscriber after.
    Anonymous,
    Subscriber,
}

pub(crate) struct Visitor {
    /// Seed of `visitor_site_id`, `visitor_ip`, `visitor_network_id`.
    pub key: u64,
    pub city: u16,
    pub device: u16,
    pub has_network_id: bool,
    pub kind: UserKind,
    /// Epoch ms of the first `_subscribe` event; `i64::MAX` when none.
    pub subscribed_at: i64,
    /// Sessions before the generated range (the tracker's `session_id` counts on from them).
    pub prior_sessions: u32,
    pub prior_last_ms: i64,
    /// A client that sends some numbers and bools as strings (leniency).
    pub quirky: bool,
}

pub(crate) struct Session {
    pub visitor: u32,
    pub start_ms: i64,
    /// Tracker `session_id`: the visitor's session number.
    pub number: u32,
    /// Start of the visitor's previous session (its own start for a first session).
    pub last_ms: i64,
    /// First page: its url and referrer are the session's `surl_*` and `sref_*`.
    pub landing: u32,
    pub amp: bool,
}

/// A url on the site.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct UrlRef {
    pub content: u32,
    pub amp: bool,
    /// `CAMPAIGNS` index + 1, or 0 for an untagged url.
    pub campaign: u8,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Ref {
    Direct,
    External(u8),
    Internal(UrlRef),
}

pub(crate) struct Page {
    pub session: u32,
    pub url: UrlRef,
    pub referrer: Ref,
    pub pageview_id: u64,
    pub pageload_id: u64,
    /// False: the crawler has not seen the page; every `metadata_*` is null.
    pub meta: bool,
}

pub(crate) struct Play {
    pub video: u32,
    pub videostart_id: u64,
}

/// What a line holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Kind {
    Pageview,
    Heartbeat,
    Videostart,
    Vheartbeat,
    Custom(u8),
    /// A crawler's pageview.
    Bot,
    /// A malformed line (never an event).
    Bad(Bad),
    /// An empty or whitespace-only line.
    Blank,
}

/// The ways a line is broken on purpose, one per SPEC.md section 2 error reason.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Bad {
    Truncated,
    NotObject,
    NoAction,
    NoRequired,
    Timestamp,
    Utf8,
}

impl Bad {
    pub const ALL: [Bad; 6] = [
        Bad::Truncated,
        Bad::NotObject,
        Bad::NoAction,
        Bad::NoRequired,
        Bad::Timestamp,
        Bad::Utf8,
    ];
    pub fn reason(self) -> dpl_core::ErrorReason {
        use dpl_core::ErrorReason as R;
        match self {
            Bad::Truncated => R::InvalidJson,
            Bad::NotObject => R::NotAnObject,
            Bad::NoAction => R::MissingAction,
            Bad::NoRequired => R::MissingRequiredField,
            Bad::Timestamp => R::UnparseableRequiredField,
            Bad::Utf8 => R::InvalidUtf8,
        }
    }
}

/// One line to write.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Ev {
    /// `ts_action` in epoch ms (the text form may drop the milliseconds).
    pub ts_ms: i64,
    /// When DPL writes it: decides the object and the place in it.
    pub delivery_ms: i64,
    /// Seed of `event_id` and of the per-line encoding choices; unique per line, shared by
    /// the copies of a duplicate.
    pub id: u64,
    pub page: u32,
    pub play: u32,
    pub kind: Kind,
    pub inc: u8,
    /// An extra copy of an earlier line.
    pub dup: bool,
}

/// Everything generated, before ordering into objects.
pub(crate) struct Plan {
    pub catalog: Catalog,
    pub visitors: Vec<Visitor>,
    pub sessions: Vec<Session>,
    pub pages: Vec<Page>,
    pub plays: Vec<Play>,
    /// Valid events (humans first, then crawlers), then the lines added afterwards.
    pub evs: Vec<Ev>,
    /// `evs[..human]` are the visitors' events, `evs[human..valid]` the crawlers'.
    pub human: usize,
    /// `evs[..valid]` are first copies of valid events.
    pub valid: usize,
    /// The next unused id.
    pub next_id: u64,
    pub start_ms: i64,
    pub end_ms: i64,
    pub salt: u64,
}

/// Line budget of a configuration: (human events, bot events, duplicates, malformed lines).
pub(crate) fn budget(events: u64) -> (u64, u64, u64, u64) {
    let bad = (events as f64 * 0.002).round() as u64;
    let dup = (events as f64 * 0.005).round() as u64;
    let valid = events.saturating_sub(bad + dup);
    let bot = (valid as f64 * 0.02).round() as u64;
    (valid - bot, bot, dup, bad)
}

const SESSION_GAP: i64 = 31 * MIN;
/// Relative traffic by local (UTC-5) hour of day.
const DIURNAL: [f64; 24] = [
    0.25, 0.15, 0.1, 0.08, 0.08, 0.12, 0.3, 0.6, 0.85, 1.0, 0.95, 0.85, 0.85, 0.8, 0.75, 0.7, 0.7,
    0.75, 0.8, 0.9, 0.95, 0.85, 0.6, 0.4,
];

struct Builder {
    rng: ChaCha8Rng,
    plan: Plan,
    /// Per visitor, busy intervals (session start - gap, end + gap), sorted.
    busy: Vec<Vec<(i64, i64)>>,
    zipf_cum: Vec<f64>,
    next_unused: u32,
    next_id: u64,
    city_cum: Vec<u32>,
    device_cum: Vec<u32>,
    ref_cum: Vec<u32>,
}

pub(crate) fn build(cfg: &GenConfig) -> Plan {
    let start_ms = i64::from(dpl_core::day_number(cfg.start_date)) * DAY;
    let days = i64::from(cfg.days.max(1));
    let end_ms = start_ms + days * DAY;
    let mut cat_rng = ChaCha8Rng::seed_from_u64(cfg.seed ^ 0x0c47_a10c);
    let catalog = Catalog::new(&mut cat_rng, &cfg.apikey, start_ms, end_ms - start_ms);
    let (human, bot, _, _) = budget(cfg.events);
    let n_visitors = cfg
        .visitors
        .unwrap_or(cfg.events / 20)
        .clamp(1, u64::from(u32::MAX - 1));
    let mut b = Builder {
        rng: ChaCha8Rng::seed_from_u64(cfg.seed),
        plan: Plan {
            catalog,
            visitors: Vec::new(),
            sessions: Vec::new(),
            pages: Vec::new(),
            plays: Vec::new(),
            evs: Vec::with_capacity(cfg.events as usize + cfg.events as usize / 100),
            human: 0,
            valid: 0,
            next_id: 0,
            start_ms,
            end_ms,
            salt: mix(cfg.seed ^ 0x5a17),
        },
        busy: Vec::new(),
        zipf_cum: Vec::new(),
        next_unused: 0,
        next_id: 1,
        city_cum: cumulative(CITIES.iter().map(|c| c.weight)),
        device_cum: cumulative(DEVICES.iter().map(|d| d.weight)),
        ref_cum: cumulative(REFERRERS.iter().map(|r| r.weight)),
    };
    b.make_visitors(n_visitors as u32);
    b.human_sessions(human);
    b.plan.human = b.plan.evs.len();
    b.bot_crawls(bot);
    b.number_sessions();
    b.conversions();
    b.plan.valid = b.plan.evs.len();
    b.plan.next_id = b.next_id + 1;
    b.plan
}

fn cumulative(w: impl Iterator<Item = u32>) -> Vec<u32> {
    let mut t = 0;
    w.map(|x| {
        t += x;
        t
    })
    .collect()
}

fn pick(rng: &mut ChaCha8Rng, cum: &[u32]) -> usize {
    let total = cum.last().copied().unwrap_or(1).max(1);
    let u = rng.random_range(0..total);
    cum.partition_point(|c| *c <= u)
        .min(cum.len().saturating_sub(1))
}

impl Builder {
    fn id(&mut self) -> u64 {
        self.next_id += 1;
        self.next_id
    }

    fn new_visitor(&mut self) -> u32 {
        let rng = &mut self.rng;
        let kind = match rng.random_range(0..100) {
            0..=9 => UserKind::Subscriber,
            10..=59 => UserKind::Anonymous,
            _ => UserKind::Unknown,
        };
        let prior = if rng.random_bool(0.3) {
            rng.random_range(1..60)
        } else {
            0
        };
        let v = Visitor {
            key: rng.random(),
            city: pick(rng, &self.city_cum) as u16,
            device: pick(rng, &self.device_cum) as u16,
            has_network_id: rng.random_bool(0.6),
            kind,
            subscribed_at: i64::MAX,
            prior_sessions: prior,
            prior_last_ms: self.plan.start_ms - rng.random_range(HOUR..30 * DAY),
            quirky: rng.random_bool(0.02),
        };
        self.plan.visitors.push(v);
        self.busy.push(Vec::new());
        (self.plan.visitors.len() - 1) as u32
    }

    fn make_visitors(&mut self, n: u32) {
        self.plan.visitors.reserve(n as usize);
        for _ in 0..n {
            self.new_visitor();
        }
        // Returning visitors are drawn Zipf-like by index: a few very active, a long tail.
        let mut t = 0.0;
        self.zipf_cum = (0..n)
            .map(|i| {
                t += 1.0 / f64::from(i + 3).powf(1.15);
                t
            })
            .collect();
    }

    /// A session start, denser in the (New York) day than at night.
    fn session_start(&mut self) -> i64 {
        let (s, e) = (self.plan.start_ms, self.plan.end_ms);
        if self.rng.random_bool(0.01) {
            // Started before the data: its first events fall outside it, leaving heartbeats
            // whose pageview is not in the files.
            return s - self.rng.random_range(10 * SEC..4 * MIN);
        }
        loop {
            let t = self.rng.random_range(s..e - MIN);
            let local_hour = (t - 5 * HOUR).rem_euclid(DAY) / HOUR;
            let w = DIURNAL.get(local_hour as usize).copied().unwrap_or(1.0);
            if self.rng.random::<f64>() < w {
                return t;
            }
        }
    }

    fn free(&self, v: u32, start: i64, end: i64) -> bool {
        let Some(busy) = self.busy.get(v as usize) else {
            return false;
        };
        let i = busy.partition_point(|(_, e)| *e < start);
        busy.get(i).is_none_or(|(s, _)| *s > end)
    }

    /// A visitor for a session over `[start, end]` whose other sessions are all more than
    /// half an hour away, so the pipeline splits sessions where the tracker did.
    fn choose_visitor(&mut self, start: i64, end: i64, remaining: u64) -> Option<u32> {
        // Visitors `next_unused..n0` have no session yet, so they are always free.
        let n0 = self.zipf_cum.len() as u32;
        let unused = u64::from(n0 - self.next_unused);
        // Spread new visitors over the run: a new one with probability unused/sessions left.
        let sessions_left = (remaining / 14).max(1);
        let p_new = (unused as f64 / sessions_left as f64).min(1.0);
        if self.next_unused < n0 && (self.next_unused == 0 || self.rng.random_bool(p_new)) {
            let v = self.next_unused;
            self.next_unused += 1;
            return Some(v);
        }
        // Zipf draws among the visitors seen so far, then a new visitor, then anyone.
        for attempt in 0..12 {
            let v = if attempt < 4 {
                let hi = self.next_unused.max(1) as usize;
                let total = self.zipf_cum.get(hi - 1).copied().unwrap_or(1.0);
                let u = self.rng.random::<f64>() * total;
                let prefix = self.zipf_cum.get(..hi).unwrap_or(&[]);
                prefix.partition_point(|c| *c <= u).min(hi - 1) as u32
            } else if self.next_unused < n0 {
                let v = self.next_unused;
                self.next_unused += 1;
                return Some(v);
            } else {
                self.rng.random_range(0..self.plan.visitors.len() as u32)
            };
            if self.free(v, start, end) {
                return Some(v);
            }
        }
        // Every visitor tried is busy then: add one rather than miss the event count.
        Some(self.new_visitor())
    }

    fn human_sessions(&mut self, budget: u64) {
        let mut made = 0u64;
        let mut failures = 0u32;
        while made < budget && failures < 10_000 {
            let start = self.session_start();
            let s_idx = self.plan.sessions.len() as u32;
            let (p0, y0, e0) = (
                self.plan.pages.len(),
                self.plan.plays.len(),
                self.plan.evs.len(),
            );
            let amp = self.rng.random_bool(0.04);
            let landing = self.session_events(s_idx, start, amp);
            let evs = &mut self.plan.evs[e0..];
            evs.sort_by_key(|e| e.ts_ms);
            // Only events inside the generated days are written.
            let (start_ms, end_ms) = (self.plan.start_ms, self.plan.end_ms);
            let before = evs.iter().take_while(|e| e.ts_ms < start_ms).count();
            self.plan.evs.drain(e0..e0 + before);
            let keep = self.plan.evs[e0..]
                .iter()
                .take_while(|e| e.ts_ms < end_ms)
                .count()
                .min((budget - made) as usize);
            self.plan.evs.truncate(e0 + keep);
            let end = self.plan.evs.last().map_or(start, |e| e.ts_ms);
            let visitor = if keep == 0 {
                None
            } else {
                self.choose_visitor(start, end, budget - made)
            };
            let Some(visitor) = visitor else {
                self.plan.pages.truncate(p0);
                self.plan.plays.truncate(y0);
                self.plan.evs.truncate(e0);
                failures += 1;
                continue;
            };
            if let Some(busy) = self.busy.get_mut(visitor as usize) {
                let iv = (start - SESSION_GAP, end + SESSION_GAP);
                let i = busy.partition_point(|b| *b < iv);
                busy.insert(i, iv);
            }
            self.plan.sessions.push(Session {
                visitor,
                start_ms: start,
                number: 1,
                last_ms: start,
                landing,
                amp,
            });
            made += keep as u64;
        }
    }

    fn referrer(&mut self) -> Ref {
        match self.rng.random_range(0..100) {
            0..=29 => Ref::Direct,
            30..=94 => Ref::External(pick(&mut self.rng, &self.ref_cum) as u8),
            _ => {
                // Came from another tab of the site.
                let c = self
                    .plan
                    .catalog
                    .pick_post(&mut self.rng, self.plan.start_ms);
                Ref::Internal(UrlRef {
                    content: c,
                    amp: false,
                    campaign: 0,
                })
            }
        }
    }

    fn new_page(&mut self, session: u32, url: UrlRef, referrer: Ref) -> u32 {
        let meta = !self.rng.random_bool(0.03);
        let pageview_id = self.id();
        let pageload_id = self.id();
        self.plan.pages.push(Page {
            session,
            url,
            referrer,
            pageview_id,
            pageload_id,
            meta,
        });
        (self.plan.pages.len() - 1) as u32
    }

    fn push(&mut self, ts_ms: i64, page: u32, play: u32, kind: Kind, inc: u8) {
        let id = self.id();
        self.plan.evs.push(Ev {
            ts_ms,
            delivery_ms: ts_ms,
            id,
            page,
            play,
            kind,
            inc,
            dup: false,
        });
    }

    /// Heartbeats (or vheartbeats) from `t` until `engaged` seconds are reported; returns
    /// the time of the last one.
    fn beats(&mut self, mut t: i64, engaged: i64, page: u32, play: u32, kind: Kind) -> i64 {
        let mut total = 0;
        let mut n = 0;
        while total < engaged && n < 200 {
            let inc = self.rng.random_range(5..=15u8);
            t += i64::from(inc) * SEC + self.rng.random_range(0..900);
            total += i64::from(inc);
            n += 1;
            self.push(t, page, play, kind, inc);
        }
        t
    }

    /// Generates one session's pages and events from `start`; returns the landing page.
    fn session_events(&mut self, session: u32, start: i64, amp: bool) -> u32 {
        let utm = self.rng.random_bool(0.15);
        let campaign = if utm {
            self.rng.random_range(0..CAMPAIGNS.len())
        } else {
            0
        };
        let entry_ref = match (utm, CAMPAIGNS.get(campaign)) {
            (true, Some(c)) => c.referrer.map_or(Ref::Direct, |r| Ref::External(r as u8)),
            _ => self.referrer(),
        };
        let n_pages = {
            let mut n = 1;
            while n < 25 && self.rng.random_bool(0.5) {
                n += 1;
            }
            n
        };
        let mut t = start;
        let mut prev: Option<UrlRef> = None;
        let mut landing = 0;
        for i in 0..n_pages {
            let content = match (i, self.rng.random_range(0..100)) {
                (0, 0..=9) | (1.., 0..=4) => 0,
                (_, 10..=14) => {
                    Catalog::first_section() + self.rng.random_range(0..Catalog::sections())
                }
                _ => self.plan.catalog.pick_post(&mut self.rng, t),
            };
            let url = UrlRef {
                content,
                amp,
                campaign: if i == 0 && utm { campaign as u8 + 1 } else { 0 },
            };
            let referrer = prev.map_or(entry_ref, Ref::Internal);
            let page = self.new_page(session, url, referrer);
            if i == 0 {
                landing = page;
            }
            self.push(t, page, NO_PLAY, Kind::Pageview, 0);
            let (words, video) = self
                .plan
                .catalog
                .pages
                .get(content as usize)
                .map_or((None, None), |c| (c.words, c.video));
            let full = words.map_or(40, |w| w * 60 / 230).max(10);
            let engaged = match self.rng.random_range(0..100) {
                0..=29 => self.rng.random_range(0..10),
                30..=74 => self.rng.random_range(10..=full.clamp(11, 90)),
                _ => (full as f64 * self.rng.random_range(0.3..1.0)) as i64,
            }
            .min(900);
            let mut end = self.beats(t, engaged, page, NO_PLAY, Kind::Heartbeat);
            if let Some(video) = video
                && self.rng.random_bool(0.35)
            {
                let duration = self
                    .plan
                    .catalog
                    .videos
                    .get(video as usize)
                    .map_or(60, |v| v.duration_s);
                let vs = t + self.rng.random_range(3..30) * SEC;
                let videostart_id = self.id();
                self.plan.plays.push(Play {
                    video,
                    videostart_id,
                });
                let play = (self.plan.plays.len() - 1) as u32;
                self.push(vs, page, play, Kind::Videostart, 0);
                let watch = ((duration as f64) * self.rng.random_range(0.05..1.0)) as i64;
                let vend = self.beats(vs, watch.min(1800), page, play, Kind::Vheartbeat);
                end = end.max(vend);
            }
            if self.rng.random_bool(0.06) {
                let action = match self.rng.random_range(0..100) {
                    0..=29 => 0,
                    30..=44 => 1,
                    45..=64 => 2,
                    65..=79 => SUBSCRIBE,
                    _ => 4,
                };
                let at = t + self.rng.random_range(SEC..(end - t).max(2 * SEC));
                self.push(at, page, NO_PLAY, Kind::Custom(action), 0);
            }
            if self.rng.random_bool(0.03) {
                // Reload: a new page load of the same pageview (same pageview_key fields).
                let reload_at = end + self.rng.random_range(2..20) * SEC;
                let pageview_id = self
                    .plan
                    .pages
                    .get(page as usize)
                    .map_or(0, |p| p.pageview_id);
                let reload = self.new_page(session, url, referrer);
                if let Some(p) = self.plan.pages.get_mut(reload as usize) {
                    p.pageview_id = pageview_id;
                }
                let meta = self.plan.pages.get(page as usize).is_none_or(|p| p.meta);
                if let Some(p) = self.plan.pages.get_mut(reload as usize) {
                    p.meta = meta;
                }
                self.push(reload_at, reload, NO_PLAY, Kind::Pageview, 0);
                let more = self.rng.random_range(0..60);
                end = self.beats(reload_at, more, reload, NO_PLAY, Kind::Heartbeat);
            }
            let gap = match self.rng.random_range(0..100) {
                0..=69 => self.rng.random_range(2 * SEC..60 * SEC),
                70..=94 => self.rng.random_range(MIN..8 * MIN),
                _ => self.rng.random_range(10 * MIN..29 * MIN),
            };
            t = end + gap;
            prev = Some(url);
        }
        landing
    }

    /// Googlebot: bursts of pageviews without heartbeats, a new visitor id each crawl.
    fn bot_crawls(&mut self, budget: u64) {
        let mut made = 0;
        while made < budget {
            let v = self.new_visitor();
            if let Some(vis) = self.plan.visitors.get_mut(v as usize) {
                vis.device = BOT_DEVICE;
                vis.kind = UserKind::Unknown;
                vis.prior_sessions = 0;
                vis.city = 7;
            }
            let start = self
                .rng
                .random_range(self.plan.start_ms..self.plan.end_ms - 10 * MIN);
            let n = self.rng.random_range(1..=12u64).min(budget - made);
            let session = self.plan.sessions.len() as u32;
            let mut t = start;
            let mut landing = 0;
            for i in 0..n {
                let content = self.plan.catalog.pick_post(&mut self.rng, t);
                let url = UrlRef {
                    content,
                    amp: false,
                    campaign: 0,
                };
                let page = self.new_page(session, url, Ref::Direct);
                if i == 0 {
                    landing = page;
                }
                self.push(t, page, NO_PLAY, Kind::Bot, 0);
                t += self.rng.random_range(SEC..20 * SEC);
            }
            self.plan.sessions.push(Session {
                visitor: v,
                start_ms: start,
                number: 1,
                last_ms: start,
                landing,
                amp: false,
            });
            made += n;
        }
    }

    /// Numbers each visitor's sessions in time order, as the tracker's `session_id` does.
    fn number_sessions(&mut self) {
        let mut order: Vec<u32> = (0..self.plan.sessions.len() as u32).collect();
        let sessions = &self.plan.sessions;
        order.sort_by_key(|&i| {
            sessions
                .get(i as usize)
                .map_or((0, 0), |s| (s.visitor, s.start_ms))
        });
        let mut prev: Option<(u32, u32, i64)> = None;
        for i in order {
            let Some(s) = self.plan.sessions.get(i as usize) else {
                continue;
            };
            let (number, last) = match prev {
                Some((v, n, last)) if v == s.visitor => (n + 1, last),
                _ => {
                    let vis = self.plan.visitors.get(s.visitor as usize);
                    match vis {
                        Some(v) if v.prior_sessions > 0 => (v.prior_sessions + 1, v.prior_last_ms),
                        _ => (1, s.start_ms),
                    }
                }
            };
            let (visitor, start) = (s.visitor, s.start_ms);
            if let Some(s) = self.plan.sessions.get_mut(i as usize) {
                s.number = number;
                s.last_ms = last;
            }
            prev = Some((visitor, number, start));
        }
    }

    /// Marks when visitors who were not subscribers sent their first `_subscribe`.
    fn conversions(&mut self) {
        for e in &self.plan.evs {
            if e.kind != Kind::Custom(SUBSCRIBE) {
                continue;
            }
            let v = self
                .plan
                .pages
                .get(e.page as usize)
                .and_then(|p| self.plan.sessions.get(p.session as usize))
                .map(|s| s.visitor);
            if let Some(vis) = v.and_then(|v| self.plan.visitors.get_mut(v as usize))
                && vis.kind != UserKind::Subscriber
            {
                vis.subscribed_at = vis.subscribed_at.min(e.ts_ms);
            }
        }
    }
}
