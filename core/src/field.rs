//! The raw DPL fields, one entry per line of `dpl-schema.tsv`.

/// How a raw field is typed in the DPL schema and so how it is parsed and stored.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// Text; a number given here becomes its JSON text.
    Str,
    /// JSON bool or a bool word (`true/false/t/f/1/0/yes/no`).
    Bool,
    /// Integer (JSON number or numeric string, `_` separators allowed).
    Int,
    /// Floating point.
    Float,
    /// A JSON object, stored as compact JSON text.
    Json,
    /// A list of strings, stored as compact JSON text.
    List,
    /// UTC text time stamp `YYYY-MM-DD[ T]HH:MM:SS[.fraction][Z]`, stored as [`crate::Value::Ts`].
    TsText,
    /// Epoch milliseconds, stored as [`crate::Value::Int`].
    EpochMs,
}

/// One raw field: its JSON name, kind, size limit (characters) and whether a line without it
/// is rejected.
#[derive(Clone, Copy, Debug)]
pub struct FieldSpec {
    pub name: &'static str,
    pub kind: Kind,
    pub max_len: Option<u32>,
    pub required: bool,
}

macro_rules! fields {
    ($($variant:ident = ($name:literal, $kind:ident, $max:expr, $req:expr),)*) => {
        /// A raw DPL field; `field as usize` indexes [`FIELDS`] and [`crate::Event::values`].
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
        #[repr(u8)]
        pub enum Field { $($variant,)* }

        /// Every raw field, in schema order (the order of the event columns in every table).
        pub static FIELDS: &[FieldSpec] = &[
            $(FieldSpec { name: $name, kind: Kind::$kind, max_len: $max, required: $req },)*
        ];

        /// All fields in schema order.
        pub static ALL_FIELDS: &[Field] = &[$(Field::$variant,)*];

        impl Field {
            /// The field with this JSON name, if it is one of the schema's.
            pub fn from_name(name: &str) -> Option<Field> {
                match name {
                    $($name => Some(Field::$variant),)*
                    _ => None,
                }
            }
        }
    };
}

fields! {
    Action = ("action", Str, Some(256), false),
    Apikey = ("apikey", Str, Some(256), true),
    CampaignId = ("campaign_id", Str, Some(256), false),
    Channel = ("channel", Str, Some(64), false),
    Display = ("display", Bool, None, false),
    DisplayAvailHeight = ("display_avail_height", Int, None, false),
    DisplayAvailWidth = ("display_avail_width", Int, None, false),
    DisplayPixelDepth = ("display_pixel_depth", Int, None, false),
    DisplayTotalHeight = ("display_total_height", Int, None, false),
    DisplayTotalWidth = ("display_total_width", Int, None, false),
    EngagedTimeInc = ("engaged_time_inc", Int, None, false),
    EventId = ("event_id", Str, Some(64), true),
    ExtraData = ("extra_data", Json, None, false),
    FlagsIsAmp = ("flags_is_amp", Bool, None, false),
    IpCity = ("ip_city", Str, None, false),
    IpContinent = ("ip_continent", Str, Some(2), false),
    IpCountry = ("ip_country", Str, Some(2), false),
    IpLat = ("ip_lat", Float, None, false),
    IpLon = ("ip_lon", Float, None, false),
    IpPostal = ("ip_postal", Str, Some(64), false),
    IpSubdivision = ("ip_subdivision", Str, Some(3), false),
    IpTimezone = ("ip_timezone", Str, Some(256), false),
    IpMarketName = ("ip_market_name", Str, Some(256), false),
    IpMarketNielsen = ("ip_market_nielsen", Str, Some(3), false),
    IpMarketDoubleclick = ("ip_market_doubleclick", Str, Some(3), false),
    Metadata = ("metadata", Bool, None, false),
    MetadataAuthors = ("metadata_authors", List, None, false),
    MetadataCanonicalUrl = ("metadata_canonical_url", Str, None, false),
    MetadataCustomMetadata = ("metadata_custom_metadata", Str, None, false),
    MetadataDuration = ("metadata_duration", Int, None, false),
    MetadataDataSource = ("metadata_data_source", Str, Some(8), false),
    MetadataFullContentWordCount = ("metadata_full_content_word_count", Int, None, false),
    MetadataImageUrl = ("metadata_image_url", Str, None, false),
    MetadataPageType = ("metadata_page_type", Str, Some(256), false),
    MetadataPostId = ("metadata_post_id", Str, None, false),
    MetadataPubDateTmsp = ("metadata_pub_date_tmsp", EpochMs, None, false),
    MetadataSaveDateTmsp = ("metadata_save_date_tmsp", EpochMs, None, false),
    MetadataSection = ("metadata_section", Str, Some(256), false),
    MetadataShareUrls = ("metadata_share_urls", List, None, false),
    MetadataTags = ("metadata_tags", List, None, false),
    MetadataThumbUrl = ("metadata_thumb_url", Str, None, false),
    MetadataTitle = ("metadata_title", Str, None, false),
    MetadataUrls = ("metadata_urls", List, None, false),
    PageloadId = ("pageload_id", Str, None, false),
    PageviewId = ("pageview_id", Str, None, false),
    RefCategory = ("ref_category", Str, Some(64), false),
    RefClean = ("ref_clean", Str, None, false),
    RefDomain = ("ref_domain", Str, Some(256), false),
    RefFragment = ("ref_fragment", Str, None, false),
    RefNetloc = ("ref_netloc", Str, Some(256), false),
    RefParams = ("ref_params", Str, None, false),
    RefPath = ("ref_path", Str, None, false),
    RefQuery = ("ref_query", Str, None, false),
    RefScheme = ("ref_scheme", Str, Some(64), false),
    Referrer = ("referrer", Str, None, false),
    SchemaVersion = ("schema_version", Str, Some(64), false),
    Session = ("session", Bool, None, false),
    SessionId = ("session_id", Int, None, false),
    SessionInitialReferrer = ("session_initial_referrer", Str, None, false),
    SessionInitialUrl = ("session_initial_url", Str, None, false),
    SessionLastSessionTimestamp = ("session_last_session_timestamp", EpochMs, None, false),
    SessionTimestamp = ("session_timestamp", EpochMs, None, false),
    Slot = ("slot", Bool, None, false),
    SrefCategory = ("sref_category", Str, Some(64), false),
    SrefClean = ("sref_clean", Str, None, false),
    SrefDomain = ("sref_domain", Str, Some(256), false),
    SrefFragment = ("sref_fragment", Str, None, false),
    SrefNetloc = ("sref_netloc", Str, Some(256), false),
    SrefParams = ("sref_params", Str, None, false),
    SrefPath = ("sref_path", Str, None, false),
    SrefQuery = ("sref_query", Str, None, false),
    SrefScheme = ("sref_scheme", Str, Some(64), false),
    SurlUtmCampaign = ("surl_utm_campaign", Str, Some(256), false),
    SurlUtmMedium = ("surl_utm_medium", Str, Some(64), false),
    SurlUtmSource = ("surl_utm_source", Str, Some(64), false),
    SurlUtmTerm = ("surl_utm_term", Str, Some(64), false),
    SurlUtmContent = ("surl_utm_content", Str, Some(256), false),
    SurlClean = ("surl_clean", Str, None, false),
    SurlDomain = ("surl_domain", Str, Some(256), false),
    SurlFragment = ("surl_fragment", Str, None, false),
    SurlNetloc = ("surl_netloc", Str, Some(256), false),
    SurlParams = ("surl_params", Str, None, false),
    SurlPath = ("surl_path", Str, None, false),
    SurlQuery = ("surl_query", Str, None, false),
    SurlScheme = ("surl_scheme", Str, Some(64), false),
    TimestampInfo = ("timestamp_info", Bool, None, false),
    TimestampInfoNginxMs = ("timestamp_info_nginx_ms", EpochMs, None, false),
    TimestampInfoOverrideMs = ("timestamp_info_override_ms", EpochMs, None, false),
    TimestampInfoPixelMs = ("timestamp_info_pixel_ms", EpochMs, None, false),
    TsAction = ("ts_action", TsText, None, true),
    TsSessionCurrent = ("ts_session_current", TsText, None, false),
    TsSessionLast = ("ts_session_last", TsText, None, false),
    UaBrowser = ("ua_browser", Str, None, false),
    UaBrowserversion = ("ua_browserversion", Str, None, false),
    UaDevice = ("ua_device", Str, None, false),
    UaDevicebrand = ("ua_devicebrand", Str, None, false),
    UaDevicemodel = ("ua_devicemodel", Str, None, false),
    UaDevicetouchcapable = ("ua_devicetouchcapable", Bool, None, false),
    UaDevicetype = ("ua_devicetype", Str, None, false),
    UaOs = ("ua_os", Str, None, false),
    UaOsversion = ("ua_osversion", Str, None, false),
    Url = ("url", Str, None, false),
    UrlClean = ("url_clean", Str, None, false),
    UrlDomain = ("url_domain", Str, Some(256), false),
    UrlFragment = ("url_fragment", Str, None, false),
    UrlNetloc = ("url_netloc", Str, Some(256), false),
    UrlParams = ("url_params", Str, None, false),
    UrlPath = ("url_path", Str, None, false),
    UrlQuery = ("url_query", Str, None, false),
    UrlScheme = ("url_scheme", Str, Some(64), false),
    UtmCampaign = ("utm_campaign", Str, Some(256), false),
    UtmMedium = ("utm_medium", Str, Some(64), false),
    UtmSource = ("utm_source", Str, Some(64), false),
    UtmTerm = ("utm_term", Str, Some(64), false),
    UtmContent = ("utm_content", Str, Some(256), false),
    UserAgent = ("user_agent", Str, None, false),
    VideostartId = ("videostart_id", Str, None, false),
    Version = ("version", Int, None, false),
    Visitor = ("visitor", Bool, None, false),
    VisitorIp = ("visitor_ip", Str, Some(256), false),
    VisitorNetworkId = ("visitor_network_id", Str, Some(128), false),
    VisitorSiteId = ("visitor_site_id", Str, Some(128), true),
}

/// Number of raw fields.
pub const FIELD_COUNT: usize = 122;

impl Field {
    /// The field's schema entry.
    pub fn spec(self) -> &'static FieldSpec {
        &FIELDS[self as usize]
    }
    /// The field's JSON name (also its column name).
    pub fn name(self) -> &'static str {
        self.spec().name
    }
    /// The field's kind.
    pub fn kind(self) -> Kind {
        self.spec().kind
    }
    /// Whether this field gets a `<name>_tz` local-time column (SPEC.md section 3).
    pub fn has_tz_column(self) -> bool {
        TZ_FIELDS.contains(&self)
    }
}

/// The fields that get a `<name>_tz` column, in column order (SPEC.md section 3).
pub static TZ_FIELDS: &[Field] = &[
    Field::TsAction,
    Field::TsSessionCurrent,
    Field::TsSessionLast,
    Field::MetadataPubDateTmsp,
    Field::MetadataSaveDateTmsp,
    Field::TimestampInfoNginxMs,
    Field::SessionLastSessionTimestamp,
    Field::SessionTimestamp,
    Field::TimestampInfoPixelMs,
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_matches_enum() {
        assert_eq!(FIELDS.len(), FIELD_COUNT);
        for (i, f) in ALL_FIELDS.iter().enumerate() {
            assert_eq!(*f as usize, i);
            assert_eq!(Field::from_name(f.name()), Some(*f));
        }
        assert!(Field::Apikey.spec().required);
        assert!(Field::TsAction.spec().required);
        assert!(!Field::TimestampInfoNginxMs.spec().required);
        assert_eq!(Field::from_name("nope"), None);
    }
}
