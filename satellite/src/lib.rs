//! The maritime picture: GDAL scene ingest, land mask, CFAR vessel detection, AIS decoding and
//! tracks, AIS-to-detection correlation, dark-vessel and behaviour alerts.
//!
//! Built so far: [`ais`], the AIS decoder and track store (issue 4). Never imports
//! `mizugiwa-sync`.

pub mod ais;
