//! The site's content: a front page, section pages, a few hundred posts and a few dozen
//! videos, each with its `metadata_*` members rendered once as JSON text.

use rand::Rng;
use rand_chacha::ChaCha8Rng;

use crate::json::{Obj, push_i64, push_str_list};
use crate::plan::{DAY, HOUR};
use crate::tables::{ADJECTIVES, AUTHORS, NOUNS, SECTIONS, TAGS};
use dpl_core::Field;

/// Number of posts in the catalogue.
const POSTS: usize = 320;
/// Number of videos.
const VIDEOS: usize = 40;

/// Word counts given to the first posts: both sides of every `word_count_buckets` boundary.
const BOUNDARY_WORDS: [i64; 14] = [
    42, 99, 100, 499, 500, 999, 1000, 1999, 2000, 2999, 3000, 3999, 4000, 5200,
];

/// A page a url can point to.
pub(crate) struct Content {
    /// Path of the url on the site, starting and ending with `/`.
    pub path: String,
    /// Publication time (epoch ms); `None` for the front page and section pages.
    pub pub_ms: Option<i64>,
    pub words: Option<i64>,
    /// Index into [`Catalog::videos`] of the video embedded in the page.
    pub video: Option<u32>,
    /// `metadata*` members: `[as usual, with lenient encodings]`.
    pub meta: [String; 2],
}

pub(crate) struct Video {
    pub duration_s: i64,
    /// `metadata*` members of the video: `[as usual, with lenient encodings]`.
    pub meta: [String; 2],
}

pub(crate) struct Catalog {
    /// Index 0 is the front page, then one page per section, then the posts.
    pub pages: Vec<Content>,
    pub videos: Vec<Video>,
    /// Cumulative popularity of `pages` (posts only have weight).
    cum: Vec<f64>,
    /// `metadata` false and every `metadata_*` null: a page the crawler has not seen.
    pub no_meta: String,
}

impl Catalog {
    /// Builds the catalogue for a site on `domain` whose events start at `start_ms`.
    pub fn new(rng: &mut ChaCha8Rng, domain: &str, start_ms: i64, span_ms: i64) -> Catalog {
        let base = format!("https://www.{domain}");
        let mut videos = Vec::with_capacity(VIDEOS);
        for i in 0..VIDEOS {
            let title = title(rng);
            let slug = format!("{}-{}", slugify(&title), i + 1);
            let url = format!("{base}/video/{slug}/");
            let pub_ms = start_ms - rng.random_range(2 * HOUR..300 * DAY);
            let duration_s = match rng.random_range(0..10) {
                0..=3 => rng.random_range(20..120),
                4..=8 => rng.random_range(120..600),
                _ => rng.random_range(600..2400),
            };
            let m = Meta {
                canonical: &url,
                title: &title,
                page_type: "video",
                section: Some(SECTIONS[rng.random_range(0..SECTIONS.len())]),
                authors: pick_some(rng, AUTHORS, 1, 2),
                tags: pick_some(rng, TAGS, 0, 3),
                pub_ms: Some(pub_ms),
                save_ms: Some(pub_ms + rng.random_range(0..6 * HOUR)),
                words: None,
                duration: Some(duration_s),
                post_id: format!("v{}", 9000 + i),
                image: Some(format!("https://cdn.{domain}/video/{slug}.jpg")),
                custom: None,
                extra_urls: vec![],
            };
            videos.push(Video {
                duration_s,
                meta: [m.render(false), m.render(true)],
            });
        }

        let mut pages = Vec::with_capacity(POSTS + SECTIONS.len() + 1);
        let mut weights = Vec::with_capacity(POSTS + SECTIONS.len() + 1);
        let front = Meta {
            canonical: &format!("{base}/"),
            title: "Example News: Breaking News, Analysis and Opinion",
            page_type: "frontpage",
            section: None,
            authors: vec![],
            tags: vec![],
            pub_ms: None,
            save_ms: None,
            words: None,
            duration: None,
            post_id: "home".to_owned(),
            image: None,
            custom: None,
            extra_urls: vec![],
        };
        pages.push(Content {
            path: "/".to_owned(),
            pub_ms: None,
            words: None,
            video: None,
            meta: [front.render(false), front.render(true)],
        });
        weights.push(0.0);
        for s in SECTIONS {
            let title = format!("{} - Example News", capitalize(s));
            let m = Meta {
                canonical: &format!("{base}/{s}/"),
                title: &title,
                page_type: "sectionpage",
                section: Some(s),
                authors: vec![],
                tags: vec![],
                pub_ms: None,
                save_ms: None,
                words: None,
                duration: None,
                post_id: format!("section-{s}"),
                image: None,
                custom: None,
                extra_urls: vec![],
            };
            pages.push(Content {
                path: format!("/{s}/"),
                pub_ms: None,
                words: None,
                video: None,
                meta: [m.render(false), m.render(true)],
            });
            weights.push(0.0);
        }
        for i in 0..POSTS {
            let title = title(rng);
            let section = SECTIONS[rng.random_range(0..SECTIONS.len())];
            // Most posts predate the data; some are published while it runs (the generator
            // only shows a post after its publication).
            let pub_ms = if rng.random_bool(0.12) && span_ms > 2 * HOUR {
                start_ms + rng.random_range(0..span_ms * 4 / 5)
            } else {
                start_ms - rng.random_range(HOUR..400 * DAY)
            };
            let (y, m, _) = crate::json::civil_from_days(pub_ms.div_euclid(DAY));
            let slug = format!("{}-{}", slugify(&title), i + 1);
            let path = format!("/{section}/{y:04}/{m:02}/{slug}/");
            let canonical = format!("{base}{path}");
            let words = match BOUNDARY_WORDS.get(i) {
                Some(w) => *w,
                None => match rng.random_range(0..20) {
                    0 => rng.random_range(20..100),
                    1..=5 => rng.random_range(100..500),
                    6..=11 => rng.random_range(500..1000),
                    12..=16 => rng.random_range(1000..2000),
                    17 => rng.random_range(2000..3000),
                    18 => rng.random_range(3000..4000),
                    _ => rng.random_range(4000..9000),
                },
            };
            let video = rng
                .random_bool(0.25)
                .then(|| rng.random_range(0..VIDEOS as u32));
            let custom = match rng.random_range(0..10) {
                0..=2 => Some(r#"{"paywall":"metered"}"#.to_owned()),
                3 => Some(r#"{"paywall":"hard","sponsored":true}"#.to_owned()),
                _ => None,
            };
            let meta = Meta {
                canonical: &canonical,
                title: &title,
                page_type: "post",
                section: Some(section),
                authors: pick_some(rng, AUTHORS, 1, 3),
                tags: pick_some(rng, TAGS, 0, 5),
                pub_ms: Some(pub_ms),
                save_ms: Some(pub_ms + rng.random_range(0..12 * HOUR)),
                words: Some(words),
                duration: None,
                post_id: (40_000 + i * 7).to_string(),
                image: Some(format!("https://cdn.{domain}/img/{slug}.jpg")),
                custom,
                extra_urls: vec![format!("{base}/amp{path}")],
            };
            pages.push(Content {
                path,
                pub_ms: Some(pub_ms),
                words: Some(words),
                video,
                meta: [meta.render(false), meta.render(true)],
            });
            // Zipf-like popularity over posts.
            weights.push(1.0 / ((i + 2) as f64).powf(0.9));
        }
        let mut cum = Vec::with_capacity(weights.len());
        let mut total = 0.0;
        for w in weights {
            total += w;
            cum.push(total);
        }
        Catalog {
            pages,
            videos,
            cum,
            no_meta: no_meta(),
        }
    }

    /// Index of the first section page.
    pub fn first_section() -> u32 {
        1
    }

    pub fn sections() -> u32 {
        SECTIONS.len() as u32
    }

    /// A post by popularity, published at least ten minutes before `at_ms`, or a section
    /// page when a few draws find none.
    pub fn pick_post(&self, rng: &mut ChaCha8Rng, at_ms: i64) -> u32 {
        let total = self.cum.last().copied().unwrap_or(0.0);
        for _ in 0..8 {
            let u = rng.random::<f64>() * total;
            let i = self
                .cum
                .partition_point(|c| *c <= u)
                .min(self.pages.len() - 1);
            if let Some(p) = self.pages.get(i)
                && p.pub_ms.is_some_and(|t| t + 10 * 60_000 <= at_ms)
            {
                return i as u32;
            }
        }
        Self::first_section() + rng.random_range(0..Self::sections())
    }
}

struct Meta<'a> {
    canonical: &'a str,
    title: &'a str,
    page_type: &'a str,
    section: Option<&'a str>,
    authors: Vec<&'static str>,
    tags: Vec<&'static str>,
    pub_ms: Option<i64>,
    save_ms: Option<i64>,
    words: Option<i64>,
    duration: Option<i64>,
    post_id: String,
    image: Option<String>,
    custom: Option<String>,
    extra_urls: Vec<String>,
}

impl Meta<'_> {
    /// The `metadata*` members. `lenient`: lists as JSON text, numbers as strings with `_`
    /// separators, the post id as a JSON number where it is numeric, as some trackers send.
    fn render(&self, lenient: bool) -> String {
        let mut buf = Vec::with_capacity(1024);
        let mut o = Obj::new(&mut buf, None);
        o.bool(Field::Metadata, true, lenient.then_some(0));
        let mut list = Vec::new();
        push_str_list(&mut list, self.authors.iter().copied());
        list_field(&mut o, Field::MetadataAuthors, &list, false);
        o.str(Field::MetadataCanonicalUrl, self.canonical);
        o.opt_str(Field::MetadataCustomMetadata, self.custom.as_deref());
        match self.duration {
            Some(d) => o.int(Field::MetadataDuration, d),
            None => o.null(Field::MetadataDuration),
        }
        o.str(
            Field::MetadataDataSource,
            if lenient { "meta" } else { "crawl" },
        );
        match self.words {
            Some(w) if lenient => o.int_sep_str(Field::MetadataFullContentWordCount, w),
            Some(w) => o.int(Field::MetadataFullContentWordCount, w),
            None => o.null(Field::MetadataFullContentWordCount),
        }
        o.opt_str(Field::MetadataImageUrl, self.image.as_deref());
        o.str(Field::MetadataPageType, self.page_type);
        match self.post_id.parse::<i64>() {
            Ok(n) if lenient => o.int(Field::MetadataPostId, n),
            _ => o.str(Field::MetadataPostId, &self.post_id),
        }
        for (f, v) in [
            (Field::MetadataPubDateTmsp, self.pub_ms),
            (Field::MetadataSaveDateTmsp, self.save_ms),
        ] {
            match v {
                Some(v) if lenient => o.int_sep_str(f, v),
                Some(v) => o.int(f, v),
                None => o.null(f),
            }
        }
        o.opt_str(Field::MetadataSection, self.section);
        let short = format!("https://exm.pl/{:x}", fnv(self.canonical) & 0xff_ffff);
        list.clear();
        push_str_list(&mut list, [self.canonical, short.as_str()]);
        list_field(&mut o, Field::MetadataShareUrls, &list, false);
        list.clear();
        push_str_list(&mut list, self.tags.iter().copied());
        list_field(&mut o, Field::MetadataTags, &list, lenient);
        let thumb = self.image.as_ref().map(|i| i.replace(".jpg", "-thumb.jpg"));
        o.opt_str(Field::MetadataThumbUrl, thumb.as_deref());
        o.str(Field::MetadataTitle, self.title);
        list.clear();
        push_str_list(
            &mut list,
            std::iter::once(self.canonical).chain(self.extra_urls.iter().map(String::as_str)),
        );
        list_field(&mut o, Field::MetadataUrls, &list, false);
        String::from_utf8_lossy(&buf).into_owned()
    }
}

/// A list member, as a JSON array or (`as_text`) as a string holding the array's JSON text.
fn list_field(o: &mut Obj<'_>, f: Field, list_json: &[u8], as_text: bool) {
    if as_text {
        o.str(f, &String::from_utf8_lossy(list_json));
    } else {
        o.raw(f, list_json);
    }
}

fn no_meta() -> String {
    let mut buf = Vec::with_capacity(512);
    let mut o = Obj::new(&mut buf, None);
    o.bool(Field::Metadata, false, None);
    for &f in dpl_core::CONTENT_METADATA_FIELDS {
        o.null(f);
    }
    String::from_utf8_lossy(&buf).into_owned()
}

fn title(rng: &mut ChaCha8Rng) -> String {
    let a = ADJECTIVES[rng.random_range(0..ADJECTIVES.len())];
    let n = NOUNS[rng.random_range(0..NOUNS.len())];
    let m = NOUNS[rng.random_range(0..NOUNS.len())];
    match rng.random_range(0..5) {
        0 => format!("The {a} {n} of the {m}"),
        1 => format!("How the {n} Became a {m} Story"),
        2 => format!("{a} {n}: What \"{m}\" Means Now"),
        3 => format!("Inside the {a} {n} — and Its {m}"),
        _ => {
            let mut year = Vec::new();
            push_i64(&mut year, rng.random_range(2020..2027));
            format!(
                "{n} {}: {a} Signs for the {m}",
                String::from_utf8_lossy(&year)
            )
        }
    }
}

fn slugify(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if c.is_ascii_alphanumeric() {
            out.push(c.to_ascii_lowercase());
        } else if !out.ends_with('-') && !out.is_empty() {
            out.push('-');
        }
    }
    out.trim_end_matches('-').to_owned()
}

fn capitalize(s: &str) -> String {
    let mut c = s.chars();
    match c.next() {
        Some(f) => f.to_uppercase().chain(c).collect(),
        None => String::new(),
    }
}

/// `lo..=hi` distinct items in a random order.
fn pick_some(
    rng: &mut ChaCha8Rng,
    from: &[&'static str],
    lo: usize,
    hi: usize,
) -> Vec<&'static str> {
    let n = rng.random_range(lo..=hi);
    let mut out: Vec<&'static str> = Vec::with_capacity(n);
    while out.len() < n.min(from.len()) {
        let s = from[rng.random_range(0..from.len())];
        if !out.contains(&s) {
            out.push(s);
        }
    }
    out
}

/// FNV-1a: a stable hash for short link ids.
fn fnv(s: &str) -> u64 {
    s.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3)
    })
}
