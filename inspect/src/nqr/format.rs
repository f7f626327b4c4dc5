//! The NQR signal file: a 60-byte little-endian header and complex f32 samples.
//!
//! ```text
//! offset size field
//!      0    8 magic "MZNQRSIG"
//!      8    2 version (u16) = 1
//!     10    2 channels (u16): 1 = main coil only, 2 = main + reference antenna
//!     12    8 carrier_hz (f64)
//!     20    8 sample_rate_hz (f64)
//!     28    8 echo_spacing_s (f64)
//!     36    8 repetition_time_s (f64)
//!     44    4 trains (u32)
//!     48    4 echoes_per_train (u32)
//!     52    4 samples_per_echo (u32)
//!     56    4 reserved (u32) = 0
//!     60      samples: channel by channel (main first), train by train, echo by echo,
//!             each sample re (f32) then im (f32)
//! ```
//!
//! The file must be exactly `60 + channels · trains · echoes · samples · 8` bytes long.

use super::signal::{Acquisition, MAX_SAMPLES_PER_CHANNEL};
use super::NqrError;
use rustfft::num_complex::Complex32;
use std::path::Path;

const MAGIC: &[u8; 8] = b"MZNQRSIG";
const VERSION: u16 = 1;
const HEADER_LEN: usize = 60;

/// One screening's samples: `trains × echoes_per_train × samples_per_echo` per channel.
#[derive(Debug, Clone, PartialEq)]
pub struct Recording {
    pub acquisition: Acquisition,
    pub main: Vec<Complex32>,
    /// The signal-free reference antenna, if recorded.
    pub reference: Option<Vec<Complex32>>,
}

impl Recording {
    /// Serialises to the file format.
    pub fn to_bytes(&self) -> Vec<u8> {
        let a = &self.acquisition;
        let channels: u16 = if self.reference.is_some() { 2 } else { 1 };
        let samples = self.main.len() + self.reference.as_ref().map_or(0, Vec::len);
        let mut out = Vec::with_capacity(HEADER_LEN + samples * 8);
        out.extend_from_slice(MAGIC);
        out.extend_from_slice(&VERSION.to_le_bytes());
        out.extend_from_slice(&channels.to_le_bytes());
        for v in [
            a.carrier_hz,
            a.sample_rate_hz,
            a.echo_spacing_s,
            a.repetition_time_s,
        ] {
            out.extend_from_slice(&v.to_le_bytes());
        }
        for v in [a.trains, a.echoes_per_train, a.samples_per_echo, 0] {
            out.extend_from_slice(&v.to_le_bytes());
        }
        for s in self.main.iter().chain(self.reference.iter().flatten()) {
            out.extend_from_slice(&s.re.to_le_bytes());
            out.extend_from_slice(&s.im.to_le_bytes());
        }
        out
    }

    /// Parses the file format; never panics, refuses anything inconsistent.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, NqrError> {
        if bytes.len() < MAGIC.len() || &bytes[..MAGIC.len()] != MAGIC {
            if bytes.len() < MAGIC.len() && MAGIC.starts_with(bytes) {
                return Err(NqrError::Truncated {
                    expected: HEADER_LEN as u64,
                    found: bytes.len() as u64,
                });
            }
            return Err(NqrError::Format("missing the MZNQRSIG magic".into()));
        }
        if bytes.len() < HEADER_LEN {
            return Err(NqrError::Truncated {
                expected: HEADER_LEN as u64,
                found: bytes.len() as u64,
            });
        }
        let u16_at = |o: usize| u16::from_le_bytes([bytes[o], bytes[o + 1]]);
        let u32_at =
            |o: usize| u32::from_le_bytes([bytes[o], bytes[o + 1], bytes[o + 2], bytes[o + 3]]);
        let f64_at = |o: usize| {
            let mut b = [0u8; 8];
            b.copy_from_slice(&bytes[o..o + 8]);
            f64::from_le_bytes(b)
        };
        let version = u16_at(8);
        if version != VERSION {
            return Err(NqrError::Format(format!(
                "version {version} is not supported; this build reads version {VERSION}"
            )));
        }
        let channels = u16_at(10);
        if channels != 1 && channels != 2 {
            return Err(NqrError::Format(format!(
                "{channels} channels declared; expected 1 (main) or 2 (main + reference)"
            )));
        }
        let acquisition = Acquisition {
            carrier_hz: f64_at(12),
            sample_rate_hz: f64_at(20),
            echo_spacing_s: f64_at(28),
            repetition_time_s: f64_at(36),
            trains: u32_at(44),
            echoes_per_train: u32_at(48),
            samples_per_echo: u32_at(52),
        };
        // Check the sizes before validating the rest so a huge declared size is refused
        // before anything is allocated.
        let per_channel = acquisition.samples_per_channel();
        if per_channel > MAX_SAMPLES_PER_CHANNEL {
            return Err(NqrError::Format(format!(
                "header declares {per_channel} samples per channel, over the limit of \
                 {MAX_SAMPLES_PER_CHANNEL}"
            )));
        }
        acquisition.validate()?;
        let expected = HEADER_LEN as u64 + u64::from(channels) * per_channel * 8;
        let found = bytes.len() as u64;
        if found < expected {
            return Err(NqrError::Truncated { expected, found });
        }
        if found > expected {
            return Err(NqrError::Format(format!(
                "{} bytes after the last sample the header declares",
                found - expected
            )));
        }
        let per_channel = per_channel as usize;
        let mut samples = bytes[HEADER_LEN..]
            .chunks_exact(8)
            .enumerate()
            .map(|(k, c)| {
                let re = f32::from_le_bytes([c[0], c[1], c[2], c[3]]);
                let im = f32::from_le_bytes([c[4], c[5], c[6], c[7]]);
                if re.is_finite() && im.is_finite() {
                    Ok(Complex32::new(re, im))
                } else {
                    Err(NqrError::Format(format!(
                        "sample {k} is not a finite number"
                    )))
                }
            });
        let main = samples
            .by_ref()
            .take(per_channel)
            .collect::<Result<Vec<_>, _>>()?;
        let reference = if channels == 2 {
            Some(samples.collect::<Result<Vec<_>, _>>()?)
        } else {
            None
        };
        Ok(Recording {
            acquisition,
            main,
            reference,
        })
    }

    pub fn write(&self, path: impl AsRef<Path>) -> Result<(), NqrError> {
        let path = path.as_ref();
        std::fs::write(path, self.to_bytes()).map_err(|source| NqrError::Io {
            path: path.to_path_buf(),
            source,
        })
    }

    pub fn read(path: impl AsRef<Path>) -> Result<Self, NqrError> {
        let path = path.as_ref();
        let bytes = std::fs::read(path).map_err(|source| NqrError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        Self::from_bytes(&bytes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn small() -> Recording {
        let acquisition = Acquisition {
            trains: 1,
            echoes_per_train: 2,
            samples_per_echo: 16,
            ..Acquisition::rdx_default()
        };
        let main = (0..32)
            .map(|k| Complex32::new(k as f32, -(k as f32)))
            .collect();
        Recording {
            acquisition,
            main,
            reference: Some(vec![Complex32::new(0.5, 0.25); 32]),
        }
    }

    #[test]
    fn round_trip() {
        let r = small();
        assert_eq!(Recording::from_bytes(&r.to_bytes()).unwrap(), r);
    }

    proptest! {
        // Any prefix or any corruption of a valid file gives an error or a recording, never
        // a panic.
        #[test]
        fn never_panics_on_damaged_files(cut in 0usize..600, flip in 0usize..600, byte in any::<u8>()) {
            let mut bytes = small().to_bytes();
            if flip < bytes.len() { bytes[flip] = byte; }
            let cut = cut.min(bytes.len());
            let _ = Recording::from_bytes(&bytes[..cut]);
            let _ = Recording::from_bytes(&bytes);
        }
    }
}
