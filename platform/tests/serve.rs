//! `serve` on a real loopback socket (port 0): answers, then stops when told.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use platform::{Metrics, Readiness};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

#[tokio::test]
async fn serves_until_the_shutdown_future_completes() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let metrics = Metrics::new();
    let app = platform::observe(Readiness::new().router(), &metrics);
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(platform::serve(listener, app, async {
        let _ = stopped.await;
    }));

    let mut stream = TcpStream::connect(addr).await.unwrap();
    stream
        .write_all(b"GET /health/live HTTP/1.1\r\nHost: test\r\nX-Correlation-Id: over-tcp\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let mut answer = String::new();
    stream.read_to_string(&mut answer).await.unwrap();
    assert!(answer.starts_with("HTTP/1.1 200 OK\r\n"), "{answer}");
    assert!(answer
        .to_ascii_lowercase()
        .contains("x-correlation-id: over-tcp\r\n"));

    stop.send(()).unwrap();
    server.await.unwrap().unwrap();
}
