//! Personal data controls (issue 6): what happens to `visitor_ip` and `user_agent` before
//! anything leaves the decoder.
//!
//! - `visitor_ip = "keep"` (default) | `"truncate"` | `"hash"` | `"drop"`:
//!   - truncate: IPv4 to its /24 (`203.0.113.77` -> `203.0.113.0`), IPv6 to its /48
//!     (`2001:db8:1:2::5` -> `2001:db8:1::`), written in the standard text form; an
//!     IPv4-mapped IPv6 address (`::ffff:203.0.113.77`) is truncated as IPv4 and stays
//!     mapped (`::ffff:203.0.113.0`). Surrounding ASCII whitespace is ignored. A value that
//!     is not an IP address becomes null and is counted in `DecodeStats::coerced` for
//!     `visitor_ip`;
//!   - hash: lower-case hex of HMAC-SHA256 keyed with `ip_hash_salt` over the address in
//!     standard text form (so `::1` and `0::1` hash the same), or over the trimmed text as
//!     given when it is not an address. Stable across runs and machines for one salt;
//!     without the salt the values cannot be recomputed from guessed addresses;
//!   - drop: always null (not counted as coerced).
//! - `user_agent = "keep"` (default) | `"drop"` (always null).
//! - `ip_hash_salt`: required (at least [`MIN_SALT_BYTES`] bytes) when `visitor_ip` is
//!   `hash`, ignored otherwise; a [`Secret`], printed as `***` by `Debug` and never part of
//!   an error message.
//!
//! Bot classification (`bot_user_agent_patterns` on `user_agent`) still looks at the value
//! as received, before it is dropped: it is read in memory and never stored.

use std::fmt;
use std::net::IpAddr;

use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;

use crate::error::Error;

/// Shortest accepted `ip_hash_salt`, in bytes.
pub const MIN_SALT_BYTES: usize = 16;

/// What to do with `visitor_ip`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Deserialize, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum IpMode {
    #[default]
    Keep,
    /// IPv4 /24, IPv6 /48: the rest zeroed.
    Truncate,
    /// Keyed hash (HMAC-SHA256 with `ip_hash_salt`), hex.
    Hash,
    Drop,
}

/// What to do with `user_agent`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Deserialize, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum UserAgentMode {
    #[default]
    Keep,
    Drop,
}

/// A secret string: `Debug` prints `***` and `Serialize` writes `***` (for showing an
/// effective configuration, not for writing one back); read it with [`Secret::expose`].
#[derive(Clone, PartialEq, Eq, serde::Deserialize)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Secret {
        Secret(value.into())
    }
    /// The secret itself: do not print it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl From<&str> for Secret {
    fn from(value: &str) -> Secret {
        Secret(value.to_owned())
    }
}

impl From<String> for Secret {
    fn from(value: String) -> Secret {
        Secret(value)
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

impl serde::Serialize for Secret {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str("***")
    }
}

/// The `[decode.privacy]` section; the default keeps everything, as the original does.
///
/// - `visitor_ip`: `keep` | `truncate` (IPv4 /24, IPv6 /48, standard text form; IPv4-mapped
///   IPv6 truncated as IPv4; a value that is not an address becomes null and is counted in
///   `DecodeStats::coerced`) | `hash` (hex HMAC-SHA256 keyed with `ip_hash_salt` over the
///   address in standard text form, or over the trimmed text when it is not one) | `drop`
///   (null, not counted). Null, empty or blank values stay null in every mode.
/// - `user_agent`: `keep` | `drop` (null, not counted).
/// - `ip_hash_salt`: required (at least [`MIN_SALT_BYTES`] bytes) for `hash`, ignored
///   otherwise.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct PrivacyConfig {
    pub visitor_ip: IpMode,
    pub user_agent: UserAgentMode,
    /// Key of the `hash` mode; required for it. Printed as `***`.
    pub ip_hash_salt: Option<Secret>,
}

/// The checked settings the decoder applies.
pub(crate) struct Privacy {
    pub(crate) ip: IpMode,
    pub(crate) drop_user_agent: bool,
    /// Keyed once; cloned per value.
    mac: Option<Hmac<Sha256>>,
}

impl fmt::Debug for Privacy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Privacy")
            .field("ip", &self.ip)
            .field("drop_user_agent", &self.drop_user_agent)
            .finish_non_exhaustive()
    }
}

/// What a non-kept field becomes.
pub(crate) enum Redacted {
    /// Replaced by this text.
    Text(String),
    /// Null, counted as coerced (truncate of a value that is not an address).
    Unparseable,
    /// Null, not counted (drop).
    Dropped,
}

impl Privacy {
    pub(crate) fn new(config: PrivacyConfig) -> Result<Privacy, Error> {
        let mac = match (config.visitor_ip, &config.ip_hash_salt) {
            (IpMode::Hash, None) => return Err(Error::MissingSalt),
            (IpMode::Hash, Some(salt)) if salt.expose().len() < MIN_SALT_BYTES => {
                return Err(Error::ShortSalt {
                    min: MIN_SALT_BYTES,
                });
            }
            (IpMode::Hash, Some(salt)) => Some(
                // HMAC takes keys of any length; this cannot fail.
                Hmac::<Sha256>::new_from_slice(salt.expose().as_bytes()).map_err(|_| {
                    Error::ShortSalt {
                        min: MIN_SALT_BYTES,
                    }
                })?,
            ),
            _ => None,
        };
        Ok(Privacy {
            ip: config.visitor_ip,
            drop_user_agent: config.user_agent == UserAgentMode::Drop,
            mac,
        })
    }

    /// Everything kept: nothing to do anywhere.
    pub(crate) fn keeps_all(&self) -> bool {
        self.ip == IpMode::Keep && !self.drop_user_agent
    }

    /// The top-level key names whose values are not kept.
    pub(crate) fn redacted_keys(&self) -> impl Iterator<Item = &'static str> {
        let ip = (self.ip != IpMode::Keep).then_some("visitor_ip");
        let ua = self.drop_user_agent.then_some("user_agent");
        ip.into_iter().chain(ua)
    }

    /// What a `visitor_ip` given as `text` becomes (not called in keep mode).
    pub(crate) fn ip(&self, text: &str) -> Redacted {
        let text = text.trim_ascii();
        match self.ip {
            IpMode::Keep => Redacted::Text(text.to_owned()),
            IpMode::Drop => Redacted::Dropped,
            IpMode::Truncate => match text.parse::<IpAddr>() {
                Ok(ip) => Redacted::Text(truncate(ip).to_string()),
                Err(_) => Redacted::Unparseable,
            },
            IpMode::Hash => {
                let canonical = text.parse::<IpAddr>().ok().map(|ip| ip.to_string());
                Redacted::Text(self.hash(canonical.as_deref().unwrap_or(text)))
            }
        }
    }

    fn hash(&self, text: &str) -> String {
        let Some(mac) = &self.mac else {
            // Hash mode always has a key (checked in `new`); never reached.
            return String::new();
        };
        let mut mac = mac.clone();
        mac.update(text.as_bytes());
        let digest = mac.finalize().into_bytes();
        let mut out = String::with_capacity(64);
        for b in digest.iter() {
            out.push(HEX[usize::from(b >> 4)]);
            out.push(HEX[usize::from(b & 0xf)]);
        }
        out
    }
}

const HEX: [char; 16] = [
    '0', '1', '2', '3', '4', '5', '6', '7', '8', '9', 'a', 'b', 'c', 'd', 'e', 'f',
];

/// IPv4 /24, IPv6 /48 (IPv4-mapped IPv6 as IPv4, kept mapped).
fn truncate(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(v4) => {
            let [a, b, c, _] = v4.octets();
            IpAddr::from([a, b, c, 0])
        }
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => {
                let [a, b, c, _] = v4.octets();
                IpAddr::V6(std::net::Ipv4Addr::from([a, b, c, 0]).to_ipv6_mapped())
            }
            None => {
                let s = v6.segments();
                IpAddr::from([s[0], s[1], s[2], 0, 0, 0, 0, 0])
            }
        },
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn with(ip: IpMode, salt: Option<&str>) -> Privacy {
        Privacy::new(PrivacyConfig {
            visitor_ip: ip,
            user_agent: UserAgentMode::Keep,
            ip_hash_salt: salt.map(Secret::from),
        })
        .unwrap()
    }

    fn text(r: Redacted) -> Option<String> {
        match r {
            Redacted::Text(t) => Some(t),
            _ => None,
        }
    }

    #[test]
    fn truncation_by_hand() {
        let p = with(IpMode::Truncate, None);
        let cases = [
            ("203.0.113.77", "203.0.113.0"),
            ("203.0.113.0", "203.0.113.0"),
            (" 10.1.2.3\t", "10.1.2.0"),
            ("2001:db8:1:2:3:4:5:6", "2001:db8:1::"),
            ("2001:0db8:0001:ffff::1", "2001:db8:1::"),
            ("::1", "::"),
            ("::ffff:203.0.113.77", "::ffff:203.0.113.0"),
        ];
        for (input, want) in cases {
            assert_eq!(text(p.ip(input)).as_deref(), Some(want), "input {input:?}");
        }
        for bad in [
            "",
            "unknown",
            "203.0.113",
            "203.0.113.256",
            "1.2.3.4:80",
            "fe80::1%eth0",
        ] {
            assert!(matches!(p.ip(bad), Redacted::Unparseable), "input {bad:?}");
        }
    }

    #[test]
    fn hash_is_keyed_hmac_sha256_hex() {
        // RFC 4231 test case 2: key "Jefe", data "what do ya want for nothing?". The salt
        // minimum is checked in `new`, so the key is set directly here.
        let p = Privacy {
            ip: IpMode::Hash,
            drop_user_agent: false,
            mac: Some(Hmac::<Sha256>::new_from_slice(b"Jefe").unwrap()),
        };
        assert_eq!(
            p.hash("what do ya want for nothing?"),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
        let a = with(IpMode::Hash, Some("0123456789abcdef-salt-a"));
        let b = with(IpMode::Hash, Some("0123456789abcdef-salt-b"));
        let ha = text(a.ip("203.0.113.77")).unwrap();
        assert_eq!(ha.len(), 64);
        assert!(
            ha.bytes()
                .all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase())
        );
        assert_eq!(text(a.ip("203.0.113.77")).unwrap(), ha, "stable");
        assert_ne!(text(b.ip("203.0.113.77")).unwrap(), ha, "keyed");
        assert_ne!(text(a.ip("203.0.113.78")).unwrap(), ha);
        // The same address written two ways hashes the same.
        assert_eq!(text(a.ip("::1")), text(a.ip("0:0::1")));
        // Not an address: hashed as given (trimmed), never passed through.
        let h = text(a.ip(" not-an-ip ")).unwrap();
        assert_eq!(h.len(), 64);
        assert_eq!(text(a.ip("not-an-ip")).unwrap(), h);
    }

    #[test]
    fn salt_is_required_and_never_shown() {
        let cfg = |salt: Option<&str>| PrivacyConfig {
            visitor_ip: IpMode::Hash,
            user_agent: UserAgentMode::Keep,
            ip_hash_salt: salt.map(Secret::from),
        };
        assert!(matches!(Privacy::new(cfg(None)), Err(Error::MissingSalt)));
        let short = "s3cr3t-short";
        let err = Privacy::new(cfg(Some(short))).unwrap_err();
        assert!(matches!(err, Error::ShortSalt { min: 16 }));
        assert!(!err.to_string().contains(short));
        let salt = "s3cr3t-salt-0123456789";
        let config = cfg(Some(salt));
        assert!(!format!("{config:?}").contains(salt));
        assert!(format!("{config:?}").contains("***"));
        let privacy = Privacy::new(config).unwrap();
        assert!(!format!("{privacy:?}").contains(salt));
        // A salt is not needed for the other modes.
        for mode in [IpMode::Keep, IpMode::Truncate, IpMode::Drop] {
            assert!(
                Privacy::new(PrivacyConfig {
                    visitor_ip: mode,
                    ..PrivacyConfig::default()
                })
                .is_ok()
            );
        }
    }
}
