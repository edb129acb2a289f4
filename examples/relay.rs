//! The floor under any proxy's added latency, for `bench/run.sh`: a TCP byte relay on the
//! same single-threaded tokio runtime as switchyard, TCP_NODELAY both ways, no HTTP, no work.
//! Whatever it adds is the cost of one more hop in the benchmark's placement (two more
//! loopback round trips and the wake-ups of the proxy's core), not of anything switchyard does.
//!
//! usage: relay LISTEN_ADDR UPSTREAM_ADDR   (prints "relay listening on ADDR" once bound)
#![allow(clippy::unwrap_used, clippy::expect_used)]

use tokio::net::{TcpListener, TcpStream};

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let mut args = std::env::args().skip(1);
    let listen = args.next().expect("usage: relay LISTEN_ADDR UPSTREAM_ADDR");
    let upstream = args.next().expect("usage: relay LISTEN_ADDR UPSTREAM_ADDR");
    let listener = TcpListener::bind(&listen).await.unwrap();
    println!("relay listening on {}", listener.local_addr().unwrap());
    loop {
        let (mut client, _) = listener.accept().await.unwrap();
        let upstream = upstream.clone();
        tokio::spawn(async move {
            let Ok(mut server) = TcpStream::connect(&upstream).await else {
                return;
            };
            client.set_nodelay(true).unwrap();
            server.set_nodelay(true).unwrap();
            let _ = tokio::io::copy_bidirectional(&mut client, &mut server).await;
        });
    }
}
