//! The maritime picture: GDAL scene ingest, land mask, CFAR vessel detection, AIS decoding and
//! tracks, AIS-to-detection correlation, dark-vessel and behaviour alerts. Never imports
//! `mizugiwa-sync`.

pub mod ais;
pub mod land;
pub mod correlate;
pub mod matching;
pub mod sar;
