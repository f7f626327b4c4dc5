//! Helpers shared by the site-bus tests.

use mizugiwa_field_node::bus::BusConfig;

/// A TCP port nobody listens on now.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
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
