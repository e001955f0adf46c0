//! A TCP proxy that a test puts between a service and MariaDB or RabbitMQ, and breaks on
//! command: each direction passes, is delayed, or is held (read and dropped, as a link
//! that lost its replies); new connections can be refused; every open connection can be
//! cut at once; and the target can be changed (a failover re-target, as a virtual IP or
//! a database proxy would do in production).
//!
//! Refusals and cuts close with a TCP reset (`SO_LINGER` 0), as a dead peer does, so a
//! client sees a connection error rather than a polite end of stream.

use std::io;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// Which way bytes travel through the proxy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    /// From the client (the service) to the server (MariaDB, RabbitMQ).
    ToServer,
    /// The server's replies.
    ToClient,
}

/// What happens to bytes travelling one way.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flow {
    Pass,
    /// Each chunk is forwarded this much later (order is kept).
    Delay(Duration),
    /// Read and dropped: the peer never sees them, and nothing tells either side.
    Hold,
}

#[derive(Debug, Clone)]
struct State {
    target: SocketAddr,
    to_server: Flow,
    to_client: Flow,
    refuse: bool,
    /// Incremented by every cut: connections made before it close.
    cuts: u64,
}

impl State {
    fn flow(&self, direction: Direction) -> Flow {
        match direction {
            Direction::ToServer => self.to_server,
            Direction::ToClient => self.to_client,
        }
    }
}

/// What the proxy did so far; a test checks that its fault really happened.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Stats {
    pub accepted: u64,
    pub refused: u64,
    /// Connections closed by a cut.
    pub cut: u64,
    /// Bytes read and dropped while a direction was held.
    pub held_bytes: u64,
    pub open: u64,
}

#[derive(Default)]
struct Counters {
    accepted: AtomicU64,
    refused: AtomicU64,
    cut: AtomicU64,
    held_bytes: AtomicU64,
    open: AtomicU64,
}

/// A running proxy; dropping it stops accepting (open connections end with their peers).
pub struct FaultProxy {
    addr: SocketAddr,
    state: watch::Sender<State>,
    counters: Arc<Counters>,
    accept: JoinHandle<()>,
}

impl FaultProxy {
    /// A proxy on `127.0.0.1:<free port>` forwarding to `target`, passing everything.
    pub async fn start(target: SocketAddr) -> io::Result<Self> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let (state, _) = watch::channel(State {
            target,
            to_server: Flow::Pass,
            to_client: Flow::Pass,
            refuse: false,
            cuts: 0,
        });
        let counters = Arc::new(Counters::default());
        let accept = tokio::spawn(accept_loop(listener, state.subscribe(), counters.clone()));
        Ok(Self {
            addr,
            state,
            counters,
            accept,
        })
    }

    /// A proxy to `host:port` (the first address it resolves to).
    pub async fn to(host: &str, port: u16) -> io::Result<Self> {
        let target = tokio::net::lookup_host((host, port))
            .await?
            .next()
            .ok_or_else(|| io::Error::new(io::ErrorKind::NotFound, host.to_owned()))?;
        Self::start(target).await
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    /// Sets what happens to bytes travelling `direction`, on open and new connections.
    pub fn set(&self, direction: Direction, flow: Flow) {
        self.state.send_modify(|s| match direction {
            Direction::ToServer => s.to_server = flow,
            Direction::ToClient => s.to_client = flow,
        });
    }

    /// Both directions held: every connection is half-open, as behind a dead link.
    pub fn hold_both(&self) {
        self.set(Direction::ToServer, Flow::Hold);
        self.set(Direction::ToClient, Flow::Hold);
    }

    /// New connections are reset at once (open ones are untouched).
    pub fn refuse(&self, refuse: bool) {
        self.state.send_modify(|s| s.refuse = refuse);
    }

    /// Resets every open connection now.
    pub fn cut(&self) {
        self.state.send_modify(|s| s.cuts += 1);
    }

    /// Everything passes again and new connections are accepted (cut connections stay
    /// closed).
    pub fn heal(&self) {
        self.state.send_modify(|s| {
            s.to_server = Flow::Pass;
            s.to_client = Flow::Pass;
            s.refuse = false;
        });
    }

    /// New connections go to `target` from now on; open ones are cut, as a failover
    /// re-target does.
    pub fn retarget(&self, target: SocketAddr) {
        self.state.send_modify(|s| {
            s.target = target;
            s.cuts += 1;
        });
    }

    pub fn stats(&self) -> Stats {
        let c = &self.counters;
        Stats {
            accepted: c.accepted.load(Ordering::Relaxed),
            refused: c.refused.load(Ordering::Relaxed),
            cut: c.cut.load(Ordering::Relaxed),
            held_bytes: c.held_bytes.load(Ordering::Relaxed),
            open: c.open.load(Ordering::Relaxed),
        }
    }
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        self.accept.abort();
        // Open connections end too: a proxy that is gone forwards nothing.
        self.cut();
    }
}

async fn accept_loop(
    listener: TcpListener,
    state: watch::Receiver<State>,
    counters: Arc<Counters>,
) {
    loop {
        let Ok((client, _)) = listener.accept().await else {
            continue;
        };
        let (refuse, target) = {
            let s = state.borrow();
            (s.refuse, s.target)
        };
        if refuse {
            counters.refused.fetch_add(1, Ordering::Relaxed);
            reset(client);
            continue;
        }
        counters.accepted.fetch_add(1, Ordering::Relaxed);
        tokio::spawn(serve(client, target, state.clone(), counters.clone()));
    }
}

fn reset(stream: TcpStream) {
    let _ = stream.set_zero_linger();
    drop(stream);
}

async fn serve(
    client: TcpStream,
    target: SocketAddr,
    mut state: watch::Receiver<State>,
    counters: Arc<Counters>,
) {
    let born = state.borrow().cuts;
    let server = tokio::select! {
        connected = TcpStream::connect(target) => connected,
        _ = state.wait_for(|s| s.cuts != born) => {
            reset(client);
            return;
        }
    };
    let Ok(server) = server else {
        reset(client);
        return;
    };
    // Every close is a reset: a cut must look like a dead peer, and a normal close has
    // already exchanged its end-of-stream by then.
    for s in [&client, &server] {
        let _ = s.set_zero_linger();
        let _ = s.set_nodelay(true);
    }
    counters.open.fetch_add(1, Ordering::Relaxed);
    let (client_read, client_write) = client.into_split();
    let (server_read, server_write) = server.into_split();
    let up = pump(
        client_read,
        server_write,
        Direction::ToServer,
        state.clone(),
        counters.clone(),
    );
    let down = pump(
        server_read,
        client_write,
        Direction::ToClient,
        state.clone(),
        counters.clone(),
    );
    tokio::select! {
        _ = async { tokio::join!(up, down) } => {}
        _ = state.wait_for(|s| s.cuts != born) => {
            counters.cut.fetch_add(1, Ordering::Relaxed);
        }
    }
    counters.open.fetch_sub(1, Ordering::Relaxed);
}

async fn pump(
    mut from: OwnedReadHalf,
    mut to: OwnedWriteHalf,
    direction: Direction,
    state: watch::Receiver<State>,
    counters: Arc<Counters>,
) {
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = match from.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        let flow = state.borrow().flow(direction);
        match flow {
            Flow::Pass => {}
            Flow::Delay(d) => tokio::time::sleep(d).await,
            Flow::Hold => {
                counters.held_bytes.fetch_add(n as u64, Ordering::Relaxed);
                continue;
            }
        }
        if to.write_all(&buf[..n]).await.is_err() {
            break;
        }
    }
    let _ = to.shutdown().await;
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    /// An echo server on a free port.
    async fn echo() -> SocketAddr {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            while let Ok((mut s, _)) = listener.accept().await {
                tokio::spawn(async move {
                    let mut buf = [0u8; 1024];
                    while let Ok(n) = s.read(&mut buf).await {
                        if n == 0 || s.write_all(&buf[..n]).await.is_err() {
                            break;
                        }
                    }
                });
            }
        });
        addr
    }

    async fn roundtrip(s: &mut TcpStream, msg: &[u8]) -> io::Result<Vec<u8>> {
        s.write_all(msg).await?;
        let mut buf = vec![0u8; msg.len()];
        s.read_exact(&mut buf).await?;
        Ok(buf)
    }

    #[tokio::test]
    async fn passes_then_holds_replies_then_cuts() {
        let proxy = FaultProxy::start(echo().await).await.unwrap();
        let mut s = TcpStream::connect(proxy.addr()).await.unwrap();
        assert_eq!(roundtrip(&mut s, b"one").await.unwrap(), b"one");

        proxy.set(Direction::ToClient, Flow::Hold);
        s.write_all(b"two").await.unwrap();
        let mut buf = [0u8; 3];
        let waited = tokio::time::timeout(Duration::from_millis(200), s.read_exact(&mut buf)).await;
        assert!(waited.is_err(), "a held reply must not arrive");
        // The echo answered: the proxy read the reply and dropped it.
        while proxy.stats().held_bytes < 3 {
            tokio::task::yield_now().await;
        }

        proxy.cut();
        let after = s.read(&mut buf).await;
        assert!(
            matches!(after, Ok(0) | Err(_)),
            "a cut connection ends: {after:?}"
        );
        assert_eq!(proxy.stats().cut, 1);
    }

    #[tokio::test]
    async fn refuses_new_connections_until_healed() {
        let proxy = FaultProxy::start(echo().await).await.unwrap();
        proxy.refuse(true);
        let mut s = TcpStream::connect(proxy.addr()).await.unwrap();
        assert!(roundtrip(&mut s, b"x").await.is_err());
        assert_eq!(proxy.stats().refused, 1);

        proxy.heal();
        let mut s = TcpStream::connect(proxy.addr()).await.unwrap();
        assert_eq!(roundtrip(&mut s, b"y").await.unwrap(), b"y");
    }

    #[tokio::test]
    async fn retarget_cuts_and_moves() {
        let proxy = FaultProxy::start(echo().await).await.unwrap();
        let mut old = TcpStream::connect(proxy.addr()).await.unwrap();
        assert_eq!(roundtrip(&mut old, b"a").await.unwrap(), b"a");
        proxy.retarget(echo().await);
        assert!(roundtrip(&mut old, b"b").await.is_err());
        let mut new = TcpStream::connect(proxy.addr()).await.unwrap();
        assert_eq!(roundtrip(&mut new, b"c").await.unwrap(), b"c");
    }

    #[tokio::test]
    async fn delays_keep_order() {
        let proxy = FaultProxy::start(echo().await).await.unwrap();
        proxy.set(Direction::ToServer, Flow::Delay(Duration::from_millis(20)));
        let mut s = TcpStream::connect(proxy.addr()).await.unwrap();
        for m in [b"1", b"2", b"3"] {
            assert_eq!(roundtrip(&mut s, m).await.unwrap(), m);
        }
    }
}
