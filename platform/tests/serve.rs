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

use std::time::Duration;

use axum::routing::get;
use axum::Router;
use platform::ServeOptions;

/// A server with `options` on a loopback port: `/fast` answers, `/never` never does.
async fn start(options: ServeOptions) -> (std::net::SocketAddr, tokio::sync::oneshot::Sender<()>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let app = Router::new()
        .route("/fast", get(|| async { "fast" }))
        .route("/never", get(std::future::pending::<&'static str>));
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(platform::serve_with(
        listener,
        app,
        async {
            let _ = stopped.await;
        },
        options,
    ));
    (addr, stop)
}

async fn get_once(addr: std::net::SocketAddr, path: &str) -> String {
    let mut stream = TcpStream::connect(addr).await.unwrap();
    stream
        .write_all(
            format!("GET {path} HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n").as_bytes(),
        )
        .await
        .unwrap();
    let mut answer = String::new();
    let _ = stream.read_to_string(&mut answer).await;
    answer
}

#[tokio::test]
async fn a_slow_loris_is_closed_while_other_clients_are_served() {
    let (addr, stop) = start(ServeOptions {
        header_read_timeout: Duration::from_secs(1),
        ..ServeOptions::default()
    })
    .await;
    let mut loris = TcpStream::connect(addr).await.unwrap();
    loris
        .write_all(b"GET /fast HTTP/1.1\r\nHost: t\r\n")
        .await
        .unwrap();
    // Keep dribbling one header line at a time, as a slow-loris client does, until the
    // server hangs up (or far longer than it may take).
    let (mut reader, mut writer) = loris.into_split();
    let dribble = tokio::spawn(async move {
        let mut interval = tokio::time::interval(Duration::from_millis(200));
        for n in 0..300 {
            interval.tick().await;
            if writer
                .write_all(format!("X-Slow-{n}: y\r\n").as_bytes())
                .await
                .is_err()
            {
                return true;
            }
        }
        false
    });
    // Meanwhile others are served.
    for _ in 0..3 {
        let answer = get_once(addr, "/fast").await;
        assert!(answer.starts_with("HTTP/1.1 200 OK\r\n"), "{answer}");
    }
    let mut buf = Vec::new();
    let closed = tokio::time::timeout(Duration::from_secs(30), reader.read_to_end(&mut buf)).await;
    assert!(closed.is_ok(), "the dribbling connection is still open");
    assert!(
        !String::from_utf8_lossy(&buf).contains("200 OK"),
        "the slow request was served"
    );
    dribble.abort();
    stop.send(()).unwrap();
}

#[tokio::test]
async fn a_request_not_answered_in_time_gets_408() {
    let (addr, stop) = start(ServeOptions {
        request_timeout: Duration::from_secs(1),
        ..ServeOptions::default()
    })
    .await;
    let answer = tokio::time::timeout(Duration::from_secs(30), get_once(addr, "/never"))
        .await
        .expect("an answer to a request that never completes");
    assert!(answer.starts_with("HTTP/1.1 408 "), "{answer}");
    assert!(answer.contains("application/problem+json"), "{answer}");
    assert!(answer.contains("\"code\":\"request_timeout\""), "{answer}");
    stop.send(()).unwrap();
}

#[tokio::test]
async fn connections_past_the_cap_get_503_and_the_held_ones_are_served() {
    let (addr, stop) = start(ServeOptions {
        max_connections: 2,
        header_read_timeout: Duration::from_secs(60),
        ..ServeOptions::default()
    })
    .await;
    // Two connections hold both places (a request each that is not finished yet).
    let mut held = Vec::new();
    for _ in 0..2 {
        let mut stream = TcpStream::connect(addr).await.unwrap();
        stream.write_all(b"GET /fast HTTP/1.1\r\n").await.unwrap();
        held.push(stream);
    }
    // The third is refused at once, however long the others take. The server counts a
    // connection once it accepted it: retry until both held ones are counted.
    let refused = tokio::time::timeout(Duration::from_secs(30), async {
        loop {
            let answer = get_once(addr, "/fast").await;
            if answer.starts_with("HTTP/1.1 503 ") {
                return answer;
            }
        }
    })
    .await
    .expect("a connection past the cap is refused");
    assert!(refused.contains("\"code\":\"unavailable\""), "{refused}");
    assert!(
        refused.to_ascii_lowercase().contains("retry-after: 1"),
        "{refused}"
    );
    // The held connections finish their requests and are answered.
    for stream in &mut held {
        stream
            .write_all(b"Host: t\r\nConnection: close\r\n\r\n")
            .await
            .unwrap();
        let mut answer = String::new();
        stream.read_to_string(&mut answer).await.unwrap();
        assert!(answer.starts_with("HTTP/1.1 200 OK\r\n"), "{answer}");
    }
    // With the places free again, new clients are served.
    let answer = get_once(addr, "/fast").await;
    assert!(answer.starts_with("HTTP/1.1 200 OK\r\n"), "{answer}");
    stop.send(()).unwrap();
}

/// A certificate for `localhost` signed by a throw-away CA, made with openssl in `dir`:
/// (the CA's certificate, the server's chain, its key).
fn certificate(
    dir: &std::path::Path,
) -> (std::path::PathBuf, std::path::PathBuf, std::path::PathBuf) {
    std::fs::create_dir_all(dir).unwrap();
    let openssl = |args: &[&str]| {
        let out = std::process::Command::new("openssl")
            .current_dir(dir)
            .args(args)
            .output()
            .expect("openssl (the openssl package) runs");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    std::fs::write(dir.join("leaf.ext"), "subjectAltName=DNS:localhost\n").unwrap();
    openssl(&[
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-days",
        "1",
        "-subj",
        "/CN=test-ca",
        "-keyout",
        "ca.key",
        "-out",
        "ca.pem",
    ]);
    openssl(&[
        "req",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-subj",
        "/CN=localhost",
        "-keyout",
        "key.pem",
        "-out",
        "leaf.csr",
    ]);
    openssl(&[
        "x509",
        "-req",
        "-in",
        "leaf.csr",
        "-CA",
        "ca.pem",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-days",
        "1",
        "-extfile",
        "leaf.ext",
        "-out",
        "cert.pem",
    ]);
    (
        dir.join("ca.pem"),
        dir.join("cert.pem"),
        dir.join("key.pem"),
    )
}

#[tokio::test]
async fn with_a_certificate_the_listener_speaks_tls_only() {
    use rustls_pki_types::pem::PemObject;
    use rustls_pki_types::{CertificateDer, ServerName};
    use tokio_rustls::rustls;

    let dir = std::env::temp_dir().join(format!("platform-tls-{}", uuid::Uuid::new_v4()));
    let (ca, cert, key) = certificate(&dir);
    let (addr, stop) = start(ServeOptions {
        tls: Some(platform::Tls::from_pem_files(&cert, &key).unwrap()),
        ..ServeOptions::default()
    })
    .await;

    let mut roots = rustls::RootCertStore::empty();
    for c in CertificateDer::pem_file_iter(&ca).unwrap() {
        roots.add(c.unwrap()).unwrap();
    }
    #[allow(deprecated)]
    let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    let connector = tokio_rustls::TlsConnector::from(std::sync::Arc::new(config));
    let tcp = TcpStream::connect(addr).await.unwrap();
    let mut tls = connector
        .connect(ServerName::try_from("localhost").unwrap(), tcp)
        .await
        .expect("a TLS handshake with the service");
    tls.write_all(b"GET /fast HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let mut answer = String::new();
    let _ = tls.read_to_string(&mut answer).await;
    assert!(answer.starts_with("HTTP/1.1 200 OK\r\n"), "{answer}");
    assert!(answer.ends_with("fast"), "{answer}");

    // Plain HTTP on the TLS port gets no HTTP answer.
    let plain = tokio::time::timeout(Duration::from_secs(30), get_once(addr, "/fast"))
        .await
        .expect("the server ends a plain connection");
    assert!(!plain.contains("200 OK"), "{plain}");
    stop.send(()).unwrap();
    std::fs::remove_dir_all(&dir).unwrap();
}
