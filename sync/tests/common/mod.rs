//! Helpers shared by the sync integration tests: in-memory replicas and an in-memory network
//! that drives two protocol sessions against each other.
#![allow(dead_code)]

use std::sync::Arc;

use mizugiwa_sync::protocol::{Session, SessionConfig, SessionError};
use mizugiwa_sync::{Collection, ManualClock, Schema, Store, StoreConfig};

pub fn schema() -> Schema {
    Schema::new().collection(
        "alerts",
        Collection::default()
            .lww("title")
            .mv("verdict")
            .set("assignees")
            .counter("comments")
            .status("state", &["new", "acked", "resolved", "closed"]),
    )
}

pub fn replica(name: &str, clock: &ManualClock) -> Store {
    Store::open_in_memory(schema(), Arc::new(clock.clone()), StoreConfig::new(name))
        .expect("open replica")
}

pub fn small_batches() -> SessionConfig {
    SessionConfig {
        max_batch_entries: 3,
        max_batch_bytes: 4096,
        window: 2,
    }
}

/// Runs one connection between `a` and `b` until both sides are quiet, or until `budget`
/// frames have been delivered (then the connection is cut: frames in flight are lost).
/// `pick` chooses which side sends next when both could.
pub fn exchange(
    a: &mut Store,
    b: &mut Store,
    config: SessionConfig,
    budget: usize,
    mut pick: impl FnMut() -> bool,
) -> Result<usize, SessionError> {
    let mut sa = Session::new(b.node(), config.clone());
    let mut sb = Session::new(a.node(), config);
    sa.start(a)?;
    sb.start(b)?;
    let mut delivered = 0;
    let mut pending_ab: std::collections::VecDeque<Vec<u8>> = Default::default();
    let mut pending_ba: std::collections::VecDeque<Vec<u8>> = Default::default();
    loop {
        while let Some(f) = sa.poll_transmit(a)? {
            pending_ab.push_back(f);
        }
        while let Some(f) = sb.poll_transmit(b)? {
            pending_ba.push_back(f);
        }
        if pending_ab.is_empty() && pending_ba.is_empty() {
            return Ok(delivered);
        }
        if delivered >= budget {
            return Ok(delivered);
        }
        let a_to_b = if pending_ab.is_empty() {
            false
        } else if pending_ba.is_empty() {
            true
        } else {
            pick()
        };
        if a_to_b {
            let f = pending_ab.pop_front().unwrap();
            sb.handle_frame(&f, b)?;
        } else {
            let f = pending_ba.pop_front().unwrap();
            sa.handle_frame(&f, a)?;
        }
        delivered += 1;
    }
}

/// Full exchange until quiet.
pub fn sync_pair(a: &mut Store, b: &mut Store) {
    exchange(a, b, SessionConfig::default(), usize::MAX, || true).expect("sync");
}

/// Borrows two distinct elements of a slice mutably.
pub fn pair<T>(v: &mut [T], i: usize, j: usize) -> (&mut T, &mut T) {
    assert_ne!(i, j);
    if i < j {
        let (l, r) = v.split_at_mut(j);
        (&mut l[i], &mut r[0])
    } else {
        let (l, r) = v.split_at_mut(i);
        (&mut r[0], &mut l[j])
    }
}

/// Runs two open sessions until neither has anything to send.
pub fn pump(sa: &mut Session, a: &mut Store, sb: &mut Session, b: &mut Store) {
    for _ in 0..1000 {
        let mut moved = false;
        while let Some(f) = sa.poll_transmit(a).unwrap() {
            sb.handle_frame(&f, b).unwrap();
            moved = true;
        }
        while let Some(f) = sb.poll_transmit(b).unwrap() {
            sa.handle_frame(&f, a).unwrap();
            moved = true;
        }
        if !moved {
            return;
        }
    }
    panic!("sessions never went quiet");
}
