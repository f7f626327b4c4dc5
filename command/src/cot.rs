//! Cursor-on-Target (CoT 2.0) events: the model, XML in and out, a splitter for TCP streams,
//! and the mapping between CoT and Mizugiwa records.
//!
//! Pure code, no I/O: `tak.rs` moves the bytes. Everything that parses untrusted input returns
//! a [`CotError`] instead of panicking, and every buffer is bounded ([`MAX_EVENT_BYTES`]):
//! CoT arrives from TAK clients we do not control.
//!
//! What a CoT event looks like (the subset we read and write):
//!
//! ```xml
//! <event version="2.0" uid="mizugiwa.drones.d1" type="a-f-A-M-F-Q" how="m-g"
//!        time="2025-01-01T00:00:00.000Z" start="2025-01-01T00:00:00.000Z"
//!        stale="2025-01-01T00:00:30.000Z">
//!   <point lat="34.2" lon="129.3" hae="120" ce="9999999" le="9999999"/>
//!   <detail><contact callsign="d1"/><remarks>battery 80%</remarks></detail>
//! </event>
//! ```

use std::collections::VecDeque;
use std::fmt::Write as _;

use quick_xml::events::{BytesStart, Event};
use quick_xml::{Reader, XmlVersion};
use serde_json::{Map, Value};

/// The largest CoT document we accept, and the most a stream may buffer for one unfinished
/// document. Real events are well under 4 KiB; 64 KiB leaves room for rich `<detail>`s while a
/// hostile peer cannot make us hold more.
pub const MAX_EVENT_BYTES: usize = 64 * 1024;

/// The longest `uid` we accept. A uid becomes a record id in the `cot` collection, and the
/// store refuses ids over 256 bytes.
pub const MAX_UID_LEN: usize = 256;

/// CoT's "unknown" value for `hae`, `ce` and `le` (the spec's 9999999 m).
pub const UNKNOWN: f64 = 9_999_999.0;

/// Every uid we publish starts with this, so the gateway can tell its own events when a TAK
/// server replays them back (taky replays persisted events to every new connection).
pub const UID_PREFIX: &str = "mizugiwa.";

/// The collection that events ingested from TAK are written to.
pub const COT_COLLECTION: &str = "cot";

/// Why a CoT document was refused.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum CotError {
    #[error("CoT document of {len} bytes exceeds the {max}-byte limit")]
    TooLarge { len: usize, max: usize },
    #[error("CoT document is not valid UTF-8")]
    NotUtf8,
    #[error("CoT document contains a character XML 1.0 does not allow (U+{0:04X})")]
    IllegalChar(u32),
    #[error("not well-formed XML: {0}")]
    Xml(String),
    #[error("a DOCTYPE is not allowed in CoT")]
    DocType,
    #[error("text outside the <event> element")]
    TextOutsideRoot,
    #[error("no <event> element")]
    NoEvent,
    #[error("root element is <{0}>, not <event>")]
    NotEvent(String),
    #[error("more than one root element")]
    MultipleRoots,
    #[error("<{element}> has no `{attr}` attribute")]
    MissingAttr {
        element: &'static str,
        attr: &'static str,
    },
    #[error("bad `{attr}` timestamp {value:?}: {reason}")]
    BadTimestamp {
        attr: &'static str,
        value: String,
        reason: &'static str,
    },
    #[error("bad `{attr}` value {value:?}: {reason}")]
    BadNumber {
        attr: &'static str,
        value: String,
        reason: &'static str,
    },
    #[error("stale ({stale_ms} ms) is before start ({start_ms} ms)")]
    StaleBeforeStart { start_ms: u64, stale_ms: u64 },
    #[error("bad uid: {0}")]
    BadUid(&'static str),
    #[error("uid of {len} bytes exceeds the {max}-byte limit")]
    UidTooLong { len: usize, max: usize },
    #[error("bad type: {0}")]
    BadType(&'static str),
    #[error("<event> has no <point>")]
    MissingPoint,
    #[error("<event> has more than one <{0}>")]
    Duplicate(&'static str),
    #[error("data outside any XML element between events")]
    Junk,
    #[error("element larger than {max} bytes (skipped)")]
    ElementTooLarge { max: usize },
}

/// A CoT `<point>`: WGS84 degrees, metres (height above ellipsoid, circular and linear error).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct CotPoint {
    pub lat: f64,
    pub lon: f64,
    pub hae: f64,
    pub ce: f64,
    pub le: f64,
}

impl CotPoint {
    /// A position with unknown height and errors.
    pub fn new(lat: f64, lon: f64) -> Self {
        CotPoint {
            lat,
            lon,
            hae: UNKNOWN,
            ce: UNKNOWN,
            le: UNKNOWN,
        }
    }
}

/// `<track course="deg" speed="m/s"/>` in `<detail>`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct CotTrack {
    pub course: f64,
    pub speed: f64,
}

/// What we understand of `<detail>`, plus its verbatim content.
///
/// `raw` is the inner XML of a parsed `<detail>`, byte for byte. When it is `Some`, [`CotEvent::to_xml`] writes
/// it unchanged and ignores the other fields (they are read-only views of it), so an event
/// passes through unchanged, including detail elements we do not model (`__group`, `takv`,
/// `link`, ...). Events we build ourselves leave `raw` at `None` and set the fields.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct CotDetail {
    /// `<contact callsign="..."/>`: the label TAK clients show.
    pub callsign: Option<String>,
    /// `<remarks>...</remarks>`.
    pub remarks: Option<String>,
    /// `<track course speed/>`.
    pub track: Option<CotTrack>,
    /// The inner XML of a parsed `<detail>`.
    pub raw: Option<String>,
}

/// One CoT event. Times are UTC milliseconds since the Unix epoch.
#[derive(Debug, Clone, PartialEq)]
pub struct CotEvent {
    pub uid: String,
    /// The CoT type, e.g. `a-f-A-M-F-Q` (atom, friendly, air, military, fixed wing, drone).
    pub event_type: String,
    /// How the position was obtained, e.g. `m-g` (machine, GPS) or `h-e` (human, estimated).
    /// Empty when a parsed event had none; [`CotEvent::to_xml`] then writes `m-g`.
    pub how: String,
    pub time_ms: u64,
    pub start_ms: u64,
    pub stale_ms: u64,
    pub point: CotPoint,
    pub detail: Option<CotDetail>,
}

impl CotEvent {
    /// True once `now_ms` has reached the stale time: the event no longer describes the world
    /// and TAK clients drop it.
    pub fn is_stale(&self, now_ms: u64) -> bool {
        now_ms >= self.stale_ms
    }

    /// True for TAK protocol chatter (`t-x-c-t` ping, `t-x-c-t-r` pong) that is not
    /// situational data and must not become a record.
    pub fn is_ping(&self) -> bool {
        self.event_type == "t-x-c-t" || self.event_type.starts_with("t-x-c-t-")
    }

    /// The callsign, if the detail carries one.
    pub fn callsign(&self) -> Option<&str> {
        self.detail.as_ref()?.callsign.as_deref()
    }

    /// The remarks, if the detail carries them.
    pub fn remarks(&self) -> Option<&str> {
        self.detail.as_ref()?.remarks.as_deref()
    }

    /// A TAK ping (`t-x-c-t`): TAK servers answer with a pong, which keeps NAT and idle
    /// timers from closing a quiet connection.
    pub fn ping(uid: &str, now_ms: u64) -> CotEvent {
        CotEvent {
            uid: uid.to_string(),
            event_type: "t-x-c-t".to_string(),
            how: "h-g-i-g-o".to_string(),
            time_ms: now_ms,
            start_ms: now_ms,
            stale_ms: now_ms + 20_000,
            point: CotPoint::new(0.0, 0.0),
            detail: None,
        }
    }

    /// The event as a CoT 2.0 document, without an XML declaration (TAK servers accept both,
    /// and taky strips declarations anyway).
    pub fn to_xml(&self) -> String {
        let mut out = String::with_capacity(512);
        let how = if self.how.is_empty() {
            // taky crashes on an event without `how` (it persists it, then fails to serialise
            // it for every client that connects later), and the CoT schema requires it.
            "m-g"
        } else {
            &self.how
        };
        out.push_str("<event version=\"2.0\" uid=\"");
        escape_into(&mut out, &self.uid, true);
        out.push_str("\" type=\"");
        escape_into(&mut out, &self.event_type, true);
        out.push_str("\" how=\"");
        escape_into(&mut out, how, true);
        let _ = write!(
            out,
            "\" time=\"{}\" start=\"{}\" stale=\"{}\">",
            format_time(self.time_ms),
            format_time(self.start_ms),
            format_time(self.stale_ms)
        );
        let p = &self.point;
        let _ = write!(
            out,
            "<point lat=\"{}\" lon=\"{}\" hae=\"{}\" ce=\"{}\" le=\"{}\"/>",
            num(p.lat),
            num(p.lon),
            num(p.hae),
            num(p.ce),
            num(p.le)
        );
        if let Some(detail) = &self.detail {
            out.push_str("<detail>");
            if let Some(raw) = &detail.raw {
                out.push_str(raw);
            } else {
                if let Some(callsign) = &detail.callsign {
                    out.push_str("<contact callsign=\"");
                    escape_into(&mut out, callsign, true);
                    out.push_str("\"/>");
                }
                if let Some(remarks) = &detail.remarks {
                    out.push_str("<remarks>");
                    escape_into(&mut out, remarks, false);
                    out.push_str("</remarks>");
                }
                if let Some(track) = &detail.track {
                    let _ = write!(
                        out,
                        "<track course=\"{}\" speed=\"{}\"/>",
                        num(track.course),
                        num(track.speed)
                    );
                }
            }
            out.push_str("</detail>");
        }
        out.push_str("</event>");
        out
    }
}

/// Formats a float for XML: non-finite values (which a valid event never holds) become 0 so
/// the output always parses.
fn num(v: f64) -> f64 {
    if v.is_finite() {
        v
    } else {
        0.0
    }
}

/// Escapes text for element content or (with `attr`) a double-quoted attribute value.
/// Characters XML 1.0 cannot carry at all become U+FFFD: a peer's parser (taky's lxml) drops
/// the whole connection on them. In attributes, tab and newlines are written as character
/// references because parsers normalise literal ones to spaces.
fn escape_into(out: &mut String, s: &str, attr: bool) {
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' if attr => out.push_str("&quot;"),
            '\t' if attr => out.push_str("&#9;"),
            '\n' if attr => out.push_str("&#10;"),
            '\r' => out.push_str("&#13;"),
            c if !xml_char_ok(c) => out.push('\u{FFFD}'),
            c => out.push(c),
        }
    }
}

/// The XML 1.0 `Char` production.
fn xml_char_ok(c: char) -> bool {
    matches!(c, '\t' | '\n' | '\r' | '\u{20}'..='\u{D7FF}' | '\u{E000}'..='\u{FFFD}' | '\u{10000}'..='\u{10FFFF}')
}

// ---------------------------------------------------------------------------------------------
// Time stamps: ISO 8601 / xs:dateTime in UTC. Hand-written (a few lines of civil-calendar
// arithmetic) rather than a date crate: we need one format in and one format out.

/// Formats UTC milliseconds as `YYYY-MM-DDTHH:MM:SS.mmmZ`.
pub fn format_time(ms: u64) -> String {
    let secs = ms / 1000;
    let (y, m, d) = civil_from_days((secs / 86_400) as i64);
    let rem = secs % 86_400;
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{:03}Z",
        rem / 3600,
        rem / 60 % 60,
        rem % 60,
        ms % 1000
    )
}

/// Parses `YYYY-MM-DDTHH:MM:SS[.fraction](Z|±HH:MM)` into UTC milliseconds. Fractions beyond
/// milliseconds are truncated; a time without a zone is refused (ambiguous); so is anything
/// before 1970.
pub fn parse_time(s: &str) -> Result<u64, &'static str> {
    let b = s.as_bytes();
    if b.len() < 20 {
        return Err("too short for YYYY-MM-DDTHH:MM:SSZ");
    }
    let digits = |range: std::ops::Range<usize>| -> Result<u32, &'static str> {
        let mut v = 0u32;
        for &c in &b[range] {
            if !c.is_ascii_digit() {
                return Err("expected a digit");
            }
            v = v * 10 + u32::from(c - b'0');
        }
        Ok(v)
    };
    if b[4] != b'-'
        || b[7] != b'-'
        || !matches!(b[10], b'T' | b't')
        || b[13] != b':'
        || b[16] != b':'
    {
        return Err("expected YYYY-MM-DDTHH:MM:SS");
    }
    let (year, month, day) = (digits(0..4)?, digits(5..7)?, digits(8..10)?);
    let (hour, minute, second) = (digits(11..13)?, digits(14..16)?, digits(17..19)?);
    if !(1..=12).contains(&month) || day == 0 || day > days_in_month(year, month) {
        return Err("no such date");
    }
    if hour > 23 || minute > 59 || second > 59 {
        return Err("no such time of day");
    }
    let mut i = 19;
    let mut millis = 0u64;
    if b[i] == b'.' {
        i += 1;
        let start = i;
        while i < b.len() && b[i].is_ascii_digit() {
            if i - start < 3 {
                millis = millis * 10 + u64::from(b[i] - b'0');
            }
            i += 1;
        }
        let n = i - start;
        if n == 0 {
            return Err("empty fraction");
        }
        for _ in n..3 {
            millis *= 10;
        }
    }
    let offset_s: i64 = match &b[i..] {
        [b'Z' | b'z'] => 0,
        [sign @ (b'+' | b'-'), h1, h2, b':', m1, m2] => {
            let (h, m) = (two(*h1, *h2)?, two(*m1, *m2)?);
            if h > 23 || m > 59 {
                return Err("bad zone offset");
            }
            let off = i64::from(h * 3600 + m * 60);
            if *sign == b'+' {
                off
            } else {
                -off
            }
        }
        [] => return Err("no time zone (expected Z)"),
        _ => return Err("bad time zone (expected Z or ±HH:MM)"),
    };
    let days = days_from_civil(year as i64, month, day);
    let local_s = days * 86_400 + i64::from(hour * 3600 + minute * 60 + second);
    let utc_s = local_s - offset_s;
    if utc_s < 0 {
        return Err("before 1970");
    }
    Ok(utc_s as u64 * 1000 + millis)
}

fn two(a: u8, b: u8) -> Result<u32, &'static str> {
    if a.is_ascii_digit() && b.is_ascii_digit() {
        Ok(u32::from(a - b'0') * 10 + u32::from(b - b'0'))
    } else {
        Err("expected a digit")
    }
}

fn days_in_month(y: u32, m: u32) -> u32 {
    match m {
        4 | 6 | 9 | 11 => 30,
        2 if y.is_multiple_of(4) && (!y.is_multiple_of(100) || y.is_multiple_of(400)) => 29,
        2 => 28,
        _ => 31,
    }
}

/// Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's algorithm).
fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (i64::from(m) + 9) % 12;
    let doy = (153 * mp + 2) / 5 + i64::from(d) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// The inverse of [`days_from_civil`].
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

// ---------------------------------------------------------------------------------------------
// Parsing.

/// Parses one CoT document (an optional prologue, then one `<event>`).
///
/// Refuses, with a [`CotError`] saying why: input over [`MAX_EVENT_BYTES`], anything that is
/// not well-formed UTF-8 XML 1.0, a DOCTYPE, no root or several roots, a root other than
/// `<event>`, missing `uid`/`type`/`time`/`start`/`stale`, unparseable times, stale before
/// start, a missing or duplicated `<point>`, latitude outside ±90 or longitude outside ±180
/// (or any non-finite number), and a uid that could not be a record id (empty, over
/// [`MAX_UID_LEN`] bytes, control characters, a leading `$`).
pub fn parse(input: &[u8]) -> Result<CotEvent, CotError> {
    if input.len() > MAX_EVENT_BYTES {
        return Err(CotError::TooLarge {
            len: input.len(),
            max: MAX_EVENT_BYTES,
        });
    }
    let text = std::str::from_utf8(input).map_err(|_| CotError::NotUtf8)?;
    if let Some(c) = text.chars().find(|&c| !xml_char_ok(c)) {
        return Err(CotError::IllegalChar(u32::from(c)));
    }
    let text = text.strip_prefix('\u{FEFF}').unwrap_or(text);

    let mut reader = Reader::from_str(text);
    // Defaults already check end-tag names and refuse a bare `&`; comments are checked too
    // because a `--` inside one would make lxml (taky) drop the connection if we forwarded it.
    reader.config_mut().check_comments = true;

    let mut root_seen = false;
    let mut depth = 0usize;
    let mut head: Option<Head> = None;
    let mut point: Option<CotPoint> = None;
    let mut detail: Option<DetailScan> = None;

    loop {
        let before = reader.buffer_position() as usize;
        let event = reader.read_event().map_err(xml_err)?;
        match event {
            Event::Eof => break,
            // lxml (taky) refuses a declaration after the start; so do we.
            Event::Decl(_) if root_seen => {
                return Err(CotError::Xml("XML declaration after the start".into()))
            }
            Event::Decl(_) | Event::PI(_) | Event::Comment(_) => {}
            Event::DocType(_) => return Err(CotError::DocType),
            Event::Text(t) => {
                if depth == 0 {
                    if !t.bytes().all(|c| c.is_ascii_whitespace()) {
                        return Err(CotError::TextOutsideRoot);
                    }
                } else if let Some(d) = detail.as_mut() {
                    d.text(&t.xml_content(XmlVersion::Implicit1_0));
                }
            }
            Event::CData(t) => {
                if depth == 0 {
                    return Err(CotError::TextOutsideRoot);
                }
                if let Some(d) = detail.as_mut() {
                    d.text(&t.xml_content(XmlVersion::Implicit1_0));
                }
            }
            Event::GeneralRef(r) => {
                if depth == 0 {
                    return Err(CotError::TextOutsideRoot);
                }
                let resolved = match r.resolve_char_ref().map_err(xml_err)? {
                    Some(c) if xml_char_ok(c) => c.to_string(),
                    Some(c) => return Err(CotError::IllegalChar(u32::from(c))),
                    None => quick_xml::escape::resolve_predefined_entity(&r)
                        .ok_or_else(|| CotError::Xml(format!("unknown entity &{};", &*r)))?
                        .to_string(),
                };
                if let Some(d) = detail.as_mut() {
                    d.text(&resolved);
                }
            }
            Event::Start(ref e) | Event::Empty(ref e) => {
                let empty = matches!(event, Event::Empty(_));
                // Every attribute in the document is decoded, so a bad escape anywhere (also
                // inside a detail we only pass through) refuses the event.
                let attrs = attributes(e)?;
                let qname = e.name();
                let name: &str = qname.as_ref();
                if depth == 0 {
                    if root_seen {
                        return Err(CotError::MultipleRoots);
                    }
                    root_seen = true;
                    if name != "event" {
                        return Err(CotError::NotEvent(name.chars().take(64).collect()));
                    }
                    head = Some(Head::from_attrs(&attrs)?);
                } else if depth == 1 {
                    match name {
                        "point" => {
                            if point.is_some() {
                                return Err(CotError::Duplicate("point"));
                            }
                            point = Some(point_from_attrs(&attrs)?);
                        }
                        "detail" => {
                            if detail.is_some() {
                                return Err(CotError::Duplicate("detail"));
                            }
                            let mut scan = DetailScan::new(reader.buffer_position() as usize);
                            if empty {
                                scan.raw = Some(String::new());
                            }
                            detail = Some(scan);
                        }
                        _ => {}
                    }
                } else if let Some(d) = detail.as_mut().filter(|d| d.raw.is_none()) {
                    d.open(depth, name, &attrs, empty);
                }
                if !empty {
                    depth += 1;
                }
            }
            Event::End(_) => {
                depth = depth.saturating_sub(1);
                if let Some(d) = detail.as_mut().filter(|d| d.raw.is_none()) {
                    if depth == 1 {
                        // `before` is where `</detail>` starts: the inner XML ends there.
                        d.raw = Some(text.get(d.inner_start..before).unwrap_or("").to_string());
                    } else {
                        d.close(depth);
                    }
                }
            }
        }
    }
    if depth != 0 {
        return Err(CotError::Xml("unclosed element at end of input".into()));
    }
    let head = head.ok_or(CotError::NoEvent)?;
    let point = point.ok_or(CotError::MissingPoint)?;
    Ok(CotEvent {
        uid: head.uid,
        event_type: head.event_type,
        how: head.how,
        time_ms: head.time_ms,
        start_ms: head.start_ms,
        stale_ms: head.stale_ms,
        point,
        detail: detail.map(DetailScan::finish),
    })
}

fn xml_err(e: impl std::fmt::Display) -> CotError {
    // By characters: the message may quote non-ASCII input.
    CotError::Xml(e.to_string().chars().take(200).collect())
}

/// Decodes an element's attributes (name, unescaped value), refusing duplicates and bad escapes.
fn attributes(e: &BytesStart<'_>) -> Result<Vec<(String, String)>, CotError> {
    let mut out = Vec::new();
    for attr in e.attributes() {
        let attr = attr.map_err(xml_err)?;
        let value = attr
            .normalized_value(XmlVersion::Implicit1_0)
            .map_err(xml_err)?;
        if let Some(c) = value.chars().find(|&c| !xml_char_ok(c)) {
            return Err(CotError::IllegalChar(u32::from(c)));
        }
        let key = AsRef::<str>::as_ref(&attr.key).to_string();
        out.push((key, value.into_owned()));
    }
    Ok(out)
}

fn attr<'a>(attrs: &'a [(String, String)], name: &str) -> Option<&'a str> {
    attrs
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
}

/// The `<event>` element's attributes, checked.
struct Head {
    uid: String,
    event_type: String,
    how: String,
    time_ms: u64,
    start_ms: u64,
    stale_ms: u64,
}

impl Head {
    fn from_attrs(attrs: &[(String, String)]) -> Result<Head, CotError> {
        let req = |name: &'static str| {
            attr(attrs, name).ok_or(CotError::MissingAttr {
                element: "event",
                attr: name,
            })
        };
        let uid = req("uid")?;
        check_uid(uid)?;
        let event_type = req("type")?;
        check_type(event_type)?;
        let time = |name: &'static str| -> Result<u64, CotError> {
            let value = req(name)?;
            parse_time(value.trim()).map_err(|reason| CotError::BadTimestamp {
                attr: name,
                value: value.chars().take(64).collect(),
                reason,
            })
        };
        let (time_ms, start_ms, stale_ms) = (time("time")?, time("start")?, time("stale")?);
        if stale_ms < start_ms {
            return Err(CotError::StaleBeforeStart { start_ms, stale_ms });
        }
        Ok(Head {
            uid: uid.to_string(),
            event_type: event_type.to_string(),
            how: attr(attrs, "how").unwrap_or("").to_string(),
            time_ms,
            start_ms,
            stale_ms,
        })
    }
}

/// A uid must be usable as a record id of the `cot` collection.
fn check_uid(uid: &str) -> Result<(), CotError> {
    if uid.is_empty() {
        return Err(CotError::BadUid("empty"));
    }
    if uid.len() > MAX_UID_LEN {
        return Err(CotError::UidTooLong {
            len: uid.len(),
            max: MAX_UID_LEN,
        });
    }
    if uid.chars().any(char::is_control) {
        return Err(CotError::BadUid("control character"));
    }
    if uid.starts_with('$') {
        return Err(CotError::BadUid("a leading `$` is reserved for the store"));
    }
    Ok(())
}

/// A CoT type is a short dash-separated code (`a-f-G-U-C`); anything else is not one.
fn check_type(t: &str) -> Result<(), CotError> {
    if t.is_empty() {
        return Err(CotError::BadType("empty"));
    }
    if t.len() > 64 {
        return Err(CotError::BadType("longer than 64 bytes"));
    }
    if !t
        .bytes()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'-' | b'.' | b'_' | b':'))
    {
        return Err(CotError::BadType(
            "characters other than letters, digits and -._:",
        ));
    }
    Ok(())
}

fn point_from_attrs(attrs: &[(String, String)]) -> Result<CotPoint, CotError> {
    let number = |name: &'static str, required: bool| -> Result<f64, CotError> {
        let Some(value) = attr(attrs, name) else {
            return if required {
                Err(CotError::MissingAttr {
                    element: "point",
                    attr: name,
                })
            } else {
                Ok(UNKNOWN)
            };
        };
        let bad = |reason| CotError::BadNumber {
            attr: name,
            value: value.chars().take(64).collect(),
            reason,
        };
        let v: f64 = value.trim().parse().map_err(|_| bad("not a number"))?;
        if !v.is_finite() {
            return Err(bad("not finite"));
        }
        Ok(v)
    };
    let p = CotPoint {
        lat: number("lat", true)?,
        lon: number("lon", true)?,
        hae: number("hae", false)?,
        ce: number("ce", false)?,
        le: number("le", false)?,
    };
    let range = |name: &'static str, v: f64, max: f64| {
        if v.abs() > max {
            Err(CotError::BadNumber {
                attr: name,
                value: v.to_string(),
                reason: "out of range",
            })
        } else {
            Ok(())
        }
    };
    range("lat", p.lat, 90.0)?;
    range("lon", p.lon, 180.0)?;
    Ok(p)
}

/// Collects what we model from `<detail>` while the reader walks through it.
struct DetailScan {
    inner_start: usize,
    callsign: Option<String>,
    remarks: Option<String>,
    track: Option<CotTrack>,
    /// Depth of the first `<remarks>` while we are inside it.
    in_remarks: Option<usize>,
    raw: Option<String>,
}

impl DetailScan {
    fn new(inner_start: usize) -> Self {
        DetailScan {
            inner_start,
            callsign: None,
            remarks: None,
            track: None,
            in_remarks: None,
            raw: None,
        }
    }

    /// An element opened at `depth` (2 = a direct child of `<detail>`); `empty` for `<x/>`.
    fn open(&mut self, depth: usize, name: &str, attrs: &[(String, String)], empty: bool) {
        if depth != 2 {
            return;
        }
        match name {
            "contact" if self.callsign.is_none() => {
                self.callsign = attr(attrs, "callsign").map(str::to_string);
            }
            "remarks" if self.remarks.is_none() => {
                self.remarks = Some(String::new());
                if !empty {
                    self.in_remarks = Some(depth);
                }
            }
            "track" if self.track.is_none() => {
                // An unreadable track is ignored rather than refusing the event: it is an
                // optional decoration of the position.
                let num = |n| attr(attrs, n).and_then(|v| v.trim().parse::<f64>().ok());
                if let (Some(course), Some(speed)) = (num("course"), num("speed")) {
                    if course.is_finite() && speed.is_finite() {
                        self.track = Some(CotTrack { course, speed });
                    }
                }
            }
            _ => {}
        }
    }

    /// An element closed, the reader now being at `depth`.
    fn close(&mut self, depth: usize) {
        if self.in_remarks == Some(depth) {
            self.in_remarks = None;
        }
    }

    fn text(&mut self, t: &str) {
        if self.in_remarks.is_some() {
            if let Some(r) = self.remarks.as_mut() {
                r.push_str(t);
            }
        }
    }

    fn finish(self) -> CotDetail {
        CotDetail {
            callsign: self.callsign,
            remarks: self.remarks,
            track: self.track,
            raw: self.raw,
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Stream splitting.

/// How many trailing bytes a splitter keeps while skipping an oversized element: enough for
/// every look-behind of the scanner (`<![CDATA[` is the longest, 9 bytes).
const SKIP_KEEP: usize = 16;

/// Splits the byte stream of a TAK connection into single documents.
///
/// TAK streams are concatenated XML documents: `<event>...</event><event>...</event>`, each
/// optionally preceded by `<?xml ...?>` (ATAK and pytak send one per event), comments or
/// whitespace. Push bytes as they arrive with [`CotStream::push`], then take complete
/// top-level elements with [`CotStream::next_document`]; validate them with [`parse`].
///
/// The splitter is a byte-level state machine (linear in the input; a peer trickling one byte
/// at a time costs no rescans). It honours quotes in tags, comments, CDATA and processing
/// instructions, so a `>` or `</event>` inside them does not end an element. It does not
/// validate XML: that is [`parse`]'s job.
///
/// Memory is bounded: an element (or comment, ...) still open after `max` bytes yields
/// [`CotError::ElementTooLarge`] at once; the splitter then skips it without buffering
/// (tracking only nesting and quotes) and carries on with the next document, so one
/// oversized event from some TAK client does not cost the connection. The buffer never holds
/// more than `max` bytes plus the last chunk pushed.
#[derive(Debug)]
pub struct CotStream {
    buf: Vec<u8>,
    /// Stream offset of `buf[0]`. The offsets below are stream offsets too, so they stay
    /// meaningful when the front of the buffer is dropped.
    base: usize,
    /// Next byte to scan.
    pos: usize,
    /// Where the current markup token (`<...`) starts.
    tok: usize,
    /// Where the current top-level element (or top-level markup token) starts.
    start: Option<usize>,
    state: Scan,
    /// Element nesting depth.
    depth: usize,
    max: usize,
    /// The current top-level item is over `max` and being skipped.
    skipping: bool,
    ready: VecDeque<Result<Vec<u8>, CotError>>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Scan {
    /// Between top-level elements.
    Top,
    /// Non-markup bytes between top-level elements (already reported).
    Junk,
    /// Character data inside an element.
    Text,
    /// Just after `<`.
    Lt,
    /// After `<!`, deciding between a comment, CDATA and a declaration.
    Bang,
    Comment,
    CData,
    /// `<!DOCTYPE ...>` or another declaration: up to `>` (nested brackets are not tracked).
    Decl,
    Pi,
    /// In a start tag; `Some(q)` while inside a quoted attribute value.
    Open(Option<u8>),
    Close,
}

impl Default for CotStream {
    fn default() -> Self {
        Self::new()
    }
}

impl CotStream {
    /// A splitter with the [`MAX_EVENT_BYTES`] bound.
    pub fn new() -> Self {
        Self::with_limit(MAX_EVENT_BYTES)
    }

    /// A splitter that refuses elements larger than `max` bytes.
    pub fn with_limit(max: usize) -> Self {
        CotStream {
            buf: Vec::new(),
            base: 0,
            pos: 0,
            tok: 0,
            start: None,
            state: Scan::Top,
            depth: 0,
            max,
            skipping: false,
            ready: VecDeque::new(),
        }
    }

    /// Bytes held for an unfinished element.
    pub fn buffered(&self) -> usize {
        self.buf.len()
    }

    /// Appends bytes read from the connection and scans them.
    pub fn push(&mut self, data: &[u8]) {
        self.buf.extend_from_slice(data);
        self.scan();
    }

    /// The next complete top-level element (the bytes from `<` to the closing `>`), or an
    /// error for junk between elements or an oversized element. `None` when more input is
    /// needed.
    pub fn next_document(&mut self) -> Option<Result<Vec<u8>, CotError>> {
        self.ready.pop_front()
    }

    /// The byte at stream offset `at` (which the scanner guarantees is still buffered).
    fn at(&self, at: usize) -> u8 {
        self.buf[at - self.base]
    }

    fn scan(&mut self) {
        while self.pos < self.base + self.buf.len() {
            let i = self.pos;
            let c = self.at(i);
            self.pos += 1;
            match self.state {
                Scan::Top | Scan::Junk => {
                    if c == b'<' {
                        self.tok = i;
                        self.start = Some(i);
                        self.state = Scan::Lt;
                    } else if self.state == Scan::Top && !c.is_ascii_whitespace() {
                        // One error per run of junk (up to the next `<`), not one per byte.
                        self.ready.push_back(Err(CotError::Junk));
                        self.state = Scan::Junk;
                    }
                }
                Scan::Text => {
                    if c == b'<' {
                        self.tok = i;
                        self.state = Scan::Lt;
                    }
                }
                Scan::Lt => {
                    self.state = match c {
                        b'!' => Scan::Bang,
                        b'?' => Scan::Pi,
                        b'/' => Scan::Close,
                        b'>' => self.after_markup(i, false),
                        _ => Scan::Open(None),
                    };
                }
                Scan::Bang => {
                    let seen = &self.buf[self.tok - self.base..=i - self.base];
                    if seen == b"<!--" {
                        self.state = Scan::Comment;
                    } else if seen == b"<![CDATA[" {
                        self.state = Scan::CData;
                    } else if !(b"<!--".starts_with(seen) || b"<![CDATA[".starts_with(seen)) {
                        self.state = if c == b'>' {
                            self.after_markup(i, false)
                        } else {
                            Scan::Decl
                        };
                    }
                }
                Scan::Comment => {
                    // `-->` whose dashes are not those of the opening `<!--`.
                    if c == b'>'
                        && i >= self.tok + 6
                        && self.at(i - 1) == b'-'
                        && self.at(i - 2) == b'-'
                    {
                        self.state = self.after_markup(i, false);
                    }
                }
                Scan::CData => {
                    if c == b'>'
                        && i >= self.tok + 11
                        && self.at(i - 1) == b']'
                        && self.at(i - 2) == b']'
                    {
                        self.state = self.after_markup(i, false);
                    }
                }
                Scan::Pi => {
                    if c == b'>' && i >= self.tok + 3 && self.at(i - 1) == b'?' {
                        self.state = self.after_markup(i, false);
                    }
                }
                Scan::Decl => {
                    if c == b'>' {
                        self.state = self.after_markup(i, false);
                    }
                }
                Scan::Open(None) => match c {
                    b'"' | b'\'' => self.state = Scan::Open(Some(c)),
                    b'>' => {
                        let self_closing = self.at(i - 1) == b'/';
                        if !self_closing {
                            self.depth += 1;
                        }
                        self.state = self.after_markup(i, self_closing);
                    }
                    _ => {}
                },
                Scan::Open(Some(q)) => {
                    if c == q {
                        self.state = Scan::Open(None);
                    }
                }
                Scan::Close => {
                    if c == b'>' {
                        if self.depth == 0 {
                            // A stray end tag at the top level: junk.
                            self.ready.push_back(Err(CotError::Junk));
                            self.state = self.top_level_done();
                        } else {
                            self.depth -= 1;
                            self.state = self.after_markup(i, true);
                        }
                    }
                }
            }
            if let Some(start) = self.start {
                if !self.skipping && self.pos - start > self.max {
                    self.ready
                        .push_back(Err(CotError::ElementTooLarge { max: self.max }));
                    self.skipping = true;
                }
            }
        }
        // Drop the bytes nothing pending needs.
        let keep_from = match self.start {
            Some(_) if self.skipping => self.pos.saturating_sub(SKIP_KEEP).max(self.base),
            Some(start) => start,
            None => self.pos,
        };
        self.buf.drain(..keep_from - self.base);
        self.base = keep_from;
    }

    /// A markup token ended at `i`. `closes_element` is true when it ended an element (end
    /// tag or self-closing tag). At depth 0 that completes a document (if it was an element)
    /// or a prologue item (skipped).
    fn after_markup(&mut self, i: usize, closes_element: bool) -> Scan {
        if self.depth > 0 {
            return Scan::Text;
        }
        if closes_element && !self.skipping {
            if let Some(start) = self.start {
                let doc = self.buf[start - self.base..=i - self.base].to_vec();
                self.ready.push_back(Ok(doc));
            }
        }
        self.top_level_done()
    }

    /// The current top-level item is over: back to scanning between documents.
    fn top_level_done(&mut self) -> Scan {
        self.start = None;
        self.skipping = false;
        Scan::Top
    }
}

// ---------------------------------------------------------------------------------------------
// Mapping between Mizugiwa records and CoT.
//
// CoT types follow MIL-STD-2525 as TAK uses it: `a` (atom) - affiliation (`f` friendly, `n`
// neutral, `u` unknown, `s` suspect) - battle dimension (`G` ground, `A` air, `S` sea surface)
// - function.

/// Friendly ground installation: our sites (ports, airports, coast stations, command).
pub const TYPE_SITE: &str = "a-f-G-I";
/// Friendly air, military, fixed wing, drone (UAV): our patrol drones. TAK draws it as a UAV.
pub const TYPE_DRONE: &str = "a-f-A-M-F-Q";
/// Unknown sea surface track: a SAR/drone detection not (yet) identified.
pub const TYPE_DETECTION: &str = "a-u-S";
/// Neutral sea surface track: an AIS-reporting vessel (civilian traffic identifies itself).
pub const TYPE_VESSEL: &str = "a-n-S";
/// Suspect sea surface track: an alert about something at sea (dark vessel, AIS gap or
/// spoofing, encounter, loitering). The "hostile-ish" diamond draws the eye without claiming
/// hostility; TAK's `b-r-f-h-c` (CASEVAC request) would be the wrong meaning.
pub const TYPE_ALERT_SEA: &str = "a-s-S";
/// Suspect ground point: every other alert (gate, X-ray, NQR, manual, lost drone link).
pub const TYPE_ALERT_GROUND: &str = "a-s-G";

/// How long each kind of published event stays valid. Sites and alerts are republished by the
/// daemon while they exist (sites at least every minute, alerts at least every half hour);
/// positions expire from their observation time.
pub const STALE_SITE_MS: u64 = 2 * 60 * 1000;
pub const STALE_DRONE_MS: u64 = 30 * 1000;
pub const STALE_DETECTION_MS: u64 = 60 * 60 * 1000;
pub const STALE_VESSEL_MS: u64 = 10 * 60 * 1000;
pub const STALE_ALERT_MS: u64 = 60 * 60 * 1000;

/// Alert kinds about something at sea.
const SEA_ALERT_KINDS: &[&str] = &[
    "dark_vessel",
    "ais_gap",
    "ais_spoofing_speed",
    "ais_spoofing_land",
    "ais_spoofing_two_places",
    "encounter",
    "loitering",
];

/// Knots to metres per second.
const KNOT_MPS: f64 = 1852.0 / 3600.0;

/// The uid of the event for record `collection`/`id`.
pub fn uid_for(collection: &str, id: &str) -> String {
    format!("{UID_PREFIX}{collection}.{id}")
}

/// Builds the CoT event for a record of `sites`, `drones`, `detections`, `vessels` or
/// `alerts` from its `fields` (see `docs/api.md`).
///
/// `None` when the record has no usable position (`lat`/`lon` missing, not numbers, out of
/// range), when its collection is not published, when the uid would be too long, or when a
/// position (drone, vessel, detection) is already stale at `now_ms`: TAK would drop it anyway.
///
/// Times: sites and alerts describe the present (time = start = now); drones, vessels and
/// detections start at their observation time (`at_ms`, clamped to now against clock skew)
/// and go stale that long after it. A resolved alert is published already stale
/// (stale = start = now), which makes TAK clients remove its marker at once.
pub fn event_for(
    collection: &str,
    id: &str,
    fields: &Map<String, Value>,
    now_ms: u64,
) -> Option<CotEvent> {
    let lat = number(fields.get("lat")?).filter(|v| v.abs() <= 90.0)?;
    let lon = number(fields.get("lon")?).filter(|v| v.abs() <= 180.0)?;
    let uid = uid_for(collection, id);
    if check_uid(&uid).is_err() {
        return None;
    }
    let text = |k: &str| fields.get(k).map(display).filter(|s| !s.is_empty());
    let observed = || {
        fields
            .get("at_ms")
            .and_then(number)
            .filter(|v| *v >= 0.0)
            .map_or(now_ms, |v| (v as u64).min(now_ms))
    };
    let mut point = CotPoint::new(lat, lon);
    let mut track = None;
    let mut remarks = Vec::new();
    let note = |remarks: &mut Vec<String>, label: &str, value: Option<String>| {
        if let Some(v) = value {
            remarks.push(format!("{label}: {v}"));
        }
    };

    let (event_type, callsign, start_ms, stale_ms) = match collection {
        "sites" => {
            note(&mut remarks, "kind", text("kind"));
            if let Some(hb) = fields.get("heartbeat_ms").and_then(number) {
                let age_s = (now_ms as f64 - hb).max(0.0) / 1000.0;
                remarks.push(format!("last heartbeat: {age_s:.0} s ago"));
            }
            note(&mut remarks, "version", text("version"));
            let name = text("name").unwrap_or_else(|| id.to_string());
            (TYPE_SITE, name, now_ms, now_ms + STALE_SITE_MS)
        }
        "drones" => {
            if let Some(alt) = fields.get("alt_m").and_then(number) {
                point.hae = alt;
            }
            track = track_from(fields.get("heading_deg"), fields.get("speed_mps"), 1.0);
            note(&mut remarks, "site", text("site"));
            note(&mut remarks, "mode", text("mode"));
            note(
                &mut remarks,
                "battery",
                text("battery_pct").map(|b| format!("{b}%")),
            );
            note(&mut remarks, "link", text("link"));
            let start = observed();
            (TYPE_DRONE, id.to_string(), start, start + STALE_DRONE_MS)
        }
        "detections" => {
            note(&mut remarks, "source", text("source"));
            note(&mut remarks, "site", text("site"));
            note(
                &mut remarks,
                "length",
                text("length_m").map(|l| format!("{l} m")),
            );
            remarks.push(match text("matched_mmsi") {
                Some(mmsi) => format!("matched MMSI: {mmsi}"),
                None => "no AIS match".to_string(),
            });
            let start = observed();
            (
                TYPE_DETECTION,
                format!("detection {id}"),
                start,
                start + STALE_DETECTION_MS,
            )
        }
        "vessels" => {
            track = track_from(fields.get("cog_deg"), fields.get("sog_kn"), KNOT_MPS);
            remarks.push(format!("MMSI: {id}"));
            note(&mut remarks, "ship type", text("ship_type"));
            note(&mut remarks, "site", text("site"));
            let start = observed();
            let name = text("name").unwrap_or_else(|| format!("MMSI {id}"));
            (TYPE_VESSEL, name, start, start + STALE_VESSEL_MS)
        }
        "alerts" => {
            let kind = text("kind");
            let status = text("status");
            note(&mut remarks, "severity", text("severity"));
            note(&mut remarks, "status", status.clone());
            note(&mut remarks, "kind", kind.clone());
            note(&mut remarks, "site", text("site"));
            note(&mut remarks, "assignee", text("assignee"));
            let at_sea = kind
                .as_deref()
                .is_some_and(|k| SEA_ALERT_KINDS.contains(&k));
            let event_type = if at_sea {
                TYPE_ALERT_SEA
            } else {
                TYPE_ALERT_GROUND
            };
            let stale = if status.as_deref() == Some("resolved") {
                now_ms
            } else {
                now_ms + STALE_ALERT_MS
            };
            let title = text("title").unwrap_or_else(|| format!("alert {id}"));
            (event_type, title, now_ms, stale)
        }
        _ => return None,
    };
    if collection != "sites" && collection != "alerts" && stale_ms <= now_ms {
        return None;
    }
    Some(CotEvent {
        uid,
        event_type: event_type.to_string(),
        how: "m-g".to_string(),
        time_ms: now_ms,
        start_ms,
        stale_ms,
        point,
        detail: Some(CotDetail {
            callsign: Some(callsign),
            remarks: (!remarks.is_empty()).then(|| remarks.join("; ")),
            track,
            raw: None,
        }),
    })
}

/// The record an event from TAK becomes: collection `cot`, id = uid, and its fields
/// (`type`, `how`, `lat`, `lon`, `hae` (null when unknown), `callsign` and `remarks` when
/// present, `time_ms`, `stale_ms`, `source` = `"tak"`). The uid is a valid record id because
/// [`parse`] refuses any that is not.
pub fn record_for(ev: &CotEvent) -> (String, String, Vec<(String, Value)>) {
    let mut fields = vec![
        ("type".to_string(), Value::from(ev.event_type.clone())),
        ("how".to_string(), Value::from(ev.how.clone())),
        ("lat".to_string(), Value::from(ev.point.lat)),
        ("lon".to_string(), Value::from(ev.point.lon)),
        (
            "hae".to_string(),
            if ev.point.hae == UNKNOWN {
                Value::Null
            } else {
                Value::from(ev.point.hae)
            },
        ),
    ];
    if let Some(callsign) = ev.callsign() {
        fields.push(("callsign".to_string(), Value::from(callsign)));
    }
    if let Some(remarks) = ev.remarks() {
        fields.push(("remarks".to_string(), Value::from(remarks)));
    }
    fields.push(("time_ms".to_string(), Value::from(ev.time_ms)));
    fields.push(("stale_ms".to_string(), Value::from(ev.stale_ms)));
    fields.push(("source".to_string(), Value::from("tak")));
    (COT_COLLECTION.to_string(), ev.uid.clone(), fields)
}

/// A number from a JSON number or a numeric string (the CLI writes text when it cannot parse
/// JSON); non-finite values are refused.
fn number(v: &Value) -> Option<f64> {
    let n = match v {
        Value::Number(n) => n.as_f64()?,
        Value::String(s) => s.trim().parse().ok()?,
        _ => return None,
    };
    n.is_finite().then_some(n)
}

/// A field value for remarks: strings bare, anything else as compact JSON.
fn display(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Null => String::new(),
        other => other.to_string(),
    }
}

fn track_from(
    course: Option<&Value>,
    speed: Option<&Value>,
    speed_factor: f64,
) -> Option<CotTrack> {
    Some(CotTrack {
        course: number(course?)?,
        speed: number(speed?)? * speed_factor,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use serde_json::json;

    const T0: u64 = 1_735_689_600_000; // 2025-01-01T00:00:00Z

    fn sample() -> CotEvent {
        CotEvent {
            uid: "mizugiwa.drones.d1".into(),
            event_type: TYPE_DRONE.into(),
            how: "m-g".into(),
            time_ms: T0,
            start_ms: T0,
            stale_ms: T0 + 30_000,
            point: CotPoint {
                lat: 34.2,
                lon: 129.3,
                hae: 120.5,
                ce: 10.0,
                le: UNKNOWN,
            },
            detail: Some(CotDetail {
                callsign: Some("d1 \"alpha\" & <co>\n".into()),
                remarks: Some("battery 80%; a < b & c\nline 2".into()),
                track: Some(CotTrack {
                    course: 270.0,
                    speed: 12.5,
                }),
                raw: None,
            }),
        }
    }

    #[test]
    fn time_round_trip_and_format() {
        assert_eq!(format_time(T0), "2025-01-01T00:00:00.000Z");
        assert_eq!(format_time(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(format_time(951_782_400_123), "2000-02-29T00:00:00.123Z");
        assert_eq!(parse_time("2025-01-01T00:00:00Z"), Ok(T0));
        assert_eq!(parse_time("2025-01-01T00:00:00.5Z"), Ok(T0 + 500));
        assert_eq!(parse_time("2025-01-01T00:00:00.123456Z"), Ok(T0 + 123));
        assert_eq!(parse_time("2025-01-01T09:00:00+09:00"), Ok(T0));
        assert_eq!(parse_time("2024-12-31T23:00:00.000-01:00"), Ok(T0));
        for bad in [
            "",
            "2025-01-01",
            "2025-01-01T00:00:00",
            "2025-13-01T00:00:00Z",
            "2025-02-29T00:00:00Z",
            "2025-01-01T24:00:00Z",
            "2025-01-01T00:00:00.Z",
            "2025-01-01T00:00:00ZZ",
            "1969-12-31T23:59:59Z",
            "2025-01-01 00:00:00Z",
            "２０２５-01-01T00:00:00Z",
        ] {
            assert!(parse_time(bad).is_err(), "{bad:?} parsed");
        }
    }

    #[test]
    fn xml_round_trip() {
        let ev = sample();
        let xml = ev.to_xml();
        assert!(xml.starts_with("<event version=\"2.0\" uid=\"mizugiwa.drones.d1\""));
        assert!(xml.contains("time=\"2025-01-01T00:00:00.000Z\""));
        let back = parse(xml.as_bytes()).unwrap();
        let d = back.detail.as_ref().unwrap();
        assert_eq!(d.callsign, ev.detail.as_ref().unwrap().callsign);
        assert_eq!(d.remarks, ev.detail.as_ref().unwrap().remarks);
        assert_eq!(d.track, ev.detail.as_ref().unwrap().track);
        // The parsed event keeps its detail verbatim; rewriting it changes nothing.
        assert_eq!(back.to_xml(), xml);
        let mut back_views = back.clone();
        back_views.detail.as_mut().unwrap().raw = None;
        assert_eq!(back_views, ev);
    }

    #[test]
    fn parses_foreign_events() {
        // As pytak sends it: a declaration, flow tags, a contact.
        let xml = br#"<?xml version="1.0" encoding="UTF-8" standalone="yes" ?>
<event version="2.0" type="a-f-G-U-C" uid="ANDROID-1" how="h-e" time="2025-01-01T00:00:00.000000Z" start="2025-01-01T00:00:00.000000Z" stale="2025-01-01T00:02:00.000000Z"><point lat="35.5" lon="139.75" ce="9999999.0" hae="9999999.0" le="9999999.0" /><detail><_flow-tags_ pytak="2025-01-01T00:00:00Z"/><contact callsign="Viper 1" endpoint="*:-1:stcp"/><__group name="Cyan" role="Team Member"/><remarks>pier &amp; crane <b>bold</b> &#x263A;</remarks></detail></event>"#;
        let ev = parse(xml).unwrap();
        assert_eq!(ev.uid, "ANDROID-1");
        assert_eq!(ev.how, "h-e");
        assert_eq!(ev.stale_ms, T0 + 120_000);
        assert_eq!(ev.point.lat, 35.5);
        assert_eq!(ev.point.hae, UNKNOWN);
        assert_eq!(ev.callsign(), Some("Viper 1"));
        assert_eq!(ev.remarks(), Some("pier & crane bold \u{263A}"));
        let raw = ev.detail.as_ref().unwrap().raw.as_deref().unwrap();
        assert!(raw.starts_with("<_flow-tags_") && raw.ends_with("</remarks>"));
        // Pass-through keeps what we do not model.
        assert!(ev
            .to_xml()
            .contains("<__group name=\"Cyan\" role=\"Team Member\"/>"));
        let again = parse(ev.to_xml().as_bytes()).unwrap();
        assert_eq!(again, ev);
    }

    #[test]
    fn detail_variants() {
        let base = |detail: &str| {
            format!(
                r#"<event version="2.0" uid="u" type="a-u-G" how="m-g" time="2025-01-01T00:00:00Z" start="2025-01-01T00:00:00Z" stale="2025-01-01T00:01:00Z"><point lat="1" lon="2"/>{detail}</event>"#
            )
        };
        assert_eq!(parse(base("").as_bytes()).unwrap().detail, None);
        let empty = parse(base("<detail/>").as_bytes()).unwrap();
        assert_eq!(empty.detail.as_ref().unwrap().raw.as_deref(), Some(""));
        assert_eq!(
            empty.to_xml(),
            parse(empty.to_xml().as_bytes()).unwrap().to_xml()
        );
        let nested = parse(
            base("<detail><link><contact callsign=\"not me\"/></link><contact callsign=\"me\"/><remarks/></detail>")
                .as_bytes(),
        )
        .unwrap();
        assert_eq!(nested.callsign(), Some("me"));
        assert_eq!(nested.remarks(), Some(""));
        let bad_track =
            parse(base("<detail><track course=\"x\" speed=\"1\"/></detail>").as_bytes()).unwrap();
        assert_eq!(bad_track.detail.unwrap().track, None);
    }

    fn valid_with(attrs: &str, point: &str) -> String {
        format!("<event version=\"2.0\" {attrs}><point {point}/></event>")
    }

    const GOOD_ATTRS: &str = r#"uid="u1" type="a-f-G" how="m-g" time="2025-01-01T00:00:00Z" start="2025-01-01T00:00:00Z" stale="2025-01-01T00:01:00Z""#;

    #[test]
    fn rejects_malformed() {
        let ok_point = r#"lat="1" lon="2""#;
        assert!(parse(valid_with(GOOD_ATTRS, ok_point).as_bytes()).is_ok());
        type Expect = fn(&CotError) -> bool;
        let cases: Vec<(String, Expect)> = vec![
            ("not xml at all".into(), |e| matches!(e, CotError::TextOutsideRoot)),
            ("<event".into(), |e| matches!(e, CotError::Xml(_))),
            ("".into(), |e| matches!(e, CotError::NoEvent)),
            ("<?xml version=\"1.0\"?>".into(), |e| matches!(e, CotError::NoEvent)),
            ("<foo/>".into(), |e| matches!(e, CotError::NotEvent(_))),
            (
                format!("{}{}", valid_with(GOOD_ATTRS, ok_point), valid_with(GOOD_ATTRS, ok_point)),
                |e| matches!(e, CotError::MultipleRoots),
            ),
            (
                valid_with(&GOOD_ATTRS.replace("uid=\"u1\"", ""), ok_point),
                |e| matches!(e, CotError::MissingAttr { attr: "uid", .. }),
            ),
            (
                valid_with(&GOOD_ATTRS.replace("type=\"a-f-G\"", ""), ok_point),
                |e| matches!(e, CotError::MissingAttr { attr: "type", .. }),
            ),
            (
                valid_with(&GOOD_ATTRS.replace("time=", "tame="), ok_point),
                |e| matches!(e, CotError::MissingAttr { attr: "time", .. }),
            ),
            (
                valid_with(&GOOD_ATTRS.replace("start=", "begin="), ok_point),
                |e| matches!(e, CotError::MissingAttr { attr: "start", .. }),
            ),
            (
                valid_with(&GOOD_ATTRS.replace("stale=", "stall="), ok_point),
                |e| matches!(e, CotError::MissingAttr { attr: "stale", .. }),
            ),
            (
                valid_with(&GOOD_ATTRS.replace("2025-01-01T00:01:00Z", "yesterday"), ok_point),
                |e| matches!(e, CotError::BadTimestamp { attr: "stale", .. }),
            ),
            (
                valid_with(&GOOD_ATTRS.replace("00:01:00Z", "00:00:00Z").replace("start=\"2025-01-01T00:00:00Z\"", "start=\"2025-01-01T00:00:01Z\""), ok_point),
                |e| matches!(e, CotError::StaleBeforeStart { .. }),
            ),
            (valid_with(GOOD_ATTRS, r#"lat="90.5" lon="2""#), |e| {
                matches!(e, CotError::BadNumber { attr: "lat", .. })
            }),
            (valid_with(GOOD_ATTRS, r#"lat="1" lon="-180.1""#), |e| {
                matches!(e, CotError::BadNumber { attr: "lon", .. })
            }),
            (valid_with(GOOD_ATTRS, r#"lat="NaN" lon="2""#), |e| {
                matches!(e, CotError::BadNumber { attr: "lat", .. })
            }),
            (valid_with(GOOD_ATTRS, r#"lat="1" lon="inf""#), |e| {
                matches!(e, CotError::BadNumber { attr: "lon", .. })
            }),
            (valid_with(GOOD_ATTRS, r#"lat="1" lon="2" hae="nan""#), |e| {
                matches!(e, CotError::BadNumber { attr: "hae", .. })
            }),
            (valid_with(GOOD_ATTRS, r#"lat="1""#), |e| {
                matches!(e, CotError::MissingAttr { attr: "lon", .. })
            }),
            (
                format!("<event {GOOD_ATTRS}></event>"),
                |e| matches!(e, CotError::MissingPoint),
            ),
            (
                format!("<event {GOOD_ATTRS}><point lat=\"1\" lon=\"1\"/><point lat=\"1\" lon=\"1\"/></event>"),
                |e| matches!(e, CotError::Duplicate("point")),
            ),
            (
                valid_with(&GOOD_ATTRS.replace("u1", &"u".repeat(MAX_UID_LEN + 1)), ok_point),
                |e| matches!(e, CotError::UidTooLong { .. }),
            ),
            (
                valid_with(&GOOD_ATTRS.replace("u1", ""), ok_point),
                |e| matches!(e, CotError::BadUid(_)),
            ),
            (
                valid_with(&GOOD_ATTRS.replace("u1", "$members"), ok_point),
                |e| matches!(e, CotError::BadUid(_)),
            ),
            (
                valid_with(&GOOD_ATTRS.replace("u1", "a&#10;b"), ok_point),
                |e| matches!(e, CotError::BadUid(_)),
            ),
            (
                valid_with(&GOOD_ATTRS.replace("a-f-G", "a f <G>"), ok_point),
                |e| matches!(e, CotError::Xml(_) | CotError::BadType(_)),
            ),
            (
                valid_with(&format!("{GOOD_ATTRS} uid=\"again\""), ok_point),
                |e| matches!(e, CotError::Xml(_)),
            ),
            (
                format!("<!DOCTYPE event [<!ENTITY x \"y\">]>{}", valid_with(GOOD_ATTRS, ok_point)),
                |e| matches!(e, CotError::DocType),
            ),
            (
                valid_with(GOOD_ATTRS, r#"lat="1" lon="2" x="&bogus;""#),
                |e| matches!(e, CotError::Xml(_)),
            ),
            (
                format!("<event {GOOD_ATTRS}><point lat=\"1\" lon=\"2\"/><detail>&bogus;</detail></event>"),
                |e| matches!(e, CotError::Xml(_)),
            ),
            (
                format!("<event {GOOD_ATTRS}><point lat=\"1\" lon=\"2\"/><detail>&#1;</detail></event>"),
                |e| matches!(e, CotError::IllegalChar(1)),
            ),
            (
                format!("<event {GOOD_ATTRS}><point lat=\"1\" lon=\"2\"></event>"),
                |e| matches!(e, CotError::Xml(_)),
            ),
            (
                format!("<event {GOOD_ATTRS}><point lat=\"1\" lon=\"2\"/>"),
                |e| matches!(e, CotError::Xml(_)),
            ),
            (
                format!("{} trailing", valid_with(GOOD_ATTRS, ok_point)),
                |e| matches!(e, CotError::TextOutsideRoot),
            ),
            (
                valid_with(GOOD_ATTRS, "lat=\"1\" lon=\"2\" \u{1}"),
                |e| matches!(e, CotError::IllegalChar(1)),
            ),
            (
                format!("<event {GOOD_ATTRS}><point lat=\"1\" lon=\"2\"/><?xml version=\"1.0\"?></event>"),
                |e| matches!(e, CotError::Xml(_)),
            ),
            (
                format!("<event {GOOD_ATTRS}><point lat=\"1\" lon=\"2\"/><!-- a -- b --></event>"),
                |e| matches!(e, CotError::Xml(_)),
            ),
        ];
        for (input, expected) in cases {
            let err = parse(input.as_bytes()).expect_err(&input);
            assert!(expected(&err), "{input:?} gave {err:?}");
            // Every error explains itself.
            assert!(!err.to_string().is_empty());
        }
        assert_eq!(parse(&[0xff, 0xfe, b'<']), Err(CotError::NotUtf8));
        // Error messages are cut by characters, not bytes.
        assert_eq!(xml_err("é".repeat(300)), CotError::Xml("é".repeat(200)));
        let big = format!(
            "<event {GOOD_ATTRS}><point lat=\"1\" lon=\"2\"/><detail><remarks>{}</remarks></detail></event>",
            "x".repeat(MAX_EVENT_BYTES)
        );
        assert!(matches!(
            parse(big.as_bytes()),
            Err(CotError::TooLarge { .. })
        ));
    }

    #[test]
    fn stale_and_ping() {
        let ev = sample();
        assert!(!ev.is_stale(T0 + 29_999));
        assert!(ev.is_stale(T0 + 30_000));
        let ping = CotEvent::ping("mizugiwa.gw-ping", T0);
        assert!(ping.is_ping());
        assert!(!ev.is_ping());
        let pong = CotEvent {
            event_type: "t-x-c-t-r".into(),
            ..ping.clone()
        };
        assert!(pong.is_ping());
        assert_eq!(parse(ping.to_xml().as_bytes()).unwrap(), ping);
    }

    fn split_all(chunks: &[&[u8]]) -> Vec<Result<Vec<u8>, CotError>> {
        let mut s = CotStream::new();
        let mut out = Vec::new();
        for c in chunks {
            s.push(c);
            while let Some(d) = s.next_document() {
                out.push(d);
            }
        }
        out
    }

    #[test]
    fn splitter_handles_prologues_and_tricky_markup() {
        let a = sample().to_xml();
        let b = r#"<event uid="x" a='>' b="</event>"><detail><!-- </event> --><![CDATA[</event>]]><?pi </event>?><x/></detail></event>"#;
        let stream = format!(
            "<?xml version=\"1.0\" encoding=\"UTF-8\" standalone=\"yes\" ?>\n{a}\n<?xml version=\"1.0\"?><!-- between -->{b}  {a}"
        );
        let docs = split_all(&[stream.as_bytes()]);
        let docs: Vec<_> = docs.into_iter().map(Result::unwrap).collect();
        assert_eq!(
            docs,
            vec![
                a.as_bytes().to_vec(),
                b.as_bytes().to_vec(),
                a.as_bytes().to_vec()
            ]
        );

        // The same stream one byte at a time gives the same documents.
        let bytes = stream.as_bytes();
        let chunks: Vec<&[u8]> = bytes.chunks(1).collect();
        let docs2: Vec<_> = split_all(&chunks).into_iter().map(Result::unwrap).collect();
        assert_eq!(docs2, docs);
    }

    #[test]
    fn splitter_reports_junk_and_recovers() {
        let a = sample().to_xml();
        let stream = format!("garbage here {a}</stray>{a}");
        let docs = split_all(&[stream.as_bytes()]);
        assert_eq!(docs.len(), 4);
        assert_eq!(docs[0], Err(CotError::Junk));
        assert_eq!(docs[1].as_deref(), Ok(a.as_bytes()));
        assert_eq!(docs[2], Err(CotError::Junk));
        assert_eq!(docs[3].as_deref(), Ok(a.as_bytes()));
    }

    #[test]
    fn splitter_is_bounded_and_skips_oversized_elements() {
        let ev = sample().to_xml();
        let mut s = CotStream::with_limit(1024);
        s.push(b"<event uid=\"x\"><detail><a>");
        for _ in 0..1000 {
            s.push(&[b'x'; 100]);
            assert!(s.buffered() <= 1024 + 100);
        }
        assert_eq!(
            s.next_document(),
            Some(Err(CotError::ElementTooLarge { max: 1024 }))
        );
        assert_eq!(s.next_document(), None);
        // The oversized element ends; the next one comes through.
        s.push(b"</a><b/></detail></event>");
        s.push(ev.as_bytes());
        assert_eq!(s.next_document(), Some(Ok(ev.clone().into_bytes())));
        assert_eq!(s.next_document(), None);

        // An overlong comment or quoted value counts too, and is skipped to its end.
        let small = b"<event uid='s'/>".to_vec();
        let mut s = CotStream::with_limit(64);
        s.push(b"<!--");
        s.push(&[b'-'; 100]);
        s.push(b"x-->");
        s.push(&small);
        assert!(matches!(
            s.next_document(),
            Some(Err(CotError::ElementTooLarge { .. }))
        ));
        assert_eq!(s.next_document(), Some(Ok(small.clone())));
        let mut s = CotStream::with_limit(64);
        s.push(b"<event a=\"");
        s.push(&[b'>'; 100]);
        s.push(b"\"></event>");
        s.push(&small[..5]);
        s.push(&small[5..]);
        assert!(matches!(
            s.next_document(),
            Some(Err(CotError::ElementTooLarge { .. }))
        ));
        assert_eq!(s.next_document(), Some(Ok(small)));
        assert_eq!(s.next_document(), None);

        // Many small complete events in a stream never accumulate.
        let mut s = CotStream::with_limit(1024);
        for _ in 0..1000 {
            s.push(ev.as_bytes());
            assert!(s.next_document().unwrap().is_ok());
        }
        assert_eq!(s.buffered(), 0);
    }

    fn fields(v: Value) -> Map<String, Value> {
        v.as_object().unwrap().clone()
    }

    #[test]
    fn event_for_each_collection() {
        let now = T0 + 10_000;
        let site = event_for(
            "sites",
            "tsushima",
            &fields(json!({"name": "Tsushima", "kind": "coast", "lat": 34.2, "lon": 129.29, "heartbeat_ms": now - 5000, "version": "0.1.0"})),
            now,
        )
        .unwrap();
        assert_eq!(site.uid, "mizugiwa.sites.tsushima");
        assert_eq!(site.event_type, TYPE_SITE);
        assert_eq!(site.stale_ms, now + STALE_SITE_MS);
        assert_eq!(site.callsign(), Some("Tsushima"));
        assert_eq!(
            site.remarks(),
            Some("kind: coast; last heartbeat: 5 s ago; version: 0.1.0")
        );

        let drone = event_for(
            "drones",
            "d1",
            &fields(json!({"lat": 34.0, "lon": 129.0, "alt_m": 120, "heading_deg": 90, "speed_mps": 14.0, "battery_pct": 76, "mode": "AUTO", "link": "ok", "at_ms": now - 1000, "site": "tsushima"})),
            now,
        )
        .unwrap();
        assert_eq!(drone.event_type, TYPE_DRONE);
        assert_eq!(drone.start_ms, now - 1000);
        assert_eq!(drone.stale_ms, now - 1000 + STALE_DRONE_MS);
        assert_eq!(drone.point.hae, 120.0);
        assert_eq!(
            drone.detail.as_ref().unwrap().track,
            Some(CotTrack {
                course: 90.0,
                speed: 14.0
            })
        );
        assert_eq!(
            drone.remarks(),
            Some("site: tsushima; mode: AUTO; battery: 76%; link: ok")
        );
        // A drone position older than its stale time is not published.
        let old = fields(json!({"lat": 34.0, "lon": 129.0, "at_ms": now - STALE_DRONE_MS - 1}));
        assert!(event_for("drones", "d1", &old, now).is_none());
        // A timestamp from the future is clamped to now.
        let future = fields(json!({"lat": 34.0, "lon": 129.0, "at_ms": now + 60_000}));
        assert_eq!(
            event_for("drones", "d1", &future, now).unwrap().start_ms,
            now
        );

        let det = event_for(
            "detections",
            "tsushima-7",
            &fields(json!({"lat": "34.5", "lon": "129.5", "source": "sar", "length_m": 45, "at_ms": now})),
            now,
        )
        .unwrap();
        assert_eq!(det.event_type, TYPE_DETECTION);
        assert_eq!(det.point.lat, 34.5);
        assert_eq!(det.stale_ms, now + STALE_DETECTION_MS);
        assert_eq!(
            det.remarks(),
            Some("source: sar; length: 45 m; no AIS match")
        );

        let vessel = event_for(
            "vessels",
            "431000001",
            &fields(json!({"name": "SHIN MARU", "lat": 34.6, "lon": 129.6, "sog_kn": 10.0, "cog_deg": 45.0, "at_ms": now})),
            now,
        )
        .unwrap();
        assert_eq!(vessel.event_type, TYPE_VESSEL);
        assert_eq!(vessel.callsign(), Some("SHIN MARU"));
        let speed = vessel.detail.as_ref().unwrap().track.unwrap().speed;
        assert!((speed - 5.1444).abs() < 1e-3);

        let alert_fields = json!({"title": "Dark vessel 2.1 nm off Izuhara", "kind": "dark_vessel", "severity": "high", "status": "new", "site": "tsushima", "lat": 34.1, "lon": 129.2, "detail": {"score": 0.9}});
        let alert = event_for("alerts", "tsushima-1", &fields(alert_fields.clone()), now).unwrap();
        assert_eq!(alert.event_type, TYPE_ALERT_SEA);
        assert_eq!(alert.callsign(), Some("Dark vessel 2.1 nm off Izuhara"));
        assert_eq!(
            alert.remarks(),
            Some("severity: high; status: new; kind: dark_vessel; site: tsushima")
        );
        assert!(!alert.is_stale(now));
        let mut resolved = fields(alert_fields);
        resolved.insert("status".into(), json!("resolved"));
        resolved.insert("kind".into(), json!("gate"));
        let resolved = event_for("alerts", "tsushima-1", &resolved, now).unwrap();
        assert_eq!(resolved.event_type, TYPE_ALERT_GROUND);
        assert!(resolved.is_stale(now));

        // Every event we build is valid CoT.
        for ev in [&site, &drone, &det, &vessel, &alert, &resolved] {
            let back = parse(ev.to_xml().as_bytes()).unwrap();
            assert_eq!(back.uid, ev.uid);
            assert_eq!(back.callsign(), ev.callsign());
        }

        // No position, a bad one, or an unpublished collection: nothing.
        assert!(event_for("sites", "x", &fields(json!({"name": "x"})), now).is_none());
        assert!(event_for("sites", "x", &fields(json!({"lat": 91, "lon": 0})), now).is_none());
        assert!(event_for(
            "sites",
            "x",
            &fields(json!({"lat": {"conflict": [1, 2]}, "lon": 0})),
            now
        )
        .is_none());
        assert!(event_for("gate_stats", "x", &fields(json!({"lat": 1, "lon": 0})), now).is_none());
        assert!(event_for(
            "sites",
            &"x".repeat(300),
            &fields(json!({"lat": 1, "lon": 0})),
            now
        )
        .is_none());
    }

    #[test]
    fn record_for_maps_fields() {
        let xml = r#"<event version="2.0" uid="ANDROID-1" type="a-f-G-U-C" how="h-e" time="2025-01-01T00:00:00Z" start="2025-01-01T00:00:00Z" stale="2025-01-01T00:02:00Z"><point lat="35.5" lon="139.75" hae="9999999.0" ce="9999999" le="9999999"/><detail><contact callsign="Viper 1"/><remarks>on station</remarks></detail></event>"#;
        let (collection, id, f) = record_for(&parse(xml.as_bytes()).unwrap());
        assert_eq!(collection, "cot");
        assert_eq!(id, "ANDROID-1");
        let f: Map<String, Value> = f.into_iter().collect();
        assert_eq!(
            Value::Object(f),
            json!({"type": "a-f-G-U-C", "how": "h-e", "lat": 35.5, "lon": 139.75, "hae": null,
                   "callsign": "Viper 1", "remarks": "on station", "time_ms": T0,
                   "stale_ms": T0 + 120_000, "source": "tak"})
        );
        let mut ev = sample();
        ev.detail = None;
        let (_, _, f) = record_for(&ev);
        let names: Vec<&str> = f.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(
            names,
            ["type", "how", "lat", "lon", "hae", "time_ms", "stale_ms", "source"]
        );
    }

    fn arb_event() -> impl Strategy<Value = CotEvent> {
        (
            "[a-zA-Z0-9._-]{1,40}",
            "[a-z](-[a-zA-Z]){0,5}",
            0u64..4_102_444_800_000,
            0u64..100_000_000,
            -90.0f64..=90.0,
            -180.0f64..=180.0,
            proptest::option::of(("\\PC{0,20}", proptest::option::of("\\PC{0,60}"))),
        )
            .prop_map(|(uid, t, start, dur, lat, lon, detail)| CotEvent {
                uid,
                event_type: t,
                how: "m-g".into(),
                time_ms: start,
                start_ms: start,
                stale_ms: start + dur,
                point: CotPoint::new(lat, lon),
                detail: detail.map(|(c, r)| CotDetail {
                    callsign: Some(c),
                    remarks: r,
                    track: None,
                    raw: None,
                }),
            })
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

        #[test]
        fn time_format_parse_round_trip(ms in 0u64..253_402_300_800_000) {
            prop_assert_eq!(parse_time(&format_time(ms)), Ok(ms));
        }

        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
            let _ = parse(&bytes);
            let mut s = CotStream::with_limit(256);
            s.push(&bytes);
            while s.next_document().is_some() {}
        }

        #[test]
        fn generated_events_round_trip(ev in arb_event()) {
            let xml = ev.to_xml();
            let back = parse(xml.as_bytes()).unwrap();
            prop_assert_eq!(&back.uid, &ev.uid);
            prop_assert_eq!(back.point, ev.point);
            prop_assert_eq!(back.stale_ms, ev.stale_ms);
            // Control characters are replaced on output, so compare what survives.
            let clean = |s: &str| s.chars().map(|c| if xml_char_ok(c) { c } else { '\u{FFFD}' }).collect::<String>();
            prop_assert_eq!(back.callsign().map(String::from), ev.callsign().map(clean));
            prop_assert_eq!(back.remarks().map(String::from), ev.remarks().map(clean));
            prop_assert_eq!(back.to_xml(), xml.clone());
            // The splitter finds exactly this document, however the bytes are cut.
            let mut s = CotStream::new();
            let cut = xml.len() / 3;
            s.push(b"<?xml version=\"1.0\"?>\n");
            s.push(&xml.as_bytes()[..cut]);
            s.push(&xml.as_bytes()[cut..]);
            prop_assert_eq!(s.next_document(), Some(Ok(xml.into_bytes())));
        }

        #[test]
        fn splitter_finds_every_event_however_the_stream_is_cut(
            events in proptest::collection::vec(arb_event(), 1..6),
            cuts in proptest::collection::vec(1usize..200, 1..20),
        ) {
            let docs: Vec<String> = events.iter().map(CotEvent::to_xml).collect();
            let stream: String = docs
                .iter()
                .map(|d| format!("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<!-- x -->{d}\n"))
                .collect();
            let mut s = CotStream::new();
            let mut out = Vec::new();
            let mut rest = stream.as_bytes();
            for cut in cuts.iter().cycle() {
                if rest.is_empty() {
                    break;
                }
                let (chunk, tail) = rest.split_at((*cut).min(rest.len()));
                s.push(chunk);
                rest = tail;
                while let Some(d) = s.next_document() {
                    out.push(String::from_utf8(d.unwrap()).unwrap());
                }
            }
            prop_assert_eq!(out, docs);
            prop_assert_eq!(s.buffered(), 0);
        }

        #[test]
        fn mutated_events_never_panic(
            ev in arb_event(),
            edits in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>(), 0u8..3), 1..8),
        ) {
            let mut bytes = ev.to_xml().into_bytes();
            for (idx, byte, op) in edits {
                if bytes.is_empty() { break; }
                let i = idx.index(bytes.len());
                match op {
                    0 => bytes[i] = byte,
                    1 => { bytes.remove(i); }
                    _ => bytes.insert(i, byte),
                }
            }
            if let Ok(parsed) = parse(&bytes) {
                // Whatever we accept is a valid event we can write out and read back.
                prop_assert!(parsed.point.lat.abs() <= 90.0 && parsed.point.lon.abs() <= 180.0);
                prop_assert!(parsed.stale_ms >= parsed.start_ms);
                let again = parse(parsed.to_xml().as_bytes());
                prop_assert!(again.is_ok(), "re-parse failed: {:?}", again);
            }
            let mut s = CotStream::with_limit(1024);
            for chunk in bytes.chunks(7) {
                s.push(chunk);
                while s.next_document().is_some() {}
            }
        }
    }
}
