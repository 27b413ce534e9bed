//! Graceful shutdown, native server and edge-host alike: once shutdown starts no connection is accepted, and a
//! request already in flight (here: its body not sent yet) still gets its answer.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use classify_tests::edge::EdgeServer;
use classify_tests::fixtures::models_dir;
use classify_tests::native::NativeServer;

fn finishes_in_flight_requests<S: Send + 'static>(server: S, base_url: &str) {
    let address = base_url.trim_start_matches("http://").to_owned();
    let body = br#"{"model": "bert-sentiment", "input": "I loved this movie"}"#;
    let mut stream = TcpStream::connect(&address).expect("connect");
    stream
        .set_read_timeout(Some(Duration::from_secs(60)))
        .expect("timeout");
    write!(
        stream,
        "POST /v1/classify HTTP/1.1\r\nHost: {address}\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\n\r\n",
        body.len()
    )
    .expect("headers");
    std::thread::sleep(Duration::from_millis(300));
    let started = Instant::now();
    let stopping = std::thread::spawn(move || drop(server));
    std::thread::sleep(Duration::from_millis(300));
    assert!(
        TcpStream::connect(&address).is_err(),
        "a new connection was accepted during shutdown"
    );
    stream.write_all(body).expect("body");
    let mut answer = String::new();
    let _ = stream.read_to_string(&mut answer);
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert!(answer.contains("\"label\""), "{answer}");
    stopping.join().expect("shutdown");
    assert!(started.elapsed() < Duration::from_secs(30));
}

#[test]
fn the_native_server_finishes_in_flight_requests_on_shutdown() {
    let native = NativeServer::start(&[&models_dir().join("bert-sentiment")], &[])
        .unwrap_or_else(|e| panic!("native: {e:#}"));
    let base_url = native.base_url.clone();
    finishes_in_flight_requests(native, &base_url);
}

#[test]
fn edge_host_finishes_in_flight_requests_on_shutdown() {
    let edge = EdgeServer::start(&models_dir(), None).unwrap_or_else(|e| panic!("edge: {e:#}"));
    let base_url = edge.base_url.clone();
    finishes_in_flight_requests(edge, &base_url);
}
