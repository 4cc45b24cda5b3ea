//! Decode throughput over a few MB of realistic DPL lines, against a "bare loop" (flate2
//! `MultiGzDecoder` + `simd_json::to_borrowed_value` per line, no `Event`) for the ratio.
//! Throughput is in decompressed bytes.
#![allow(clippy::unwrap_used)]

use std::hint::black_box;
use std::io::{BufRead, BufReader, Write};
use std::sync::Arc;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use dpl_core::RawObject;
use dpl_decode::{DecodeConfig, Decoder};

/// A deterministic pseudo-random sequence (no rand dependency needed for a bench).
struct Lcg(u64);

impl Lcg {
    fn next(&mut self) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        self.0 >> 33
    }
    fn pick<'a>(&mut self, items: &[&'a str]) -> &'a str {
        items[(self.next() as usize) % items.len()]
    }
}

/// One event line shaped like DPL output: ~100 fields, URLs parsed into parts, metadata,
/// epoch-ms stamps as numbers and strings, an `extra_data` object and lists.
fn event_line(r: &mut Lcg, i: u64) -> String {
    let action = r.pick(&[
        "pageview",
        "heartbeat",
        "heartbeat",
        "heartbeat",
        "videostart",
        "vheartbeat",
        "share",
    ]);
    let section = r.pick(&["news", "sports", "opinion", "tech", "business"]);
    let post = r.next() % 5000;
    let visitor = r.next() % 100_000;
    let ms = 1_470_009_600_000 + i * 1375;
    let secs = ms / 1000;
    let (h, m, s) = ((secs / 3600) % 24, (secs / 60) % 60, secs % 60);
    let url =
        format!("https://www.example.com/{section}/2016/08/01/story-{post}/?utm_source=tw#top");
    format!(
        concat!(
            r#"{{"action":"{action}","apikey":"example.com","campaign_id":"","channel":"website","#,
            r#""display":true,"display_avail_height":1050,"display_avail_width":1680,"display_pixel_depth":24,"#,
            r#""display_total_height":1050,"display_total_width":1680,"engaged_time_inc":{inc},"#,
            r#""event_id":"evt-{i:016x}","extra_data":{{"user_type":"{ut}","ab":"b","n":{n}}},"flags_is_amp":false,"#,
            r#""ip_city":"Brooklyn","ip_continent":"NA","ip_country":"US","ip_lat":40.6501,"ip_lon":-73.9496,"#,
            r#""ip_postal":"11226","ip_subdivision":"NY","ip_timezone":"America/New_York","ip_market_name":"New York","#,
            r#""ip_market_nielsen":"501","ip_market_doubleclick":"1023191","metadata":true,"#,
            r#""metadata_authors":["Jane Doe","John Roe"],"metadata_canonical_url":"https://www.example.com/{section}/story-{post}","#,
            r#""metadata_custom_metadata":"{{\"paywall\":\"metered\"}}","metadata_duration":null,"metadata_data_source":"crawl","#,
            r#""metadata_full_content_word_count":{wc},"metadata_image_url":"https://img.example.com/{post}.jpg","#,
            r#""metadata_page_type":"post","metadata_post_id":"{post}","metadata_pub_date_tmsp":"1_469_923_200_000","#,
            r#""metadata_save_date_tmsp":1469923500000,"metadata_section":"{section}","metadata_share_urls":null,"#,
            r#""metadata_tags":["politics","elections","{section}"],"metadata_thumb_url":"https://img.example.com/t/{post}.jpg","#,
            r#""metadata_title":"A story about things that happened, number {post}","metadata_urls":["https://www.example.com/{section}/story-{post}"],"#,
            r#""pageload_id":"pl-{visitor}-{post}","pageview_id":"pv-{visitor}-{post}","ref_category":"social","#,
            r#""ref_clean":"https://t.co/abc","ref_domain":"t.co","ref_fragment":"","ref_netloc":"t.co","ref_params":"","#,
            r#""ref_path":"/abc","ref_query":"","ref_scheme":"https","referrer":"https://t.co/abc","schema_version":"1","#,
            r#""session":true,"session_id":{sid},"session_initial_referrer":"https://t.co/abc","#,
            r#""session_initial_url":"{url}","session_last_session_timestamp":{ms_last},"session_timestamp":{ms},"#,
            r#""slot":false,"sref_category":"social","sref_clean":"https://t.co/abc","sref_domain":"t.co","#,
            r#""sref_fragment":"","sref_netloc":"t.co","sref_params":"","sref_path":"/abc","sref_query":"","sref_scheme":"https","#,
            r#""surl_utm_campaign":"","surl_utm_medium":"","surl_utm_source":"tw","surl_utm_term":"","surl_utm_content":"","#,
            r#""surl_clean":"https://www.example.com/{section}/2016/08/01/story-{post}/","surl_domain":"example.com","#,
            r#""surl_fragment":"top","surl_netloc":"www.example.com","surl_params":"","surl_path":"/{section}/2016/08/01/story-{post}/","#,
            r#""surl_query":"utm_source=tw","surl_scheme":"https","timestamp_info":true,"timestamp_info_nginx_ms":{ms},"#,
            r#""timestamp_info_override_ms":null,"timestamp_info_pixel_ms":{ms},"ts_action":"2016-08-01 {h:02}:{m:02}:{s:02}","#,
            r#""ts_session_current":"2016-08-01 00:00:00","ts_session_last":"2016-07-30 12:00:00.123","#,
            r#""ua_browser":"Chrome","ua_browserversion":"52.0.2743","ua_device":"Other","ua_devicebrand":null,"#,
            r#""ua_devicemodel":null,"ua_devicetouchcapable":false,"ua_devicetype":"desktop","ua_os":"Mac OS X","#,
            r#""ua_osversion":"10.11.6","url":"{url}","url_clean":"https://www.example.com/{section}/2016/08/01/story-{post}/","#,
            r#""url_domain":"example.com","url_fragment":"top","url_netloc":"www.example.com","url_params":"","#,
            r#""url_path":"/{section}/2016/08/01/story-{post}/","url_query":"utm_source=tw","url_scheme":"https","#,
            r#""utm_campaign":null,"utm_medium":null,"utm_source":"tw","utm_term":null,"utm_content":null,"#,
            r#""user_agent":"Mozilla/5.0 (Macintosh; Intel Mac OS X 10_11_6) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/52.0.2743.116 Safari/537.36","#,
            r#""videostart_id":null,"version":1,"visitor":true,"visitor_ip":"203.0.113.{ipo}","#,
            r#""visitor_network_id":"","visitor_site_id":"vis-{visitor}"}}"#,
        ),
        action = action,
        inc = r.next() % 16,
        i = i,
        ut = r.pick(&["subscriber", "anonymous", "registered"]),
        n = r.next() % 10,
        section = section,
        post = post,
        wc = r.next() % 4000,
        visitor = visitor,
        sid = r.next() % 50,
        url = url,
        ms = ms,
        ms_last = ms - 86_400_000,
        h = h,
        m = m,
        s = s,
        ipo = r.next() % 255,
    )
}

/// About `target` bytes of lines.
fn lines(target: usize) -> Vec<u8> {
    let mut r = Lcg(42);
    let mut out = Vec::with_capacity(target + 4096);
    let mut i = 0;
    while out.len() < target {
        out.extend_from_slice(event_line(&mut r, i).as_bytes());
        out.push(b'\n');
        i += 1;
    }
    out
}

fn gzip(data: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    e.write_all(data).unwrap();
    e.finish().unwrap()
}

/// The reference: decompress, split lines, parse each into a borrowed value, nothing else.
fn bare_loop(gz: &[u8]) -> usize {
    use simd_json::prelude::*;
    let reader = BufReader::with_capacity(256 << 10, flate2::bufread::MultiGzDecoder::new(gz));
    let mut n = 0;
    let mut line = Vec::new();
    let mut scratch = Vec::new();
    let mut reader = reader;
    loop {
        line.clear();
        if reader.read_until(b'\n', &mut line).unwrap() == 0 {
            break;
        }
        scratch.clear();
        scratch.extend_from_slice(&line);
        if let Ok(v) = simd_json::to_borrowed_value(&mut scratch) {
            n += black_box(&v).is_object() as usize;
        }
    }
    n
}

fn bench(c: &mut Criterion) {
    let plain = lines(4 << 20);
    let gz = gzip(&plain);
    let decoder = Decoder::new(DecodeConfig::default()).unwrap();
    let object = |bytes: &[u8]| RawObject {
        id: 0,
        key: Arc::from("events/2016/08/01/bench.gz"),
        bytes: bytes.to_vec().into(),
    };
    let (plain_obj, gz_obj) = (object(&plain), object(&gz));

    let mut g = c.benchmark_group("decode");
    g.throughput(Throughput::Bytes(plain.len() as u64));
    g.sample_size(10);
    g.bench_function("bare_loop_gzip", |b| b.iter(|| bare_loop(black_box(&gz))));
    g.bench_function("decoder_gzip", |b| {
        b.iter(|| {
            let mut events = 0;
            decoder.decode_object(&gz_obj, &mut |batch| events += batch.events.len());
            events
        })
    });
    g.bench_function("decoder_plain", |b| {
        b.iter(|| {
            let mut events = 0;
            decoder.decode_object(&plain_obj, &mut |batch| events += batch.events.len());
            events
        })
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
