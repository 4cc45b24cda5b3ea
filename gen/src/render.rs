//! Renders one planned line as DPL JSON text.
//!
//! Every choice made here comes from a hash of the line's id, never from a shared random
//! stream, so a line renders the same in any object, on any thread, and a duplicate is a
//! byte-exact copy of its original.

use dpl_core::Field;

use crate::json::{Obj, Override, TsForm, push_i64, push_str, push_ts, push_uuid};
use crate::plan::{BOT_DEVICE, Bad, Ev, Kind, NO_PLAY, Plan, Ref, UrlRef, UserKind, Visitor, mix};
use crate::tables::{
    CAMPAIGNS, CITIES, CUSTOM_ACTIONS, City, DEVICES, Device, GOOGLEBOT, REFERRERS, Referrer,
};

/// The text form of `ts_action` for a line with hash `h`.
pub(crate) fn ts_form(h: u64) -> TsForm {
    match h % 100 {
        0..=83 => TsForm::Plain,
        84..=93 => TsForm::Millis,
        94..=96 => TsForm::TMillis,
        97..=98 => TsForm::T,
        _ => TsForm::TMillisZ,
    }
}

/// The per-line hash that drives every encoding choice.
pub(crate) fn line_hash(plan: &Plan, id: u64) -> u64 {
    mix(id ^ plan.salt)
}

/// The `ts_action` a decoder reads back from the line, in UTC microseconds.
pub(crate) fn parsed_ts(plan: &Plan, ev: &Ev) -> i64 {
    ts_form(line_hash(plan, ev.id)).parsed_micros(ev.ts_ms)
}

/// Prefix of a url's field group.
#[derive(Clone, Copy)]
struct UrlFields {
    full: Option<Field>,
    clean: Field,
    domain: Field,
    fragment: Field,
    netloc: Field,
    params: Field,
    path: Field,
    query: Field,
    scheme: Field,
}

const URL: UrlFields = UrlFields {
    full: Some(Field::Url),
    clean: Field::UrlClean,
    domain: Field::UrlDomain,
    fragment: Field::UrlFragment,
    netloc: Field::UrlNetloc,
    params: Field::UrlParams,
    path: Field::UrlPath,
    query: Field::UrlQuery,
    scheme: Field::UrlScheme,
};
const SURL: UrlFields = UrlFields {
    full: None,
    clean: Field::SurlClean,
    domain: Field::SurlDomain,
    fragment: Field::SurlFragment,
    netloc: Field::SurlNetloc,
    params: Field::SurlParams,
    path: Field::SurlPath,
    query: Field::SurlQuery,
    scheme: Field::SurlScheme,
};
const REF: UrlFields = UrlFields {
    full: Some(Field::Referrer),
    clean: Field::RefClean,
    domain: Field::RefDomain,
    fragment: Field::RefFragment,
    netloc: Field::RefNetloc,
    params: Field::RefParams,
    path: Field::RefPath,
    query: Field::RefQuery,
    scheme: Field::RefScheme,
};
const SREF: UrlFields = UrlFields {
    full: None,
    clean: Field::SrefClean,
    domain: Field::SrefDomain,
    fragment: Field::SrefFragment,
    netloc: Field::SrefNetloc,
    params: Field::SrefParams,
    path: Field::SrefPath,
    query: Field::SrefQuery,
    scheme: Field::SrefScheme,
};

/// Reusable scratch space for rendering lines.
pub(crate) struct Renderer<'p> {
    plan: &'p Plan,
    netloc: String,
    base: String,
    url: String,
    path: String,
    query: String,
    tmp: Vec<u8>,
}

impl<'p> Renderer<'p> {
    pub fn new(plan: &'p Plan, apikey: &str) -> Renderer<'p> {
        Renderer {
            plan,
            netloc: format!("www.{apikey}"),
            base: format!("https://www.{apikey}"),
            url: String::new(),
            path: String::new(),
            query: String::new(),
            tmp: Vec::with_capacity(4096),
        }
    }

    /// Appends the line for `ev` (without its newline) to `buf`.
    pub fn line(&mut self, ev: &Ev, apikey: &str, buf: &mut Vec<u8>) {
        let h = line_hash(self.plan, ev.id);
        match ev.kind {
            Kind::Blank => {
                let blank: &[u8] = match h % 3 {
                    0 => b"",
                    1 => b"   ",
                    _ => b" \t",
                };
                buf.extend_from_slice(blank);
            }
            Kind::Bad(bad) => self.bad(ev, bad, h, apikey, buf),
            _ => self.event(ev, h, apikey, None, buf),
        }
    }

    fn bad(&mut self, ev: &Ev, bad: Bad, h: u64, apikey: &str, buf: &mut Vec<u8>) {
        let v = h >> 8;
        match bad {
            Bad::NotObject => {
                let s: &[u8] = match v % 4 {
                    0 => b"[1,2]",
                    1 => b"\"pageview\"",
                    2 => b"42",
                    _ => b"[{\"action\":\"pageview\",\"apikey\":\"x\"}]",
                };
                buf.extend_from_slice(s);
            }
            Bad::Truncated => {
                let mut tmp = std::mem::take(&mut self.tmp);
                tmp.clear();
                self.event(ev, h, apikey, None, &mut tmp);
                // Cut inside the object (never after its last brace), on a char boundary.
                let mut cut = tmp.len() * (30 + (v % 60) as usize) / 100;
                while cut > 1 && (tmp.get(cut).is_some_and(|b| (b & 0xc0) == 0x80)) {
                    cut -= 1;
                }
                buf.extend_from_slice(tmp.get(..cut.max(1)).unwrap_or(&[]));
                self.tmp = tmp;
            }
            Bad::NoAction => {
                let ov = match v % 3 {
                    0 => Override::Omit,
                    1 => Override::Null,
                    _ => Override::Empty,
                };
                self.event(ev, h, apikey, Some((Field::Action, ov)), buf);
            }
            Bad::NoRequired => {
                let f = match v % 4 {
                    0 => Field::Apikey,
                    1 => Field::EventId,
                    2 => Field::VisitorSiteId,
                    _ => Field::TsAction,
                };
                let ov = if (v >> 4).is_multiple_of(3) {
                    Override::Empty
                } else {
                    Override::Omit
                };
                self.event(ev, h, apikey, Some((f, ov)), buf);
            }
            Bad::Timestamp => {
                let s = match v % 5 {
                    0 => "2026/11/01 10:00:00",
                    1 => "01-11-2026 10:00",
                    2 => "2026-11-31 10:00:00",
                    3 => "yesterday",
                    _ => "2026-11-01 25:61:00",
                };
                self.event(
                    ev,
                    h,
                    apikey,
                    Some((Field::TsAction, Override::Text(s))),
                    buf,
                );
            }
            Bad::Utf8 => {
                let start = buf.len();
                self.event(ev, h, apikey, None, buf);
                // Latin-1 bytes inside the user agent, as a broken proxy would send them.
                let needle = b"\"user_agent\":\"";
                let at = buf
                    .get(start..)
                    .and_then(|line| line.windows(needle.len()).position(|w| w == needle))
                    .map_or(buf.len(), |p| start + p + needle.len());
                let at = at.min(buf.len());
                buf.splice(at..at, [0xe9u8, 0xff, b'x']);
            }
        }
    }

    fn event(
        &mut self,
        ev: &Ev,
        h: u64,
        apikey: &str,
        ov: Option<(Field, Override)>,
        buf: &mut Vec<u8>,
    ) {
        let plan = self.plan;
        let Some(page) = plan.pages.get(ev.page as usize) else {
            return;
        };
        let Some(session) = plan.sessions.get(page.session as usize) else {
            return;
        };
        let Some(visitor) = plan.visitors.get(session.visitor as usize) else {
            return;
        };
        let landing = plan.pages.get(session.landing as usize).unwrap_or(page);
        let device: &Device = if visitor.device == BOT_DEVICE {
            &GOOGLEBOT
        } else {
            DEVICES
                .get(usize::from(visitor.device))
                .unwrap_or(&GOOGLEBOT)
        };
        let city: Option<&City> = CITIES.get(usize::from(visitor.city));
        let quirky = visitor.quirky;
        let lenient = |bits: u32, pct: u64| quirky || (h >> bits) % 100 < pct;
        let missing = (h >> 40) % 100 < 3;
        let bool_word = |bits: u32| lenient(bits, 2).then_some(h >> (bits + 7));

        buf.push(b'{');
        let mut o = Obj::new(buf, ov);
        let action = match ev.kind {
            Kind::Pageview | Kind::Bot => "pageview",
            Kind::Heartbeat => "heartbeat",
            Kind::Videostart => "videostart",
            Kind::Vheartbeat => "vheartbeat",
            Kind::Custom(i) => CUSTOM_ACTIONS
                .get(usize::from(i))
                .copied()
                .unwrap_or("_share"),
            Kind::Bad(_) | Kind::Blank => "pageview",
        };
        o.str(Field::Action, action);
        o.str(Field::Apikey, apikey);
        let campaign = campaign_of(page.url);
        o.opt_str(Field::CampaignId, campaign.map(|c| c.campaign));
        if !missing {
            o.str(Field::Channel, if session.amp { "amp" } else { "website" });
            o.bool(Field::Display, true, bool_word(8));
            let (w, hgt, avail, depth) = device.display;
            for (f, v) in [
                (Field::DisplayAvailHeight, avail),
                (Field::DisplayAvailWidth, w),
                (Field::DisplayPixelDepth, depth),
                (Field::DisplayTotalHeight, hgt),
                (Field::DisplayTotalWidth, w),
            ] {
                if quirky {
                    o.int_str(f, i64::from(v));
                } else {
                    o.int(f, i64::from(v));
                }
            }
        }
        match ev.kind {
            Kind::Heartbeat | Kind::Vheartbeat => {
                let inc = i64::from(ev.inc);
                match (h >> 16) % 100 {
                    0 => o.int_str(Field::EngagedTimeInc, inc),
                    1 => {
                        let mut s = Vec::new();
                        push_i64(&mut s, inc);
                        s.extend_from_slice(b".0");
                        o.raw(Field::EngagedTimeInc, &s);
                    }
                    _ => o.int(Field::EngagedTimeInc, inc),
                }
            }
            _ => o.null(Field::EngagedTimeInc),
        }
        let mut id = Vec::with_capacity(36);
        push_uuid(&mut id, mix(ev.id ^ 0xe1), mix(ev.id ^ 0xe2));
        o.str(Field::EventId, std::str::from_utf8(&id).unwrap_or_default());
        write_extra_data(&mut o, visitor, ev, h);
        o.bool(Field::FlagsIsAmp, session.amp, bool_word(24));
        write_geo(&mut o, city, h);

        let catalog = &plan.catalog;
        let meta = if ev.play != NO_PLAY {
            plan.plays
                .get(ev.play as usize)
                .and_then(|p| catalog.videos.get(p.video as usize))
                .map(|v| &v.meta)
        } else if page.meta {
            catalog
                .pages
                .get(page.url.content as usize)
                .map(|c| &c.meta)
        } else {
            None
        };
        match meta {
            Some(m) => o.fragment(&m[usize::from((h >> 32) % 100 < 2)]),
            None => o.fragment(&catalog.no_meta),
        }
        id.clear();
        push_uuid(
            &mut id,
            mix(page.pageload_id ^ 0x10ad),
            mix(page.pageload_id),
        );
        o.str(
            Field::PageloadId,
            std::str::from_utf8(&id).unwrap_or_default(),
        );
        id.clear();
        push_uuid(
            &mut id,
            mix(page.pageview_id ^ 0x9a9e),
            mix(page.pageview_id),
        );
        o.str(
            Field::PageviewId,
            std::str::from_utf8(&id).unwrap_or_default(),
        );

        // Referrer of the page and of the session.
        self.write_ref(&mut o, REF, page.referrer, true);
        o.str(Field::SchemaVersion, "1");
        o.bool(Field::Session, true, bool_word(48));
        if quirky {
            o.int_str(Field::SessionId, i64::from(session.number));
        } else {
            o.int(Field::SessionId, i64::from(session.number));
        }
        self.ref_url(landing.referrer);
        if landing.referrer == Ref::Direct {
            o.null(Field::SessionInitialReferrer);
        } else {
            o.str(Field::SessionInitialReferrer, &self.url);
        }
        self.url_parts(landing.url);
        o.str(Field::SessionInitialUrl, &self.url);
        o.int(Field::SessionLastSessionTimestamp, session.last_ms);
        match (h >> 52) % 100 {
            0 | 1 => o.int_sep_str(Field::SessionTimestamp, session.start_ms),
            2 => o.int_str(Field::SessionTimestamp, session.start_ms),
            _ => o.int(Field::SessionTimestamp, session.start_ms),
        }
        if !missing {
            o.bool(Field::Slot, false, None);
        }
        self.write_ref(&mut o, SREF, landing.referrer, false);
        let surl_campaign = campaign_of(landing.url);
        self.write_campaign(
            &mut o,
            surl_campaign,
            [
                Field::SurlUtmCampaign,
                Field::SurlUtmMedium,
                Field::SurlUtmSource,
                Field::SurlUtmTerm,
                Field::SurlUtmContent,
            ],
        );
        self.write_url(&mut o, SURL, landing.url);

        o.bool(Field::TimestampInfo, true, None);
        let nginx = ev.ts_ms + 20 + ((h >> 20) % 1500) as i64;
        if (h >> 28).is_multiple_of(100) {
            o.int_str(Field::TimestampInfoNginxMs, nginx);
        } else {
            o.int(Field::TimestampInfoNginxMs, nginx);
        }
        o.null(Field::TimestampInfoOverrideMs);
        o.int(
            Field::TimestampInfoPixelMs,
            ev.ts_ms - ((h >> 36) % 400) as i64,
        );
        self.tmp.clear();
        push_ts(&mut self.tmp, ev.ts_ms, ts_form(h));
        o.str(
            Field::TsAction,
            std::str::from_utf8(&self.tmp).unwrap_or_default(),
        );
        let session_form = if (h >> 44) % 100 < 3 {
            TsForm::T
        } else {
            TsForm::Plain
        };
        self.tmp.clear();
        push_ts(&mut self.tmp, session.start_ms, session_form);
        o.str(
            Field::TsSessionCurrent,
            std::str::from_utf8(&self.tmp).unwrap_or_default(),
        );
        self.tmp.clear();
        push_ts(&mut self.tmp, session.last_ms, TsForm::Plain);
        o.str(
            Field::TsSessionLast,
            std::str::from_utf8(&self.tmp).unwrap_or_default(),
        );

        o.str(Field::UaBrowser, device.browser);
        o.str(Field::UaBrowserversion, device.browser_version);
        o.str(Field::UaDevice, device.device);
        o.opt_str(Field::UaDevicebrand, device.brand);
        o.opt_str(Field::UaDevicemodel, device.model);
        o.bool(Field::UaDevicetouchcapable, device.touch, bool_word(56));
        o.str(Field::UaDevicetype, device.devicetype);
        o.str(Field::UaOs, device.os);
        o.str(Field::UaOsversion, device.os_version);
        self.write_url(&mut o, URL, page.url);
        self.write_campaign(
            &mut o,
            campaign,
            [
                Field::UtmCampaign,
                Field::UtmMedium,
                Field::UtmSource,
                Field::UtmTerm,
                Field::UtmContent,
            ],
        );
        o.str(Field::UserAgent, device.user_agent);
        match plan.plays.get(ev.play as usize) {
            Some(p) => {
                id.clear();
                push_uuid(&mut id, mix(p.videostart_id ^ 0x5171), mix(p.videostart_id));
                o.str(
                    Field::VideostartId,
                    std::str::from_utf8(&id).unwrap_or_default(),
                );
            }
            None => o.null(Field::VideostartId),
        }
        o.int(Field::Version, 1);
        o.bool(Field::Visitor, true, None);
        write_visitor_ids(&mut o, visitor, session.visitor, &mut id);
        if (h >> 60) == 0 {
            // A field DPL added later: not in the schema, ignored by the decoder.
            o.raw_key("x_experiment");
            push_str(o.buf, "headline-b");
        }
        buf.push(b'}');
    }

    /// Fills `self.url` with the full url of `u` and `self.path`/`self.query` with its parts.
    fn url_parts(&mut self, u: UrlRef) {
        let content = self.plan.catalog.pages.get(u.content as usize);
        self.path.clear();
        if u.amp {
            self.path.push_str("/amp");
        }
        self.path.push_str(content.map_or("/", |c| c.path.as_str()));
        self.query.clear();
        if let Some(c) = campaign_of(u) {
            self.query.push_str("utm_source=");
            self.query.push_str(c.source);
            self.query.push_str("&utm_medium=");
            self.query.push_str(c.medium);
            self.query.push_str("&utm_campaign=");
            self.query.push_str(c.campaign);
            if let Some(t) = c.term {
                self.query.push_str("&utm_term=");
                self.query.push_str(&t.replace(' ', "+"));
            }
            if let Some(t) = c.content {
                self.query.push_str("&utm_content=");
                self.query.push_str(t);
            }
        }
        self.url.clear();
        self.url.push_str(&self.base);
        self.url.push_str(&self.path);
        if !self.query.is_empty() {
            self.url.push('?');
            self.url.push_str(&self.query);
        }
    }

    fn write_url(&mut self, o: &mut Obj<'_>, f: UrlFields, u: UrlRef) {
        self.url_parts(u);
        if let Some(full) = f.full {
            o.str(full, &self.url);
        }
        let clean_len = self.base.len() + self.path.len();
        o.str(f.clean, self.url.get(..clean_len).unwrap_or(&self.url));
        let domain = self.netloc.strip_prefix("www.").unwrap_or(&self.netloc);
        o.str(f.domain, domain);
        o.str(f.fragment, "");
        o.str(f.netloc, &self.netloc);
        o.str(f.params, "");
        o.str(f.path, &self.path);
        o.str(f.query, &self.query);
        o.str(f.scheme, "https");
    }

    /// Fills `self.url` with the referrer's url (empty for direct).
    fn ref_url(&mut self, r: Ref) {
        match r {
            Ref::Direct => self.url.clear(),
            Ref::External(i) => {
                self.url.clear();
                self.url
                    .push_str(REFERRERS.get(usize::from(i)).map_or("", |r| r.url));
            }
            Ref::Internal(u) => self.url_parts(u),
        }
    }

    fn write_ref(&mut self, o: &mut Obj<'_>, f: UrlFields, r: Ref, category_is_ref: bool) {
        let cat = if category_is_ref {
            Field::RefCategory
        } else {
            Field::SrefCategory
        };
        match r {
            Ref::Direct => {
                o.str(cat, "direct");
                for field in [f.clean, f.domain, f.fragment, f.netloc, f.params, f.path] {
                    o.null(field);
                }
                for field in [f.query, f.scheme] {
                    o.null(field);
                }
                if let Some(full) = f.full {
                    o.null(full);
                }
            }
            Ref::External(i) => {
                let Some(e): Option<&Referrer> = REFERRERS.get(usize::from(i)) else {
                    return;
                };
                o.str(cat, e.category);
                if let Some(full) = f.full {
                    o.str(full, e.url);
                }
                self.url.clear();
                self.url.push_str(e.scheme);
                self.url.push_str("://");
                self.url.push_str(e.netloc);
                self.url.push_str(e.path);
                o.str(f.clean, &self.url);
                o.str(f.domain, e.domain);
                o.str(f.fragment, "");
                o.str(f.netloc, e.netloc);
                o.str(f.params, "");
                o.str(f.path, e.path);
                o.str(f.query, e.query);
                o.str(f.scheme, e.scheme);
            }
            Ref::Internal(u) => {
                o.str(cat, "internal");
                self.write_url(o, f, u);
            }
        }
    }

    fn write_campaign(
        &mut self,
        o: &mut Obj<'_>,
        c: Option<&crate::tables::Campaign>,
        fields: [Field; 5],
    ) {
        let [campaign, medium, source, term, content] = fields;
        match c {
            Some(c) => {
                o.str(campaign, c.campaign);
                o.str(medium, c.medium);
                o.str(source, c.source);
                o.opt_str(term, c.term);
                o.opt_str(content, c.content);
            }
            None => {
                for f in fields {
                    o.null(f);
                }
            }
        }
    }
}

fn campaign_of(u: UrlRef) -> Option<&'static crate::tables::Campaign> {
    usize::from(u.campaign)
        .checked_sub(1)
        .and_then(|i| CAMPAIGNS.get(i))
}

fn write_extra_data(o: &mut Obj<'_>, visitor: &Visitor, ev: &Ev, h: u64) {
    let subscriber = visitor.kind == UserKind::Subscriber || ev.ts_ms >= visitor.subscribed_at;
    let json: Option<&str> = match (subscriber, visitor.kind, ev.kind) {
        (true, _, Kind::Custom(_)) => {
            Some(r#"{"user_type":"subscriber","plan":"digital","source":"paywall"}"#)
        }
        (true, _, _) => Some(r#"{"user_type":"subscriber","plan":"digital"}"#),
        (false, UserKind::Anonymous, _) => Some(r#"{"user_type":"anonymous"}"#),
        (false, _, Kind::Custom(_)) => Some(r#"{"user_type":null,"source":"widget"}"#),
        _ => None,
    };
    match json {
        // Some trackers send extra_data as JSON text in a string.
        Some(j) if (h >> 12) % 100 < 5 => o.str(Field::ExtraData, j),
        Some(j) => o.raw(Field::ExtraData, j.as_bytes()),
        None => o.null(Field::ExtraData),
    }
}

fn write_geo(o: &mut Obj<'_>, city: Option<&City>, h: u64) {
    let Some(c) = city else {
        for f in [
            Field::IpCity,
            Field::IpContinent,
            Field::IpCountry,
            Field::IpLat,
            Field::IpLon,
            Field::IpPostal,
            Field::IpSubdivision,
            Field::IpTimezone,
            Field::IpMarketName,
            Field::IpMarketNielsen,
            Field::IpMarketDoubleclick,
        ] {
            o.null(f);
        }
        return;
    };
    if c.city.is_empty() {
        o.null(Field::IpCity);
    } else {
        o.str(Field::IpCity, c.city);
    }
    o.str(Field::IpContinent, c.continent);
    o.str(Field::IpCountry, c.country);
    o.raw(Field::IpLat, c.lat.as_bytes());
    o.raw(Field::IpLon, c.lon.as_bytes());
    match c.postal {
        // A numeric postal code sent as a JSON number: a number in a string field.
        Some(p)
            if !p.starts_with('0')
                && p.bytes().all(|b| b.is_ascii_digit())
                && h.is_multiple_of(7) =>
        {
            o.raw(Field::IpPostal, p.as_bytes())
        }
        p => o.opt_str(Field::IpPostal, p),
    }
    o.opt_str(Field::IpSubdivision, c.subdivision);
    o.str(Field::IpTimezone, c.timezone);
    o.opt_str(Field::IpMarketName, c.market.map(|m| m.0));
    o.opt_str(Field::IpMarketNielsen, c.market.map(|m| m.1));
    o.opt_str(Field::IpMarketDoubleclick, c.market.map(|m| m.2));
}

/// `visitor_ip`, `visitor_network_id`, `visitor_site_id`: stable per visitor.
fn write_visitor_ids(o: &mut Obj<'_>, visitor: &Visitor, index: u32, id: &mut Vec<u8>) {
    let k = visitor.key;
    let ip = if visitor.device == BOT_DEVICE {
        format!("66.249.{}.{}", 64 + (k >> 8) % 32, k % 250 + 1)
    } else if k.is_multiple_of(10) {
        format!(
            "2600:1700:{:x}:{:x}::{:x}",
            (k >> 16) & 0xffff,
            (k >> 32) & 0xffff,
            (k >> 48) & 0xffff
        )
    } else {
        const FIRST: [u64; 8] = [24, 67, 73, 98, 108, 142, 172, 209];
        format!(
            "{}.{}.{}.{}",
            FIRST[(k % 8) as usize],
            (k >> 8) % 256,
            (k >> 16) % 256,
            (k >> 24) % 254 + 1
        )
    };
    o.str(Field::VisitorIp, &ip);
    if visitor.has_network_id {
        id.clear();
        push_uuid(id, mix(k ^ 0x2e7), mix(u64::from(index) ^ 0x2e8));
        o.str(
            Field::VisitorNetworkId,
            std::str::from_utf8(id).unwrap_or_default(),
        );
    } else {
        o.null(Field::VisitorNetworkId);
    }
    id.clear();
    // The high half is a bijection of the visitor index, so ids never collide.
    push_uuid(id, mix(u64::from(index) ^ 0x51_7e), k);
    o.str(
        Field::VisitorSiteId,
        std::str::from_utf8(id).unwrap_or_default(),
    );
}
