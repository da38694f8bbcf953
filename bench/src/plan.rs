//! Pure: how N connections are spread over server/client farm pairs, addresses and shares.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use crate::farm::Role;

/// The fewest farm pairs, so that even a small run has several owning processes.
pub const MIN_PAIRS: usize = 4;
/// Share of connections with SO_KEEPALIVE on both ends, in percent.
pub const KEEPALIVE_PCT: usize = 25;
/// Share of connections the client half-closes (server end in CLOSE_WAIT), in percent.
pub const CLOSE_WAIT_PCT: usize = 10;

/// One server farm and the client farm that connects to it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pair {
    pub server: Role,
    pub client: Role,
    pub count: usize,
}

/// Splits `n` connections into pairs of at most `per_process` connections each (at least [`MIN_PAIRS`] pairs
/// when `n` allows). Server k listens on 127.0.0.1:(5001+k); client k connects from 127.0.0.11 + k (counted on
/// as one number past 127.0.0.255: all of 127/8 is on `lo`), so every client has a whole ephemeral port range to
/// itself. N=500,000 at 16,000 per process is 32 pairs: 64 processes.
pub fn plan(n: usize, per_process: usize) -> Vec<Pair> {
    let per_process = per_process.max(1);
    let pairs = n.div_ceil(per_process).max(MIN_PAIRS.min(n));
    (0..pairs)
        .map(|k| {
            // Spread the remainder over the first pairs.
            let count = n / pairs + usize::from(k < n % pairs);
            let keepalive = count * KEEPALIVE_PCT / 100;
            let close_wait = count * CLOSE_WAIT_PCT / 100;
            let listen = SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), 5001 + k as u16);
            Pair {
                server: Role::Server {
                    listen,
                    count,
                    keepalive,
                },
                client: Role::Client {
                    src: client_addr(k),
                    dst: listen,
                    count,
                    keepalive,
                    close_wait,
                },
                count,
            }
        })
        .collect()
}

/// Client k's source address: 127.0.0.11 + k, carried into the higher octets (127.0.1.10 after 127.0.0.255).
fn client_addr(k: usize) -> IpAddr {
    IpAddr::V4(Ipv4Addr::from(
        u32::from(Ipv4Addr::new(127, 0, 0, 11)) + k as u32,
    ))
}

/// The sockets `ss -tanH` should list: both ends of each connection plus one listener per pair.
pub fn expected_sockets(pairs: &[Pair]) -> usize {
    pairs.iter().map(|p| 2 * p.count + 1).sum()
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn small_n_still_uses_several_processes() {
        let pairs = plan(1000, 16_000);
        assert_eq!(pairs.len(), 4);
        assert!(pairs.iter().all(|p| p.count == 250));
        assert_eq!(expected_sockets(&pairs), 2004);
    }

    #[test]
    fn large_n_respects_the_per_process_cap_and_sums_to_n() {
        let pairs = plan(100_000, 16_000);
        assert_eq!(pairs.len(), 7);
        assert!(pairs.iter().all(|p| p.count <= 16_000));
        assert_eq!(pairs.iter().map(|p| p.count).sum::<usize>(), 100_000);
        let Role::Client {
            keepalive,
            close_wait,
            count,
            ..
        } = pairs[0].client
        else {
            panic!("client role expected");
        };
        assert_eq!(keepalive, count / 4);
        assert_eq!(close_wait, count / 10);
    }

    #[test]
    fn half_a_million_spreads_over_more_than_fifty_processes_with_distinct_addresses() {
        let pairs = plan(500_000, 16_000);
        assert_eq!(pairs.len(), 32);
        assert!(2 * pairs.len() >= 50);
        assert_eq!(expected_sockets(&pairs), 1_000_032);
        // Small per-process caps need more pairs than 127.0.0.x holds: addresses carry into the next octet.
        let many = plan(500_000, 1_000);
        assert_eq!(many.len(), 500);
        let srcs: std::collections::HashSet<IpAddr> = many
            .iter()
            .map(|p| match p.client {
                Role::Client { src, .. } => src,
                Role::Server { .. } => panic!("client role expected"),
            })
            .collect();
        assert_eq!(srcs.len(), 500);
        assert!(srcs.contains(&"127.0.0.11".parse().unwrap()));
        assert!(srcs.contains(&"127.0.1.0".parse().unwrap()));
    }

    #[test]
    fn tiny_n_has_no_empty_pairs() {
        assert_eq!(plan(2, 16_000).len(), 2);
        assert!(plan(0, 16_000).is_empty());
    }
}
