//! Helpers shared by the field-node tests (each test binary uses some of them).
#![allow(dead_code)]

use std::path::Path;
use std::sync::{Arc, Mutex};

use mizugiwa_field_node::bus::BusConfig;
use mizugiwa_sync::{Store, StoreConfig, SystemClock};

/// A replica in `dir` named after `node`, with the deployment's schema.
pub fn store(dir: &Path, node: &str) -> Arc<Mutex<Store>> {
    Arc::new(Mutex::new(
        Store::open(
            dir.join(format!("{node}.db")),
            mizugiwa_command::records::schema(),
            Arc::new(SystemClock::new()),
            StoreConfig::new(node),
        )
        .unwrap(),
    ))
}

/// A TCP port nobody listens on now.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A bus config with explicit endpoints and scouting off.
pub fn cfg(listen: Vec<String>, connect: Vec<String>) -> BusConfig {
    BusConfig {
        listen,
        connect,
        multicast_scouting: false,
        drone_record_secs: 2,
        breadcrumb_secs: 10,
    }
}
