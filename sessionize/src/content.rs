//! Post, video and campaign totals: every visitor adds to them, so they are kept once,
//! after the split by visitor, and folded from the deltas the shards send.

use std::sync::Arc;

use dpl_core::{RowBatch, Table};

use crate::derive::{Derive, HashSet, Key};
use crate::emit::Emitter;
use crate::rows::{CampaignFacts, PostContentFacts, VideoContentFacts};
use crate::state::ContentTotals;

/// The content and campaign records, the run's touched keys and the run-end overlay.
pub(crate) struct ContentState {
    pub(crate) totals: ContentTotals,
    /// What sessions still open at the run end add (shown in this run's rows, never saved:
    /// the next run adds them once the sessions are final).
    overlay: ContentTotals,
    posts: HashSet<Arc<str>>,
    videos: HashSet<Arc<str>>,
    campaigns: HashSet<Key>,
}

impl ContentState {
    pub(crate) fn new(totals: ContentTotals) -> ContentState {
        ContentState {
            totals,
            overlay: ContentTotals::default(),
            posts: HashSet::default(),
            videos: HashSet::default(),
            campaigns: HashSet::default(),
        }
    }

    /// Folds a shard's delta in: into the saved totals, or with `open` into the run-end
    /// overlay.
    pub(crate) fn fold(&mut self, delta: ContentTotals, open: bool) {
        if delta.is_empty() {
            return;
        }
        self.posts.extend(delta.posts.keys().cloned());
        self.videos.extend(delta.videos.keys().cloned());
        self.campaigns.extend(delta.campaigns.keys().cloned());
        if open {
            self.overlay.merge(delta);
        } else {
            self.totals.merge(delta);
        }
    }

    /// Emits the post content, video content and campaign rows of every key touched in
    /// the run, in key order, as the saved totals plus the overlay have them.
    pub(crate) fn emit_run_end(&self, d: &Derive, em: &mut Emitter, out: &mut dyn FnMut(RowBatch)) {
        let (base, overlay) = (&self.totals, &self.overlay);
        let mut posts: Vec<&Arc<str>> = self.posts.iter().collect();
        posts.sort();
        for k in posts {
            let Some(p) = base.post(k, overlay) else {
                continue;
            };
            let facts = PostContentFacts {
                pageview_post_id: k,
                url: &p.url,
                metadata: &p.meta,
                first_seen_ts: p.first_seen,
                last_seen_ts: p.last_seen,
                pageviews: p.views,
                engaged_time: p.engaged,
            };
            em.row(Table::PostContent, out, |buf| {
                d.push_post_content(&facts, buf)
            });
        }
        let mut videos: Vec<&Arc<str>> = self.videos.iter().collect();
        videos.sort();
        for k in videos {
            let Some(p) = base.video(k, overlay) else {
                continue;
            };
            let facts = VideoContentFacts {
                metadata_canonical_url: k,
                url: &p.url,
                metadata: &p.meta,
                first_seen_ts: p.first_seen,
                last_seen_ts: p.last_seen,
                videoviews: p.views,
                video_engaged_time: p.engaged,
            };
            em.row(Table::VideoContent, out, |buf| {
                d.push_video_content(&facts, buf)
            });
        }
        let mut campaigns: Vec<&Key> = self.campaigns.iter().collect();
        campaigns.sort();
        for k in campaigns {
            let Some(c) = base.campaign(k, overlay) else {
                continue;
            };
            if !c.seen() {
                continue;
            }
            let facts = CampaignFacts {
                utm_id: k,
                apikey: &c.apikey,
                utm: &c.utm,
                campaign_id: &c.campaign_id,
                first_seen_ts: c.first_seen,
                last_seen_ts: c.last_seen,
                pageviews: c.pageviews,
                engaged_time: c.engaged_time,
                videoviews: c.videoviews,
                video_engaged_time: c.video_engaged_time,
                sessions: c.sessions,
            };
            em.row(Table::Campaigns, out, |buf| d.push_campaign(&facts, buf));
        }
    }
}
