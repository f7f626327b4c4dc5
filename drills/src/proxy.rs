//! A fault-injecting UDP proxy in front of a QUIC endpoint: one per sync link (dialer →
//! listener), so that a partition, a flapping link, latency or loss can be put on any link
//! without root, network namespaces or touching the processes.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::net::UdpSocket;
use tokio::task::JoinHandle;

/// What a link does to datagrams.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum LinkState {
    /// Forward everything.
    Up,
    /// Drop everything.
    Cut,
    /// Delay every datagram and drop some.
    Degraded { latency_ms: u64, loss_pct: f64 },
}

/// Counters of one link.
#[derive(Debug, Default)]
pub struct LinkCounters {
    pub forwarded: AtomicU64,
    pub dropped: AtomicU64,
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
                    } => {
                        if rng.unit() * 100.0 < loss_pct {
                            ct.dropped.fetch_add(1, Ordering::Relaxed);
                            continue;
                        }
                        Duration::from_millis(latency_ms)
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
                    tokio::spawn(async move {
                        tokio::time::sleep(delay).await;
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
        });
        let sent = std::time::Instant::now();
        client.send(b"three").await.unwrap();
        let (n, _) = echo(&server, &mut buf).await.unwrap().unwrap();
        assert_eq!(&buf[..n], b"three");
        assert!(sent.elapsed() >= Duration::from_millis(100));

        proxy.set(LinkState::Up);
        assert!(proxy.joins("b", "a") && proxy.touches("a") && !proxy.touches("c"));
    }
}
