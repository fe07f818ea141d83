//! The client side of a four-letter word, for `keeperd status` and `keeperctl 4lw`: connect,
//! send the word, read until the server closes.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::time::Duration;

/// Sends `word` to `host:port` (trying each resolved address) and returns the reply. Every
/// step is bounded by `timeout`.
pub fn four_letter_word(
    host: &str,
    port: u16,
    word: &str,
    timeout: Duration,
) -> std::io::Result<String> {
    let addrs: Vec<SocketAddr> = (host, port).to_socket_addrs()?.collect();
    let mut last = std::io::Error::new(std::io::ErrorKind::NotFound, "no address");
    for addr in addrs {
        match TcpStream::connect_timeout(&addr, timeout) {
            Ok(mut stream) => {
                stream.set_read_timeout(Some(timeout))?;
                stream.set_write_timeout(Some(timeout))?;
                stream.write_all(word.as_bytes())?;
                let mut reply = Vec::new();
                // A server that answers but keeps the connection open still gave its answer.
                if let Err(e) = stream.read_to_end(&mut reply) {
                    if reply.is_empty() {
                        return Err(e);
                    }
                }
                return Ok(String::from_utf8_lossy(&reply).into_owned());
            }
            Err(e) => last = e,
        }
    }
    Err(last)
}
