//! Telemetry logs in the `.tlog` format of MAVProxy, QGroundControl and pymavlink's
//! `mavlogdump.py`: every frame, as it was on the wire, after an 8-byte big-endian timestamp in
//! microseconds since the Unix epoch.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::Path;
use std::time::{SystemTime, UNIX_EPOCH};

pub struct TlogWriter {
    out: BufWriter<File>,
    pub frames: u64,
}

impl TlogWriter {
    /// Appends to `path` (a log survives a restart of the ground station).
    pub fn open(path: &Path) -> std::io::Result<TlogWriter> {
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)?;
        Ok(TlogWriter {
            out: BufWriter::new(file),
            frames: 0,
        })
    }

    pub fn write(&mut self, frame: &[u8]) -> std::io::Result<()> {
        let micros = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_micros() as u64)
            .unwrap_or(0);
        self.out.write_all(&micros.to_be_bytes())?;
        self.out.write_all(frame)?;
        self.frames += 1;
        Ok(())
    }

    pub fn flush(&mut self) -> std::io::Result<()> {
        self.out.flush()
    }
}

/// Reads a tlog back: (timestamp µs, frame bytes) per record. A damaged stretch (a record cut
/// short by a crash before the log was appended to again, or garbage) is skipped up to the next
/// place where a timestamp is followed by a valid frame, so one bad record never hides the
/// sessions after it.
pub fn read_tlog(bytes: &[u8]) -> Vec<(u64, Vec<u8>)> {
    let mut out = Vec::new();
    let mut at = 0;
    while at + 8 < bytes.len() {
        match super::codec::valid_frame_len(&bytes[at + 8..]) {
            Some(len) => {
                let micros = u64::from_be_bytes(bytes[at..at + 8].try_into().expect("8 bytes"));
                out.push((micros, bytes[at + 8..at + 8 + len].to_vec()));
                at += 8 + len;
            }
            None => at += 1,
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gcs::codec::Encoder;
    use mavlink::dialects::common::{MavMessage, HEARTBEAT_DATA};

    #[test]
    fn a_damaged_record_does_not_hide_what_follows() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.tlog");
        let mut enc = Encoder::new(1, 1);
        let frame = enc.encode(&MavMessage::HEARTBEAT(HEARTBEAT_DATA::default()), None);
        let mut w = TlogWriter::open(&path).unwrap();
        w.write(&frame).unwrap();
        w.flush().unwrap();
        drop(w);
        // A crash mid-record, then a new session appended.
        let mut bytes = std::fs::read(&path).unwrap();
        bytes.extend_from_slice(&[0, 0, 1, 2, 3, 0xFD, 9]);
        std::fs::write(&path, &bytes).unwrap();
        let mut w = TlogWriter::open(&path).unwrap();
        w.write(&frame).unwrap();
        w.write(&frame).unwrap();
        w.flush().unwrap();
        let records = read_tlog(&std::fs::read(&path).unwrap());
        assert_eq!(records.len(), 3);
        assert!(records.iter().all(|(_, f)| f == &frame));
        assert!(read_tlog(b"").is_empty() && read_tlog(&[0xFD; 40]).is_empty());
    }
}
