//! The maritime picture: GDAL scene ingest, land mask, CFAR vessel detection, AIS decoding and
//! tracks, AIS-to-detection correlation, dark-vessel and behaviour alerts. Never imports
//! `mizugiwa-sync`.

// `!(x >= 0.0)` and the like are how the checks here refuse NaN along with the out-of-range
// values; `partial_cmp` would say the same less plainly.
#![allow(clippy::neg_cmp_op_on_partial_ord)]

pub mod ais;
pub mod correlate;
pub mod land;
pub mod matching;
pub mod sar;
