//! Airport e-gates: signed declaration QR codes (CBOR, COSE_Sign1, zlib, base45), ICAO 9303
//! MRZ checks, Japan's allowances and duty, risk rules and the pure gate decision function.
//!
//! Not built yet: see issue 6. Never imports `mizugiwa-sync`.
