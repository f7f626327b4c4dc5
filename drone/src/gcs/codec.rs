//! MAVLink framing: encoding (optionally signed) and splitting a byte stream or datagram into
//! checked frames.
//!
//! The `mavlink` crate does the wire work (serialisation, CRC with the per-message extra byte,
//! the MAVLink 2 signature); this module adds what a ground station needs around it: frames
//! from a buffer that may hold several frames, garbage or half a frame (TCP), with the
//! signature checked against the key of the system that sent the frame rather than one key
//! per connection.

use mavlink::dialects::common::MavMessage;
use mavlink::{
    MAVLinkMessageRaw, MAVLinkV2MessageRaw, MavHeader, MavlinkVersion, Message, SigningConfig,
    SigningData,
};

const STX_V1: u8 = 0xFE;
const STX_V2: u8 = 0xFD;
const IFLAG_SIGNED: u8 = 0x01;
const SIGNATURE_LEN: usize = 13;

/// A MAVLink 2 signing key (32 bytes), as `mavproxy`'s `signing setup` and pymavlink take it.
#[derive(Clone, PartialEq, Eq)]
pub struct SigningKey(pub [u8; 32]);

impl std::fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SigningKey(..)")
    }
}

impl std::str::FromStr for SigningKey {
    type Err = String;

    /// 64 hex digits.
    fn from_str(s: &str) -> Result<SigningKey, String> {
        let s = s.trim();
        if s.len() != 64 || !s.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err("a signing key is 64 hex digits (32 bytes)".into());
        }
        let mut key = [0u8; 32];
        for (i, byte) in key.iter_mut().enumerate() {
            *byte = u8::from_str_radix(&s[2 * i..2 * i + 2], 16).map_err(|e| e.to_string())?;
        }
        Ok(SigningKey(key))
    }
}

/// Signing state for one peer: the key, and the replay protection of its timestamps.
pub struct Signer {
    data: SigningData,
    allow_unsigned: bool,
}

impl std::fmt::Debug for Signer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Signer(..)")
    }
}

impl Signer {
    /// Signs everything it sends; accepts unsigned frames only if `allow_unsigned`.
    pub fn new(key: &SigningKey, link_id: u8, allow_unsigned: bool) -> Signer {
        Signer {
            data: SigningData::from_config(SigningConfig::new(
                key.0,
                link_id,
                true,
                allow_unsigned,
            )),
            allow_unsigned,
        }
    }

    /// Whether a received frame passes: a valid, fresh signature, or unsigned when allowed.
    pub fn verify(&self, frame: &Frame) -> bool {
        match &frame.raw {
            MAVLinkMessageRaw::V2(raw) => self.data.verify_signature(raw),
            // MAVLink 1 cannot be signed: it passes exactly when unsigned frames do.
            MAVLinkMessageRaw::V1(_) => self.allow_unsigned,
        }
    }
}

/// Encodes messages from one system/component, numbering them.
#[derive(Debug)]
pub struct Encoder {
    pub system_id: u8,
    pub component_id: u8,
    sequence: u8,
}

impl Encoder {
    pub fn new(system_id: u8, component_id: u8) -> Encoder {
        Encoder {
            system_id,
            component_id,
            sequence: 0,
        }
    }

    /// One MAVLink 2 frame, signed when `signer` is given.
    pub fn encode(&mut self, msg: &MavMessage, signer: Option<&Signer>) -> Vec<u8> {
        let header = MavHeader {
            system_id: u32::from(self.system_id),
            component_id: self.component_id,
            sequence: self.sequence,
        };
        self.sequence = self.sequence.wrapping_add(1);
        let mut raw = MAVLinkV2MessageRaw::new();
        match signer {
            Some(s) => {
                raw.serialize_message_for_signing(header, msg);
                s.data.sign_message(&mut raw);
            }
            None => raw.serialize_message(header, msg),
        }
        raw.raw_bytes().to_vec()
    }
}

/// A frame whose checksum passed, not yet parsed.
pub struct Frame {
    raw: MAVLinkMessageRaw,
    bytes: Vec<u8>,
}

impl std::fmt::Debug for Frame {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Frame")
            .field("system", &self.system_id())
            .field("component", &self.component_id())
            .field("message_id", &self.message_id())
            .field("signed", &self.is_signed())
            .finish()
    }
}

impl Frame {
    pub fn system_id(&self) -> u32 {
        self.raw.system_id()
    }

    pub fn component_id(&self) -> u8 {
        self.raw.component_id()
    }

    pub fn message_id(&self) -> u32 {
        self.raw.message_id()
    }

    pub fn is_signed(&self) -> bool {
        matches!(&self.raw, MAVLinkMessageRaw::V2(r) if r.incompatibility_flags() & IFLAG_SIGNED != 0)
    }

    /// The frame exactly as received (for the telemetry log).
    pub fn bytes(&self) -> &[u8] {
        &self.bytes
    }

    pub fn header(&self) -> MavHeader {
        MavHeader {
            system_id: self.raw.system_id(),
            component_id: self.raw.component_id(),
            sequence: self.raw.sequence(),
        }
    }

    /// The message, or why it cannot be read (an id outside the common dialect, a bad enum).
    pub fn parse(&self) -> Result<MavMessage, mavlink::error::ParserError> {
        MavMessage::parse(
            self.raw.version(),
            self.raw.message_id(),
            self.raw.payload(),
        )
    }

    pub fn version(&self) -> MavlinkVersion {
        self.raw.version()
    }
}

/// Splits incoming bytes into checked frames. Keeps an incomplete frame at the end of the
/// buffer for the next call (streams); skips garbage and frames with a bad checksum, counting
/// the bytes it threw away.
#[derive(Debug, Default)]
pub struct FrameSplitter {
    pending: Vec<u8>,
    /// Bytes discarded because they were not part of a valid frame.
    pub discarded_bytes: u64,
}

impl FrameSplitter {
    /// The frames completed by `bytes`.
    pub fn push(&mut self, bytes: &[u8]) -> Vec<Frame> {
        self.pending.extend_from_slice(bytes);
        let mut frames = Vec::new();
        let mut at = 0;
        let buf = &self.pending;
        while at < buf.len() {
            let len = match frame_len(&buf[at..]) {
                FrameLen::NotAFrame => {
                    self.discarded_bytes += 1;
                    at += 1;
                    continue;
                }
                FrameLen::NeedMore => break,
                FrameLen::Complete(len) => len,
            };
            let candidate = &buf[at..at + len];
            match checked(candidate) {
                Some(raw) => {
                    frames.push(Frame {
                        raw,
                        bytes: candidate.to_vec(),
                    });
                    at += len;
                }
                None => {
                    // A start byte inside garbage, or a corrupted frame: resynchronise on the
                    // next byte rather than trusting its length.
                    self.discarded_bytes += 1;
                    at += 1;
                }
            }
        }
        self.pending.drain(..at);
        frames
    }

    /// For datagram transports: whatever is left of a datagram is garbage.
    pub fn end_of_datagram(&mut self) {
        self.discarded_bytes += self.pending.len() as u64;
        self.pending.clear();
    }
}

/// The length of the valid frame at the start of `buf`, if there is one.
pub(crate) fn valid_frame_len(buf: &[u8]) -> Option<usize> {
    match frame_len(buf) {
        FrameLen::Complete(len) => checked(&buf[..len]).map(|_| len),
        _ => None,
    }
}

enum FrameLen {
    NotAFrame,
    NeedMore,
    Complete(usize),
}

fn frame_len(buf: &[u8]) -> FrameLen {
    let Some(&start) = buf.first() else {
        return FrameLen::NeedMore;
    };
    match start {
        STX_V2 => {
            if buf.len() < 3 {
                return FrameLen::NeedMore;
            }
            let payload = usize::from(buf[1]);
            let incompat = buf[2];
            if incompat & !IFLAG_SIGNED != 0 {
                // Flags we do not implement: not a frame we can read.
                return FrameLen::NotAFrame;
            }
            let signed = if incompat & IFLAG_SIGNED != 0 {
                SIGNATURE_LEN
            } else {
                0
            };
            let len = 10 + payload + 2 + signed;
            if buf.len() < len {
                FrameLen::NeedMore
            } else {
                FrameLen::Complete(len)
            }
        }
        STX_V1 => {
            if buf.len() < 2 {
                return FrameLen::NeedMore;
            }
            let len = 6 + usize::from(buf[1]) + 2;
            if buf.len() < len {
                FrameLen::NeedMore
            } else {
                FrameLen::Complete(len)
            }
        }
        _ => FrameLen::NotAFrame,
    }
}

/// The frame if its checksum (with the message's extra CRC byte) is right; the `mavlink`
/// reader does the check.
fn checked(candidate: &[u8]) -> Option<MAVLinkMessageRaw> {
    // The smallest buffer the reader allows (one frame): a datagram of start bytes makes a
    // candidate per byte, and the default 16 KiB buffer would be zeroed for each.
    let mut reader = mavlink::MavlinkReader::with_capacity(0, candidate);
    let raw = reader.read_any_raw_message::<MavMessage>().ok()?;
    // The reader skips ahead on a bad frame; only a frame that starts at byte 0 and spans the
    // whole candidate is this frame.
    let len = match &raw {
        MAVLinkMessageRaw::V1(r) => r.raw_bytes().len(),
        MAVLinkMessageRaw::V2(r) => r.raw_bytes().len(),
    };
    (len == candidate.len()).then_some(raw)
}

#[cfg(test)]
mod tests {
    use super::*;
    use mavlink::dialects::common::{MavAutopilot, MavModeFlag, MavState, MavType, HEARTBEAT_DATA};

    fn heartbeat() -> MavMessage {
        MavMessage::HEARTBEAT(HEARTBEAT_DATA {
            custom_mode: 0,
            mavtype: MavType::MAV_TYPE_GCS,
            autopilot: MavAutopilot::MAV_AUTOPILOT_INVALID,
            base_mode: MavModeFlag::empty(),
            system_status: MavState::MAV_STATE_ACTIVE,
            mavlink_version: 3,
        })
    }

    #[test]
    fn frames_survive_garbage_and_splits() {
        let mut enc = Encoder::new(255, 190);
        let a = enc.encode(&heartbeat(), None);
        let b = enc.encode(&heartbeat(), None);
        let mut stream = b"\x00\xfdgarbage\xfe\x03".to_vec();
        stream.extend_from_slice(&a);
        stream.extend_from_slice(&[0xfd, 0x09]);
        stream.extend_from_slice(&b);
        let mut splitter = FrameSplitter::default();
        let mut frames = Vec::new();
        // Fed in awkward pieces, as TCP may deliver them.
        for chunk in stream.chunks(5) {
            frames.extend(splitter.push(chunk));
        }
        assert_eq!(frames.len(), 2);
        assert!(matches!(
            frames[0].parse().unwrap(),
            MavMessage::HEARTBEAT(_)
        ));
        assert_eq!(frames[1].header().sequence, 1);
        assert!(splitter.discarded_bytes >= 13);
    }

    #[test]
    fn corrupted_frames_are_dropped() {
        let mut enc = Encoder::new(1, 1);
        let mut a = enc.encode(&heartbeat(), None);
        let n = a.len();
        a[n - 3] ^= 0x40;
        let mut splitter = FrameSplitter::default();
        assert!(splitter.push(&a).is_empty());
        splitter.end_of_datagram();
        assert_eq!(splitter.discarded_bytes, n as u64);
        // Truncated.
        let b = enc.encode(&heartbeat(), None);
        let mut splitter = FrameSplitter::default();
        assert!(splitter.push(&b[..b.len() - 1]).is_empty());
    }

    #[test]
    fn signatures_are_checked_per_key() {
        let key: SigningKey = "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff"
            .parse()
            .unwrap();
        let other: SigningKey = "ff112233445566778899aabbccddeeff00112233445566778899aabbccddeeff"
            .parse()
            .unwrap();
        let mut enc = Encoder::new(1, 1);
        let signed = enc.encode(&heartbeat(), Some(&Signer::new(&key, 0, false)));
        let unsigned = enc.encode(&heartbeat(), None);
        let frames = FrameSplitter::default().push(&[signed.clone(), unsigned].concat());
        assert!(frames[0].is_signed() && !frames[1].is_signed());

        let strict = Signer::new(&key, 0, false);
        assert!(strict.verify(&frames[0]));
        // The same frame again is a replay.
        assert!(!strict.verify(&frames[0]));
        assert!(
            !strict.verify(&frames[1]),
            "unsigned accepted though signing is required"
        );
        assert!(
            !Signer::new(&other, 0, true).verify(&frames[0]),
            "wrong key accepted"
        );
        assert!(
            Signer::new(&other, 0, true).verify(&frames[1]),
            "unsigned refused though allowed"
        );
        assert!("abc".parse::<SigningKey>().is_err());
    }

    proptest::proptest! {
        /// Any bytes, in any pieces: no panic, and every frame returned has a valid checksum
        /// (it parses, or is a message outside the dialect) — and a valid frame placed after
        /// the garbage is still found.
        #[test]
        fn garbage_never_panics_and_never_hides_a_good_frame(
            garbage in proptest::collection::vec(proptest::num::u8::ANY, 0..600),
            cut in 1usize..64,
        ) {
            let good = Encoder::new(9, 1).encode(&heartbeat(), None);
            let mut stream = garbage.clone();
            // A run of zero bytes cannot start a frame: whatever the garbage left half-read
            // (a start byte and a length) is over by then.
            stream.extend(std::iter::repeat_n(0u8, 300));
            stream.extend_from_slice(&good);
            let mut splitter = FrameSplitter::default();
            let mut frames = Vec::new();
            for piece in stream.chunks(cut) {
                frames.extend(splitter.push(piece));
            }
            let last = frames.last().expect("the good frame");
            proptest::prop_assert_eq!(last.bytes(), &good[..]);
            for f in &frames {
                let _ = f.parse();
            }
        }
    }
}
