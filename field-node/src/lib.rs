//! The site daemon (`mizugiwa node`): composes the domain crates for one site (port, airport or
//! coast), runs the zenoh site bus for live data, keeps the local replicated store, serves the
//! officer UI and API, and syncs with the command center and neighbouring sites.
//!
//! Not built yet: see issue 3. The replicated store it will stand on is `mizugiwa-sync`.
