//! Pure: does kwatch list the same sockets, in the same states, as `ss -tanH`, and the right owners?

use std::collections::{BTreeMap, HashMap};
use std::io::Read;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use anyhow::{Context, bail};
use kwatch::model::TcpState;
use serde::Deserialize;

/// A socket as both tools can name it: ss's state label, local and peer address.
pub type Key = (String, IpAddr, u16, IpAddr, u16);

/// Parses `ss -tanH` output into sorted keys.
pub fn parse_ss(text: &str) -> anyhow::Result<Vec<Key>> {
    let mut keys = Vec::new();
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        let fields: Vec<&str> = line.split_whitespace().collect();
        let [state, _recv_q, _send_q, local, peer, ..] = fields.as_slice() else {
            bail!("unexpected ss line '{line}'");
        };
        let (la, lp) = parse_endpoint(local)?;
        let (pa, pp) = parse_endpoint(peer)?;
        keys.push((state.to_string(), la, lp, pa, pp));
    }
    keys.sort();
    Ok(keys)
}

/// `127.0.0.1:80`, `[::1]:80`, `0.0.0.0:*`, `*:80`, `[::]:*`, `127.0.0.1%lo:80`.
fn parse_endpoint(s: &str) -> anyhow::Result<(IpAddr, u16)> {
    let (addr, port) = s
        .rsplit_once(':')
        .with_context(|| format!("no port in '{s}'"))?;
    let port = if port == "*" {
        0
    } else {
        port.parse()
            .with_context(|| format!("invalid port in '{s}'"))?
    };
    let addr = addr.trim_start_matches('[').trim_end_matches(']');
    let addr = addr.split('%').next().unwrap_or(addr);
    let addr = match addr {
        "*" => IpAddr::V4(Ipv4Addr::UNSPECIFIED),
        a => a
            .parse::<IpAddr>()
            .with_context(|| format!("invalid address in '{s}'"))?,
    };
    Ok((addr, port))
}

/// The part of `kwatch --once --json` the check reads; the rest is skipped while parsing.
#[derive(Debug, Deserialize)]
struct Doc {
    sockets: Vec<Socket>,
}

#[derive(Debug, Deserialize)]
struct Socket {
    state: String,
    local_addr: IpAddr,
    local_port: u16,
    peer_addr: IpAddr,
    peer_port: u16,
    owners: Vec<OwnerRef>,
}

#[derive(Debug, Deserialize)]
struct OwnerRef {
    pid: u32,
}

/// What kwatch reported: sorted keys and how many sockets each pid owns.
#[derive(Debug, Default)]
pub struct Kwatch {
    pub keys: Vec<Key>,
    pub sockets_by_pid: HashMap<u32, usize>,
    pub without_owner: usize,
}

/// Reads a `kwatch --once --json` document.
pub fn parse_kwatch(reader: impl Read) -> anyhow::Result<Kwatch> {
    let doc: Doc = serde_json::from_reader(std::io::BufReader::new(reader))
        .context("cannot parse kwatch's JSON")?;
    let mut out = Kwatch::default();
    for s in doc.sockets {
        let state = TcpState::parse(&s.state)
            .with_context(|| format!("unknown state '{}' in kwatch's JSON", s.state))?;
        // ss shows a v4 wildcard peer of a v6 socket as `[::]:*`: compare what the kernel reported.
        let peer_addr = match (s.local_addr, s.peer_addr) {
            (IpAddr::V6(_), IpAddr::V4(p)) if p.is_unspecified() => {
                IpAddr::V6(Ipv6Addr::UNSPECIFIED)
            }
            (_, p) => p,
        };
        out.keys.push((
            state.label().to_string(),
            s.local_addr,
            s.local_port,
            peer_addr,
            s.peer_port,
        ));
        if s.owners.is_empty() {
            out.without_owner += 1;
        }
        let mut pids: Vec<u32> = s.owners.iter().map(|o| o.pid).collect();
        pids.dedup();
        for pid in pids {
            *out.sockets_by_pid.entry(pid).or_default() += 1;
        }
    }
    out.keys.sort();
    Ok(out)
}

/// Lists the differences between two sorted key lists (at most `limit` of each side), or `None` if equal.
pub fn diff(ss: &[Key], kwatch: &[Key], limit: usize) -> Option<String> {
    if ss == kwatch {
        return None;
    }
    let mut count: BTreeMap<&Key, i64> = BTreeMap::new();
    for k in ss {
        *count.entry(k).or_default() += 1;
    }
    for k in kwatch {
        *count.entry(k).or_default() -= 1;
    }
    let only_ss: Vec<String> = count
        .iter()
        .filter(|(_, c)| **c > 0)
        .take(limit)
        .map(|(k, _)| fmt_key(k))
        .collect();
    let only_kwatch: Vec<String> = count
        .iter()
        .filter(|(_, c)| **c < 0)
        .take(limit)
        .map(|(k, _)| fmt_key(k))
        .collect();
    Some(format!(
        "ss lists {} sockets, kwatch {}; only in ss (first {limit}): [{}]; only in kwatch: [{}]",
        ss.len(),
        kwatch.len(),
        only_ss.join(", "),
        only_kwatch.join(", ")
    ))
}

fn fmt_key((state, la, lp, pa, pp): &Key) -> String {
    format!("{state} {la}:{lp} -> {pa}:{pp}")
}

/// Counts sockets per state label, for the summary line.
pub fn by_state(keys: &[Key]) -> BTreeMap<String, usize> {
    let mut out = BTreeMap::new();
    for k in keys {
        *out.entry(k.0.clone()).or_default() += 1;
    }
    out
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    const SS: &str = "\
LISTEN     0      4096       127.0.0.1:5001       0.0.0.0:*
ESTAB      0      0          127.0.0.11:40000     127.0.0.1:5001
CLOSE-WAIT 1      0          127.0.0.1:5001       127.0.0.11:40001
FIN-WAIT-2 0      0          127.0.0.11:40001     127.0.0.1:5001
LISTEN     0      128        [::]:22              [::]:*
";

    #[test]
    fn ss_lines_parse_into_keys() {
        let keys = parse_ss(SS).unwrap();
        assert_eq!(keys.len(), 5);
        assert!(keys.contains(&(
            "CLOSE-WAIT".into(),
            "127.0.0.1".parse().unwrap(),
            5001,
            "127.0.0.11".parse().unwrap(),
            40001
        )));
        assert!(keys.contains(&(
            "LISTEN".into(),
            "::".parse().unwrap(),
            22,
            "::".parse().unwrap(),
            0
        )));
        assert_eq!(parse_endpoint("*:80").unwrap().1, 80);
        assert_eq!(
            parse_endpoint("127.0.0.1%lo:80").unwrap().0,
            IpAddr::V4(Ipv4Addr::LOCALHOST)
        );
        assert!(parse_ss("garbage").is_err());
    }

    #[test]
    fn kwatch_json_gives_the_same_keys_and_owners() {
        let json = r#"{"schema_version":1,"sockets":[
          {"state":"listen","local_addr":"127.0.0.1","local_port":5001,"peer_addr":"0.0.0.0","peer_port":0,
           "owners":[{"pid":10,"fd":3}],"extra":true},
          {"state":"established","local_addr":"127.0.0.11","local_port":40000,"peer_addr":"127.0.0.1",
           "peer_port":5001,"owners":[{"pid":11,"fd":4},{"pid":11,"fd":9}]},
          {"state":"close-wait","local_addr":"127.0.0.1","local_port":5001,"peer_addr":"127.0.0.11",
           "peer_port":40001,"owners":[{"pid":10,"fd":5}]},
          {"state":"fin-wait-2","local_addr":"127.0.0.11","local_port":40001,"peer_addr":"127.0.0.1",
           "peer_port":5001,"owners":[]},
          {"state":"listen","local_addr":"::","local_port":22,"peer_addr":"0.0.0.0","peer_port":0,"owners":[]}
        ],"processes":[]}"#;
        let k = parse_kwatch(json.as_bytes()).unwrap();
        let ss = parse_ss(SS).unwrap();
        assert_eq!(diff(&ss, &k.keys, 5), None);
        assert_eq!(k.sockets_by_pid[&10], 2);
        assert_eq!(k.sockets_by_pid[&11], 1);
        assert_eq!(k.without_owner, 2);
        assert_eq!(by_state(&ss)["LISTEN"], 2);
    }

    #[test]
    fn differences_are_named() {
        let ss = parse_ss(SS).unwrap();
        let fewer = &ss[1..];
        let d = diff(&ss, fewer, 5).unwrap();
        assert!(d.contains("ss lists 5 sockets, kwatch 4"), "{d}");
        assert!(d.contains("only in ss"), "{d}");
    }
}
