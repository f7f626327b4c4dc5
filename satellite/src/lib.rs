//! The maritime picture: GDAL scene ingest, land mask, CFAR vessel detection, AIS decoding and
//! tracks, AIS-to-detection correlation, dark-vessel and behaviour alerts.
//!
//! Not built yet: see issue 4. Never imports `mizugiwa-sync`.
