//! The replicated store of Mizugiwa: offline-first CRDT records in SQLite, synced between
//! replicas over QUIC with mutual TLS.
//!
//! * [`Store`] — one replica: collections of records whose fields merge by their declared
//!   [`FieldKind`] (`lww`, `mv`, `set`, `counter`, `status`), with deletes as a causal-length
//!   set. Writes are durable when they return.
//! * [`interest`] — which replicas hold which records: a site's *reported* collections travel
//!   to the command center, not to every other site.
//! * [`protocol::Session`] — the sync protocol as a deterministic state machine without I/O:
//!   feed it frames, it tells you which frames to send.
//! * [`driver`] — runs sessions over real QUIC connections ([`transport`]) with certificates
//!   from the deployment's own CA ([`pki`]).
//!
//! ```
//! use std::sync::Arc;
//! use mizugiwa_sync::{Collection, FieldOp, ManualClock, Schema, Store, StoreConfig};
//!
//! let schema = Schema::new().collection(
//!     "alerts",
//!     Collection::default().lww("title").status("state", &["new", "acked", "resolved"]),
//! );
//! let clock = Arc::new(ManualClock::new(1_700_000_000_000));
//! let mut store = Store::open_in_memory(schema, clock, StoreConfig::new("tsushima")).unwrap();
//! store.put("alerts", "a1", &[("title", FieldOp::Set("dark vessel".into())),
//!                            ("state", FieldOp::Advance("acked".into()))]).unwrap();
//! let alert = store.get("alerts", "a1").unwrap().unwrap();
//! assert_eq!(alert.get("title").and_then(|v| v.as_str()), Some("dark vessel"));
//! ```

pub mod change;
pub mod clock;
pub mod driver;
pub mod error;
pub mod field;
pub mod interest;
pub mod pki;
pub mod protocol;
pub mod schema;
pub mod store;
pub mod transport;
pub mod value;
pub mod vv;
pub mod wire;

pub use change::{Change, ChangeBatch};
pub use clock::{Clock, Hlc, ManualClock, SystemClock};
pub use error::StoreError;
pub use interest::Interest;
pub use schema::{Collection, FieldKind, Schema};
pub use store::{
    ChangeEvent, Durability, FieldOp, FieldValue, FieldWrite, Record, RecordWrite, Store,
    StoreConfig,
};
pub use value::Value;
pub use vv::VersionVector;
