//! A fault-injecting UDP proxy in front of a QUIC endpoint: one per sync link (dialer →
//! listener), so that a partition, a flapping link, latency, loss or a bandwidth cap can be put
//! on any link without root, network namespaces or touching the processes.
//!
//! A bandwidth cap makes the link a [`NarrowLink`] in each direction: datagrams leave one after
//! another at the capped rate, wait their turn in a queue of at most [`NARROW_QUEUE`] of sending
//! time, and those that find the queue full are dropped (tail drop), as on a satellite phone or
//! a congested radio link. QUIC has to notice the losses and slow down by itself.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::net::UdpSocket;
use tokio::task::JoinHandle;

/// What a link does to datagrams.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum LinkState {
    /// Forward everything.
    Up,
    /// Drop everything.
    Cut,
    /// Delay every datagram, drop some, and with `bandwidth_kbps` pace them through a
    /// [`NarrowLink`] in each direction.
    Degraded {
        latency_ms: u64,
        loss_pct: f64,
        bandwidth_kbps: Option<u32>,
    },
}

impl LinkState {
    /// What a degraded link does ("narrowed to 64 kbit/s, +300 ms, 1% loss"); `None` when up
    /// or cut.
    pub fn degradation(&self) -> Option<String> {
        let LinkState::Degraded {
            latency_ms,
            loss_pct,
            bandwidth_kbps,
        } = self
        else {
            return None;
        };
        let mut what = Vec::new();
        if let Some(kbps) = bandwidth_kbps {
            what.push(format!("narrowed to {kbps} kbit/s"));
        }
        if *latency_ms > 0 {
            what.push(format!("+{latency_ms} ms"));
        }
        if *loss_pct > 0.0 {
            what.push(format!("{loss_pct}% loss"));
        }
        Some(what.join(", "))
    }
}

/// Counters of one link (both directions).
#[derive(Debug, Default)]
pub struct LinkCounters {
    /// Datagrams passed on.
    pub forwarded: AtomicU64,
    /// Datagrams dropped by a cut or by random loss.
    pub dropped: AtomicU64,
    /// Datagrams dropped because the narrow link's queue was full (tail drop).
    pub tail_dropped: AtomicU64,
    /// Datagrams that went through a narrow link (queued or not), and their bytes.
    pub narrowed: AtomicU64,
    pub narrowed_bytes: AtomicU64,
    /// The longest a datagram waited for a narrow link, queue and sending time, in ms.
    pub max_wait_ms: AtomicU64,
}

/// How much sending time a narrow link's queue holds: a datagram that arrives while more than
/// this is waiting is dropped. A second, about what a satellite modem buffers: a sender going
/// faster than the link sees losses within a second rather than an ever longer delay (at
/// 64 kbit/s that is 8 kB, less than QUIC's initial window).
pub const NARROW_QUEUE: Duration = Duration::from_secs(1);

/// One direction of a capped link: a token bucket one datagram deep, kept as the instant the
/// link has sent everything queued so far. Pure: the caller gives the time, so it is tested
/// without sockets or sleeps.
#[derive(Debug, Default, Clone)]
pub struct NarrowLink {
    free_at: Option<Instant>,
}

impl NarrowLink {
    /// A datagram of `bytes` arrives at `now` on a link of `kbps`: the instant it has been
    /// sent (queued behind the others, then serialised at the link's rate), or `None` when the
    /// queue already holds [`NARROW_QUEUE`] of sending time (dropped).
    pub fn admit(&mut self, now: Instant, bytes: usize, kbps: u32) -> Option<Instant> {
        let start = self.free_at.map_or(now, |f| f.max(now));
        if start - now > NARROW_QUEUE {
            return None;
        }
        let sending =
            Duration::from_secs_f64(bytes as f64 * 8.0 / (f64::from(kbps.max(1)) * 1000.0));
        let sent = start + sending;
        self.free_at = Some(sent);
        Some(sent)
    }
}

/// A link's counters at one moment, for the report.
#[derive(Debug, Clone, serde::Serialize)]
pub struct LinkTally {
    pub from: String,
    pub to: String,
    pub forwarded: u64,
    pub dropped: u64,
    pub tail_dropped: u64,
    pub narrowed: u64,
    pub narrowed_bytes: u64,
    pub max_wait_ms: u64,
}

/// A running proxy for the link `from` → `to`.
pub struct LinkProxy {
    pub from: String,
    pub to: String,
    addr: SocketAddr,
    state: Arc<Mutex<LinkState>>,
    pub counters: Arc<LinkCounters>,
    task: JoinHandle<()>,
}

impl Drop for LinkProxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl LinkProxy {
    /// Listens on a free loopback port and forwards to `target`.
    pub async fn start(from: &str, to: &str, target: SocketAddr) -> std::io::Result<LinkProxy> {
        let front = Arc::new(UdpSocket::bind("127.0.0.1:0").await?);
        let back = Arc::new(UdpSocket::bind("127.0.0.1:0").await?);
        back.connect(target).await?;
        let addr = front.local_addr()?;
        let state = Arc::new(Mutex::new(LinkState::Up));
        let counters = Arc::new(LinkCounters::default());
        let (st, ct) = (state.clone(), counters.clone());
        let task = tokio::spawn(async move {
            // The dialer's address: it changes when the dialer restarts, so it is the source of
            // the latest datagram in.
            let mut client: Option<SocketAddr> = None;
            let mut rng = Rng(0x9e37_79b9_7f4a_7c15 ^ u64::from(addr.port()));
            let (mut a, mut b) = (vec![0u8; 65536], vec![0u8; 65536]);
            // The narrow link each way: dialer → listener, listener → dialer.
            let (mut toward, mut back_from) = (NarrowLink::default(), NarrowLink::default());
            loop {
                let (data, to_back) = tokio::select! {
                    r = front.recv_from(&mut a) => match r {
                        Ok((n, from)) => { client = Some(from); (a[..n].to_vec(), true) }
                        Err(_) => continue,
                    },
                    r = back.recv(&mut b) => match r {
                        Ok(n) => (b[..n].to_vec(), false),
                        Err(_) => continue,
                    },
                };
                let arrived = Instant::now();
                let state = *st.lock().unwrap_or_else(|e| e.into_inner());
                let delay = match state {
                    LinkState::Up => Duration::ZERO,
                    LinkState::Cut => {
                        ct.dropped.fetch_add(1, Ordering::Relaxed);
                        continue;
                    }
                    LinkState::Degraded {
                        latency_ms,
                        loss_pct,
                        bandwidth_kbps,
                    } => {
                        // Through the narrow link first: a datagram lost on the air has still
                        // taken its sending time.
                        let mut wait = Duration::ZERO;
                        if let Some(kbps) = bandwidth_kbps {
                            let narrow = if to_back { &mut toward } else { &mut back_from };
                            let Some(sent) = narrow.admit(arrived, data.len(), kbps) else {
                                ct.tail_dropped.fetch_add(1, Ordering::Relaxed);
                                continue;
                            };
                            wait = sent - arrived;
                            ct.narrowed.fetch_add(1, Ordering::Relaxed);
                            ct.narrowed_bytes
                                .fetch_add(data.len() as u64, Ordering::Relaxed);
                            ct.max_wait_ms
                                .fetch_max(wait.as_millis() as u64, Ordering::Relaxed);
                        }
                        if rng.unit() * 100.0 < loss_pct {
                            ct.dropped.fetch_add(1, Ordering::Relaxed);
                            continue;
                        }
                        wait + Duration::from_millis(latency_ms)
                    }
                };
                ct.forwarded.fetch_add(1, Ordering::Relaxed);
                let (front, back) = (front.clone(), back.clone());
                let send = async move {
                    if to_back {
                        let _ = back.send(&data).await;
                    } else if let Some(c) = client {
                        let _ = front.send_to(&data, c).await;
                    }
                };
                if delay.is_zero() {
                    send.await;
                } else {
                    // Until an instant, not for a while: datagrams queued behind each other
                    // leave at the link's rate however late this task is scheduled.
                    let due = tokio::time::Instant::from_std(arrived + delay);
                    tokio::spawn(async move {
                        tokio::time::sleep_until(due).await;
                        send.await;
                    });
                }
            }
        });
        Ok(LinkProxy {
            from: from.to_owned(),
            to: to.to_owned(),
            addr,
            state,
            counters,
            task,
        })
    }

    /// Where the dialer sends to.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Changes what the link does from now on.
    pub fn set(&self, state: LinkState) {
        *self.state.lock().unwrap_or_else(|e| e.into_inner()) = state;
    }

    /// What the link does now.
    pub fn state(&self) -> LinkState {
        *self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Its counters now.
    pub fn tally(&self) -> LinkTally {
        let c = &self.counters;
        LinkTally {
            from: self.from.clone(),
            to: self.to.clone(),
            forwarded: c.forwarded.load(Ordering::Relaxed),
            dropped: c.dropped.load(Ordering::Relaxed),
            tail_dropped: c.tail_dropped.load(Ordering::Relaxed),
            narrowed: c.narrowed.load(Ordering::Relaxed),
            narrowed_bytes: c.narrowed_bytes.load(Ordering::Relaxed),
            max_wait_ms: c.max_wait_ms.load(Ordering::Relaxed),
        }
    }

    /// Whether the link joins `a` and `b` (either way).
    pub fn joins(&self, a: &str, b: &str) -> bool {
        (self.from == a && self.to == b) || (self.from == b && self.to == a)
    }

    /// Whether the link touches `node`.
    pub fn touches(&self, node: &str) -> bool {
        self.from == node || self.to == node
    }
}

/// xorshift64: loss decisions need no quality, only independence from the workload's.
struct Rng(u64);

impl Rng {
    fn unit(&mut self) -> f64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        (self.0 >> 11) as f64 / (1u64 << 53) as f64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn datagrams_pass_until_cut_and_again_after_heal() {
        let server = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let proxy = LinkProxy::start("a", "b", server.local_addr().unwrap())
            .await
            .unwrap();
        let client = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        client.connect(proxy.addr()).await.unwrap();
        let mut buf = [0u8; 16];
        async fn echo(
            server: &UdpSocket,
            buf: &mut [u8; 16],
        ) -> Result<std::io::Result<(usize, SocketAddr)>, tokio::time::error::Elapsed> {
            tokio::time::timeout(Duration::from_millis(300), server.recv_from(buf)).await
        }
        client.send(b"one").await.unwrap();
        let (n, from) = echo(&server, &mut buf).await.unwrap().unwrap();
        assert_eq!(&buf[..n], b"one");
        server.send_to(b"back", from).await.unwrap();
        let n = tokio::time::timeout(Duration::from_millis(300), client.recv(&mut buf))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(&buf[..n], b"back");

        proxy.set(LinkState::Cut);
        client.send(b"two").await.unwrap();
        assert!(echo(&server, &mut buf).await.is_err(), "cut link forwarded");
        assert_eq!(proxy.counters.dropped.load(Ordering::Relaxed), 1);

        proxy.set(LinkState::Degraded {
            latency_ms: 100,
            loss_pct: 0.0,
            bandwidth_kbps: None,
        });
        let sent = std::time::Instant::now();
        client.send(b"three").await.unwrap();
        let (n, _) = echo(&server, &mut buf).await.unwrap().unwrap();
        assert_eq!(&buf[..n], b"three");
        assert!(sent.elapsed() >= Duration::from_millis(100));

        proxy.set(LinkState::Up);
        assert!(proxy.joins("b", "a") && proxy.touches("a") && !proxy.touches("c"));
    }

    #[test]
    fn a_narrow_link_paces_datagrams_and_drops_what_overflows_its_queue() {
        let t0 = Instant::now();
        let ms = |d: Duration| d.as_secs_f64() * 1000.0;
        // 1000 bytes at 256 kbit/s take 31.25 ms: a burst of 24 has been sent after 750 ms.
        let mut link = NarrowLink::default();
        let sent: Vec<Instant> = (0..24)
            .map(|_| link.admit(t0, 1000, 256).unwrap())
            .collect();
        assert!((ms(sent[0] - t0) - 31.25).abs() < 0.01);
        assert!(
            (ms(sent[23] - t0) - 750.0).abs() < 0.01,
            "{:?}",
            sent[23] - t0
        );
        // A burst of 80: those arriving while a second of sending waits are dropped.
        let mut link = NarrowLink::default();
        let admitted = (0..80)
            .filter(|_| link.admit(t0, 1000, 256).is_some())
            .count();
        assert_eq!(
            admitted, 33,
            "32 queued seconds' worth and the one that fills it"
        );
        // Once the queue has drained, the link takes datagrams again at once.
        let later = t0 + Duration::from_millis(1100);
        assert!((ms(link.admit(later, 1000, 256).unwrap() - later) - 31.25).abs() < 0.01);
        // Half the rate, twice the time.
        let mut slow = NarrowLink::default();
        assert!((ms(slow.admit(t0, 1000, 128).unwrap() - t0) - 62.5).abs() < 0.01);
    }

    #[tokio::test]
    async fn a_burst_through_a_256_kbps_link_takes_its_time_and_the_excess_is_dropped() {
        let server = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let proxy = LinkProxy::start("a", "b", server.local_addr().unwrap())
            .await
            .unwrap();
        let client = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        client.connect(proxy.addr()).await.unwrap();
        let mut buf = vec![0u8; 2048];
        // Receives until `count` datagrams came or nothing came for 400 ms; returns how many
        // and when the last one came.
        async fn receive(
            server: &UdpSocket,
            buf: &mut [u8],
            count: usize,
        ) -> (usize, std::time::Instant) {
            let mut got = 0;
            let mut last = std::time::Instant::now();
            while got < count {
                match tokio::time::timeout(Duration::from_millis(400), server.recv_from(buf)).await
                {
                    Ok(Ok(_)) => {
                        got += 1;
                        last = std::time::Instant::now();
                    }
                    _ => break,
                }
            }
            (got, last)
        }
        let burst = |n: usize| {
            let client = &client;
            async move {
                let start = std::time::Instant::now();
                for i in 0..n {
                    client.send(&[i as u8; 1000]).await.unwrap();
                }
                start
            }
        };
        // Uncapped, 24 kB cross loopback at once.
        let start = burst(24).await;
        let (got, last) = receive(&server, &mut buf, 24).await;
        assert_eq!(got, 24);
        let uncapped = last - start;
        assert!(uncapped < Duration::from_millis(300), "{uncapped:?}");

        // Capped at 256 kbit/s: 24 × 1000 bytes (+ 28 of IP and UDP headers not counted) take
        // 750 ms, give or take the timer's grain.
        proxy.set(LinkState::Degraded {
            latency_ms: 0,
            loss_pct: 0.0,
            bandwidth_kbps: Some(256),
        });
        let start = burst(24).await;
        let (got, last) = receive(&server, &mut buf, 24).await;
        assert_eq!(got, 24, "a burst that fits the queue all arrives");
        let took = last - start;
        assert!(
            took >= Duration::from_millis(720) && took <= Duration::from_millis(950),
            "24 kB through 256 kbit/s took {took:?}, not about 750 ms"
        );
        let kbps = 24.0 * 8000.0 / took.as_secs_f64() / 1000.0;
        assert!((200.0..=270.0).contains(&kbps), "measured {kbps:.0} kbit/s");

        // 80 kB at once: a second's worth is queued (32 datagrams, and the one sending), the
        // rest is dropped at the tail; what was queued arrives, a second later.
        let tail_before = proxy.counters.tail_dropped.load(Ordering::Relaxed);
        let narrowed_before = proxy.counters.narrowed.load(Ordering::Relaxed);
        let start = burst(80).await;
        let (got, last) = receive(&server, &mut buf, 80).await;
        let tail = proxy.counters.tail_dropped.load(Ordering::Relaxed) - tail_before;
        let narrowed = proxy.counters.narrowed.load(Ordering::Relaxed) - narrowed_before;
        assert_eq!(
            got as u64, narrowed,
            "every datagram admitted to the queue arrives"
        );
        assert_eq!(proxy.tally().narrowed_bytes, (24 + narrowed) * 1000);
        assert!(
            (32..=36).contains(&got),
            "{got} datagrams passed, {tail} dropped"
        );
        assert!(tail >= 40, "{got} datagrams passed, {tail} dropped");
        assert!(
            last - start >= Duration::from_millis(950),
            "{:?}",
            last - start
        );
        assert!(proxy.tally().max_wait_ms >= 950);
    }
}
