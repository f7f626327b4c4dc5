//! Bad input from peers: garbage frames, frames out of protocol order, a peer claiming another
//! name, and a peer whose clock is far ahead. Each is refused with a clear error and leaves the
//! stored data exactly as it was.

mod common;

use std::sync::Arc;

use common::{replica, schema, sync_pair};
use mizugiwa_sync::protocol::{Message, Session, SessionConfig, SessionError};
use mizugiwa_sync::{FieldOp, ManualClock, Store, StoreConfig, StoreError};

fn seeded(clock: &ManualClock) -> Store {
    let mut s = replica("hq", clock);
    s.put("alerts", "a1", &[("title", FieldOp::Set("keep me".into()))])
        .unwrap();
    s
}

#[test]
fn garbage_frames_are_refused_and_change_nothing() {
    let clock = ManualClock::new(1_700_000_000_000);
    let mut hq = seeded(&clock);
    let before = hq.state_hash().unwrap();
    for garbage in [
        &b""[..],
        b"\x00",
        b"\x02\xff\xff\xff\xff\xff",
        b"\x01\x01\x05yoko",
        b"\x09hello",
        b"\x02\x00\x00\x00\x00\x01",
    ] {
        let mut s = Session::new("yokohama", SessionConfig::default());
        s.start(&hq).unwrap();
        let err = s.handle_frame(garbage, &mut hq);
        assert!(err.is_err(), "{garbage:?} was accepted");
        // The session queues a Refuse for the peer with the reason.
        let mut refused = false;
        while let Some(f) = s.poll_transmit(&hq).unwrap() {
            refused |= matches!(Message::decode(&f), Ok(Message::Refuse { .. }));
        }
        assert!(refused);
    }
    assert_eq!(hq.state_hash().unwrap(), before);
}

#[test]
fn a_peer_must_say_hello_under_its_certificate_name() {
    let clock = ManualClock::new(1_700_000_000_000);
    let mut hq = seeded(&clock);
    let impostor = replica("narita", &clock);
    let mut s = Session::new("yokohama", SessionConfig::default());
    let mut other = Session::new("hq", SessionConfig::default());
    other.start(&impostor).unwrap();
    let hello = other.poll_transmit(&impostor).unwrap().unwrap();
    let err = s.handle_frame(&hello, &mut hq).unwrap_err();
    assert!(matches!(err, SessionError::Protocol { .. }), "{err}");
    assert!(err.to_string().contains("certificate"), "{err}");
}

#[test]
fn a_clock_far_ahead_is_refused_and_reported() {
    let clock = ManualClock::new(1_700_000_000_000);
    let ahead = ManualClock::new(1_700_000_000_000 + 3_600_000);
    let mut hq = seeded(&clock);
    let mut skewed =
        Store::open_in_memory(schema(), Arc::new(ahead), StoreConfig::new("tsushima")).unwrap();
    skewed
        .put(
            "alerts",
            "from-the-future",
            &[("title", FieldOp::Set("x".into()))],
        )
        .unwrap();
    let before = hq.state_hash().unwrap();
    let mut sh = Session::new("tsushima", SessionConfig::default());
    let mut st = Session::new("hq", SessionConfig::default());
    sh.start(&hq).unwrap();
    st.start(&skewed).unwrap();
    let mut error = None;
    for _ in 0..20 {
        while let Some(f) = st.poll_transmit(&skewed).unwrap() {
            if let Err(e) = sh.handle_frame(&f, &mut hq) {
                error = Some(e);
            }
        }
        while let Some(f) = sh.poll_transmit(&hq).unwrap() {
            let _ = st.handle_frame(&f, &mut skewed);
        }
        if error.is_some() {
            break;
        }
    }
    match error {
        Some(SessionError::Store {
            source: StoreError::ClockSkew { origin, skew },
            ..
        }) => {
            assert_eq!(origin, "tsushima");
            assert!(skew.ahead_ms >= 3_500_000);
        }
        other => panic!("expected a clock-skew refusal, got {other:?}"),
    }
    assert_eq!(hq.refused_batches(), 1);
    assert_eq!(
        hq.state_hash().unwrap(),
        before,
        "nothing from the skewed batch was stored"
    );
    assert!(hq.get("alerts", "from-the-future").unwrap().is_none());
}

#[test]
fn replaying_a_whole_session_changes_nothing() {
    let clock = ManualClock::new(1_700_000_000_000);
    let mut a = seeded(&clock);
    let mut b = replica("yokohama", &clock);
    sync_pair(&mut a, &mut b);
    let h = b.state_hash().unwrap();
    sync_pair(&mut a, &mut b);
    sync_pair(&mut b, &mut a);
    assert_eq!(b.state_hash().unwrap(), h);
    assert_eq!(a.state_hash().unwrap(), h);
}
