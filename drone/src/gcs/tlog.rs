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
        let file = std::fs::OpenOptions::new().create(true).append(true).open(path)?;
        Ok(TlogWriter { out: BufWriter::new(file), frames: 0 })
    }

    pub fn write(&mut self, frame: &[u8]) -> std::io::Result<()> {
        let micros = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_micros() as u64).unwrap_or(0);
        self.out.write_all(&micros.to_be_bytes())?;
        self.out.write_all(frame)?;
        self.frames += 1;
        Ok(())
    }

    pub fn flush(&mut self) -> std::io::Result<()> {
        self.out.flush()
    }
}

/// Reads a tlog back: (timestamp µs, frame bytes) per record, for `mizugiwa drone frames` and
/// tests. A truncated last record is dropped.
pub fn read_tlog(bytes: &[u8]) -> Vec<(u64, Vec<u8>)> {
    let mut out = Vec::new();
    let mut at = 0;
    let mut splitter = super::codec::FrameSplitter::default();
    while at + 8 < bytes.len() {
        let micros = u64::from_be_bytes(bytes[at..at + 8].try_into().expect("8 bytes"));
        at += 8;
        let len = match bytes[at] {
            0xFD if at + 3 <= bytes.len() => 12 + usize::from(bytes[at + 1]) + if bytes[at + 2] & 1 != 0 { 13 } else { 0 },
            0xFE if at + 2 <= bytes.len() => 8 + usize::from(bytes[at + 1]),
            _ => break,
        };
        if at + len > bytes.len() {
            break;
        }
        if !splitter.push(&bytes[at..at + len]).is_empty() {
            out.push((micros, bytes[at..at + len].to_vec()));
        }
        splitter.end_of_datagram();
        at += len;
    }
    out
}
