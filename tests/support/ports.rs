//! Free loopback ports for the servers the tests start.

use std::net::TcpListener;

/// A port nothing listens on right now (the OS picks it; it is released at once).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// `n` (quorum, election, client) port triples, all distinct: every port stays bound until
/// all are chosen (a port released at once may be handed out again by the next bind, and
/// two servers sharing one fail to start or make /zookeeper/config invalid).
pub fn free_port_triples(n: usize) -> Vec<(u16, u16, u16)> {
    let listeners: Vec<TcpListener> = (0..3 * n)
        .map(|_| TcpListener::bind("127.0.0.1:0").unwrap())
        .collect();
    let ports: Vec<u16> = listeners
        .iter()
        .map(|l| l.local_addr().unwrap().port())
        .collect();
    ports.chunks(3).map(|c| (c[0], c[1], c[2])).collect()
}
