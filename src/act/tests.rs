use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::sync::Arc;

use super::plan::{SKIP_LISTEN, SKIP_NO_OWNER, SKIP_STATE, SKIP_TIME_WAIT};
use super::*;
use crate::exit::EXIT_PARTIAL;
use crate::model::keepalive::{KeepaliveSettings, KeepaliveValues, Source};
use crate::model::{Owner, Process, TcpState};

fn conn(state: TcpState, port: u16, owners: &[(u32, u32)]) -> Connection {
    Connection {
        cookie: u64::from(port),
        state,
        local_port: port,
        peer_addr: IpAddr::V4(Ipv4Addr::new(192, 0, 2, 9)),
        peer_port: 443,
        inode: u32::from(port),
        owners: owners.iter().map(|&(pid, fd)| Owner { pid, fd }).collect(),
        ..crate::testing::conn()
    }
}

fn snapshot(conns: Vec<Connection>) -> Snapshot {
    let mut s = Snapshot {
        connections: conns,
        ..Snapshot::default()
    };
    s.processes.insert(
        7,
        Process {
            pid: 7,
            comm: "evil\x1b]0;x".to_string(),
            cmdline: vec![],
            uid: None,
            user: None,
        },
    );
    s
}

#[test]
fn both_filters_must_match() {
    let s = snapshot(vec![
        conn(TcpState::Established, 1000, &[(7, 3)]),
        conn(TcpState::CloseWait, 1001, &[(7, 4)]),
        conn(TcpState::CloseWait, 1002, &[(8, 4)]),
    ]);
    let words = Filter::parse("state:close-wait").unwrap();
    let flags = Filter {
        pids: vec![7],
        ..Filter::default()
    };
    let got: Vec<u16> = select(&s, &[&words, &flags])
        .iter()
        .map(|c| c.local_port)
        .collect();
    assert_eq!(got, vec![1001]);
}

#[test]
fn kill_skips_time_wait_and_says_so() {
    let s = snapshot(vec![
        conn(TcpState::Established, 1, &[(7, 3)]),
        conn(TcpState::TimeWait, 2, &[]),
        conn(TcpState::TimeWait, 3, &[]),
        conn(TcpState::Listen, 4, &[(7, 5)]),
        conn(TcpState::FinWait2, 5, &[]),
    ]);
    let all = select(&s, &[&Filter::default()]);
    let plan = plan_kill(&all, true);
    let ports: Vec<u16> = plan.targets.iter().map(|c| c.local_port).collect();
    assert_eq!(ports, vec![1, 4, 5]);
    assert_eq!(
        plan.skipped_lines(),
        vec![format!("skipped 2 sockets (2 time-wait): {SKIP_TIME_WAIT}")]
    );
    assert_eq!(plan.asked(), 3);
}

#[test]
fn kill_leaves_listeners_alone_unless_the_filter_names_listen() {
    let s = snapshot(vec![
        conn(TcpState::Established, 1, &[(7, 3)]),
        conn(TcpState::Listen, 5000, &[(7, 5)]),
    ]);
    let port = Filter::parse("port:5000").unwrap();
    let listen = Filter::parse("port:5000 state:listen").unwrap();
    assert!(!names_listen(&[&port, &Filter::default()]));
    assert!(names_listen(&[&port, &listen]));
    let all = select(&s, &[&Filter::default()]);
    let plan = plan_kill(&all, names_listen(&[&port]));
    let ports: Vec<u16> = plan.targets.iter().map(|c| c.local_port).collect();
    assert_eq!(ports, vec![1]);
    assert_eq!(
        plan.listener_lines(&s),
        vec![
            format!("skipped 1 listening socket (name state:listen to include it): {SKIP_LISTEN}"),
            "  LISTEN 127.0.0.1:5000 -> 192.0.2.9:443 evil\\x1b]0;x[7]/fd 5".to_string(),
        ]
    );
    let plan = plan_kill(&all, true);
    assert_eq!(plan.targets.len(), 2);
    assert!(plan.listener_lines(&s).is_empty());

    // Many listeners: twenty named, the rest counted.
    let many: Vec<Connection> = (1..=25)
        .map(|p| conn(TcpState::Listen, p, &[(7, 3)]))
        .collect();
    let s = snapshot(many);
    let plan = plan_kill(&select(&s, &[&Filter::default()]), false);
    let lines = plan.listener_lines(&s);
    assert_eq!(lines.len(), 22);
    assert!(
        lines[0].starts_with("skipped 25 listening sockets (name state:listen to include them)")
    );
    assert_eq!(lines[21], "  and 5 more");
}

#[test]
fn exit_status_tells_all_some_and_none() {
    assert_eq!(failure_status(0, 3), None);
    assert_eq!(failure_status(1, 3), Some(EXIT_PARTIAL));
    assert_eq!(failure_status(3, 3), Some(EXIT_FAILED));
}

#[test]
fn a_plan_with_nothing_to_do_says_why_and_how_it_exits() {
    let status = |e: anyhow::Error| {
        let u = e.downcast::<Unfinished>().unwrap();
        (u.status, u.message)
    };
    let s = snapshot(vec![
        conn(TcpState::Listen, 5000, &[(7, 5)]),
        conn(TcpState::Established, 2, &[]),
    ]);
    let all = select(&s, &[&Filter::default()]);
    assert_eq!(
        status(nothing_done(&plan_kill(&[], false), "kill", "port:9")),
        (
            EXIT_NOTHING_TO_DO,
            "nothing to kill: no socket matches 'port:9'".to_string()
        )
    );
    assert_eq!(
        status(nothing_done(
            &plan_kill(&all[..1], false),
            "kill",
            "port:5000"
        )),
        (
            EXIT_NOTHING_TO_DO,
            "nothing to kill: every matching socket was skipped (1, see above)".to_string()
        )
    );
    // Keepalive for a socket whose owner could not be read: not nothing to do, a failure.
    let plan = plan_keepalive(&all);
    assert_eq!(plan.asked(), 1);
    assert_eq!(
        status(nothing_done(&plan, "change", "port:2")),
        (
            EXIT_FAILED,
            "could not change any of the 1 matching socket: no owning process known (run as root to read \
             every process's fds)"
                .to_string()
        )
    );
}

#[test]
fn keepalive_takes_open_connections_with_owners_only() {
    let s = snapshot(vec![
        conn(TcpState::Established, 1, &[(7, 3)]),
        conn(TcpState::CloseWait, 2, &[(7, 4)]),
        conn(TcpState::Established, 3, &[]),
        conn(TcpState::Listen, 4, &[(7, 5)]),
        conn(TcpState::TimeWait, 5, &[]),
    ]);
    let all = select(&s, &[&Filter::default()]);
    let plan = plan_keepalive(&all);
    let ports: Vec<u16> = plan.targets.iter().map(|c| c.local_port).collect();
    assert_eq!(ports, vec![1, 2]);
    assert_eq!(
        plan.skipped_lines(),
        vec![
            format!("skipped 2 sockets (1 time-wait, 1 listen): {SKIP_STATE}"),
            format!("cannot change 1 socket (1 established): {SKIP_NO_OWNER}"),
        ]
    );
    assert_eq!(plan.asked(), 3);
}

#[test]
fn report_lines_name_the_socket_and_escape_owner_names() {
    let s = snapshot(vec![conn(TcpState::CloseWait, 5000, &[(7, 3), (9, 4)])]);
    assert_eq!(
        socket_line(&s.connections[0], &s),
        "CLOSE-WAIT 127.0.0.1:5000 -> 192.0.2.9:443 evil\\x1b]0;x[7]/fd 3 ?[9]/fd 4"
    );
    let mut v6 = conn(TcpState::Established, 1, &[]);
    v6.local_addr = IpAddr::V6(Ipv6Addr::LOCALHOST);
    v6.peer_addr = IpAddr::V6(Ipv6Addr::LOCALHOST);
    assert_eq!(socket_line(&v6, &s), "ESTAB [::1]:1 -> [::1]:443");
}

#[test]
fn answers() {
    for yes in ["y", "Y", "yes", " YES\n"] {
        assert!(is_yes(yes), "{yes:?}");
    }
    for no in ["", "\n", "n", "no", "yess", "ja"] {
        assert!(!is_yes(no), "{no:?}");
    }
}

#[test]
fn filters_are_parsed_and_an_empty_one_refused() {
    let words = |w: &[&str]| w.iter().map(ToString::to_string).collect::<Vec<_>>();
    let f = parse_filter(
        &words(&["port:443", "state:close-wait"]),
        &Filter::default(),
    )
    .unwrap();
    assert_eq!(f.ports, vec![443]);
    assert_eq!(f.states, vec![TcpState::CloseWait]);
    let err = parse_filter(&words(&["port:0"]), &Filter::default()).unwrap_err();
    assert_eq!(
        format!("{err:#}"),
        "invalid filter 'port:0': invalid port '0': must be 1-65535"
    );
    let err = parse_filter(&words(&[""]), &Filter::default()).unwrap_err();
    assert!(
        err.to_string().contains("refusing to act on every socket"),
        "{err}"
    );
    // A flag such as --pid or --port is a filter too, with FILTER words or without.
    let flags = Filter {
        pids: vec![1],
        ..Filter::default()
    };
    assert!(parse_filter(&words(&[" "]), &flags).is_ok());
    let port = Filter {
        ports: vec![5000],
        ..Filter::default()
    };
    assert!(parse_filter(&[], &port).unwrap().is_empty());
    assert!(parse_filter(&[], &Filter::default()).is_err());
    assert_eq!(asked_text(&[], &port), "port:5000");
    assert_eq!(
        asked_text(&words(&["comm:x", " "]), &port),
        "comm:x port:5000"
    );
}

#[test]
fn readback_says_what_the_socket_has() {
    let v = KeepaliveValues::DEFAULT;
    let mut read = KeepaliveSettings {
        enabled: Some(true),
        idle_s: Some(60),
        intvl_s: Some(10),
        cnt: Some(5),
        user_timeout_ms: Some(0),
        source: Source::Socket,
    };
    assert_eq!(
        readback_text(v, &read),
        "keepalive on, idle 60s intvl 10s cnt 5"
    );
    read.cnt = Some(9);
    read.user_timeout_ms = Some(3000);
    assert_eq!(
        readback_text(v, &read),
        "keepalive on, idle 60s intvl 10s cnt 9 (differs from what was set); TCP_USER_TIMEOUT 3000 ms also \
         applies: the connection may be reset sooner"
    );
}

#[test]
fn sockets_of_other_namespaces_are_destroyed_from_inside_them() {
    use crate::model::{NamespaceInfo, NetnsRef, Settings};
    use std::path::{Path, PathBuf};
    let ns = |inode, name: Option<&str>| NetnsRef {
        inode,
        name: name.map(Into::into),
    };
    let info = |inode, name, current, pid| NamespaceInfo {
        netns: ns(inode, name),
        current,
        pid,
        settings: Settings::default(),
        error: None,
    };
    let namespaces = vec![
        info(1, None, true, None),
        info(2, Some("web"), false, None),
        info(3, None, false, Some(42)),
        info(4, None, false, None),
    ];
    let proc_root = Path::new("/proc");
    let place = |inode: Option<u64>, own| {
        let mut c = conn(TcpState::Established, 1, &[]);
        c.netns = inode.map(|i| Arc::new(ns(i, if i == 2 { Some("web") } else { None })));
        destroy_place(&c, &namespaces, own, proc_root)
    };
    assert_eq!(place(None, None), Ok(None));
    assert_eq!(place(Some(1), None), Ok(None));
    assert_eq!(place(Some(9), Some(9)), Ok(None));
    assert_eq!(
        place(Some(2), None),
        Ok(Some(PathBuf::from("/run/netns/web")))
    );
    assert_eq!(
        place(Some(3), None),
        Ok(Some(PathBuf::from("/proc/42/ns/net")))
    );
    assert_eq!(
        place(Some(4), None),
        Err(
            "cannot reach network namespace 'ns:4': it has no name and no known process"
                .to_string()
        )
    );
}
