//! The floor under any proxy's added latency, for `bench/run.sh`: a TCP byte relay on the
//! same single-threaded tokio runtime as switchyard, TCP_NODELAY both ways, no HTTP, no work.
//! Whatever it adds is the cost of one more hop in the benchmark's placement (two more
//! loopback round trips and the wake-ups of the proxy's core), not of anything switchyard does.
//! With a third argument it busy-polls as `serve --busy-poll-us` does (touched on every read),
//! which gives the floor under a busy-polling switchyard.
//!
//! usage: relay LISTEN_ADDR UPSTREAM_ADDR [BUSY_POLL_US]   (prints "relay listening on ADDR")
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

use std::time::Duration;

use switchyard::busy_poll::BusyPoll;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{TcpListener, TcpStream};

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let mut args = std::env::args().skip(1);
    let usage = "usage: relay LISTEN_ADDR UPSTREAM_ADDR [BUSY_POLL_US]";
    let listen = args.next().expect(usage);
    let upstream = args.next().expect(usage);
    let busy_poll = match args.next() {
        Some(us) => BusyPoll::start(Duration::from_micros(us.parse().expect(usage))),
        None => BusyPoll::off(),
    };
    let listener = TcpListener::bind(&listen).await.unwrap();
    println!("relay listening on {}", listener.local_addr().unwrap());
    loop {
        let (mut client, _) = listener.accept().await.unwrap();
        let upstream = upstream.clone();
        let busy_poll = busy_poll.clone();
        tokio::spawn(async move {
            let Ok(mut server) = TcpStream::connect(&upstream).await else {
                return;
            };
            client.set_nodelay(true).unwrap();
            server.set_nodelay(true).unwrap();
            if busy_poll.is_off() {
                // Ends when either side closes; nothing to report.
                let _ = tokio::io::copy_bidirectional(&mut client, &mut server).await;
                return;
            }
            let (client_read, client_write) = client.into_split();
            let (server_read, server_write) = server.into_split();
            tokio::spawn(pipe(server_read, client_write, busy_poll.clone()));
            pipe(client_read, server_write, busy_poll).await;
        });
    }
}

/// Copy one direction, touching the busy poller on every read.
async fn pipe(mut from: OwnedReadHalf, mut to: OwnedWriteHalf, busy_poll: BusyPoll) {
    let mut buf = vec![0u8; 16 << 10];
    while let Ok(n) = from.read(&mut buf).await {
        if n == 0 {
            break;
        }
        busy_poll.touch();
        if to.write_all(&buf[..n]).await.is_err() {
            break;
        }
    }
    // The other side may be gone already; nothing to report.
    let _ = to.shutdown().await;
}
