//! The live view with more than one network namespace: a NETNS column names each socket's namespace (and its
//! owner's container), and the `netns:` filter term keeps one namespace's sockets. With one namespace, no column.
#![allow(clippy::unwrap_used)]

use kwatch::analyze::{Thresholds, analyze};
use kwatch::filter::Filter;
use kwatch::model::{NamespaceInfo, NetnsRef, Snapshot, Unit, UnitKind};
use kwatch::tui::{Action, App, update};
use ratatui::Terminal;
use ratatui::backend::TestBackend;

const T0: u64 = 1_700_000_000_000;
const SIZE: (u16, u16) = (160, 50);

fn busy() -> Snapshot {
    let mut snap = kwatch::testing::fixture("busy.json");
    analyze(&mut snap, &Thresholds::default());
    snap
}

/// The busy fixture split over two namespaces: odd rows in `web`, whose first owner runs in a docker container.
fn two_namespaces() -> Snapshot {
    let mut snap = busy();
    let host = NetnsRef {
        inode: 4026531840,
        name: None,
    };
    let web = NetnsRef {
        inode: 4026532301,
        name: Some("web".into()),
    };
    for (ns, current) in [(&host, true), (&web, false)] {
        snap.namespaces.push(NamespaceInfo {
            netns: ns.clone(),
            current,
            pid: None,
            settings: snap.settings,
            error: None,
        });
    }
    for (i, c) in snap.connections.iter_mut().enumerate() {
        c.netns = Some(std::sync::Arc::new(if i % 2 == 1 {
            web.clone()
        } else {
            host.clone()
        }));
    }
    let owner = snap
        .connections
        .iter()
        .skip(1)
        .step_by(2)
        .find_map(|c| c.owners.first())
        .unwrap()
        .pid;
    snap.units.insert(
        owner,
        Unit {
            kind: UnitKind::Docker,
            id: "3f4e1b2c9d8a7b6c5d4e".into(),
            pod: None,
        },
    );
    snap
}

fn screen(snap: Snapshot, filter: &str) -> String {
    let mut app = App::new(Filter::default(), false);
    update(
        &mut app,
        Action::Resize {
            width: SIZE.0,
            height: SIZE.1,
        },
    );
    update(
        &mut app,
        Action::Snapshot {
            snapshot: std::sync::Arc::new(snap),
            now_ms: T0 + 1_200,
        },
    );
    if !filter.is_empty() {
        update(&mut app, Action::FilterOpen);
        update(&mut app, Action::FilterClearLine);
        for c in filter.chars() {
            update(&mut app, Action::FilterChar(c));
        }
        update(&mut app, Action::FilterApply);
    }
    let mut terminal = Terminal::new(TestBackend::new(SIZE.0, SIZE.1)).unwrap();
    terminal
        .draw(|frame| frame.render_widget(&app, frame.area()))
        .unwrap();
    let buf = terminal.backend().buffer().clone();
    (0..SIZE.1)
        .map(|y| {
            (0..SIZE.0)
                .map(|x| buf[(x, y)].symbol().to_string())
                .collect::<String>()
        })
        .collect::<Vec<_>>()
        .join("\n")
}

#[test]
fn a_netns_column_appears_with_more_than_one_namespace() {
    let one = screen(busy(), "");
    assert!(!one.contains("NETNS"), "{one}");

    let snap = two_namespaces();
    let total = snap.connections.len();
    let two = screen(snap, "");
    assert!(two.contains("NETNS"), "{two}");
    assert!(two.contains("ns:4026531840"), "{two}");
    assert!(
        two.contains("web docker:3f4e1b2c9d8a"),
        "the owner's container: {two}"
    );
    assert!(two.contains(&format!("{total} of {total}")), "{two}");
}

#[test]
fn the_netns_filter_term_keeps_one_namespace() {
    let snap = two_namespaces();
    let total = snap.connections.len();
    let web = screen(snap.clone(), "netns:web");
    assert!(web.contains(&format!("{} of {total}", total / 2)), "{web}");
    assert!(!web.contains("ns:4026531840"), "{web}");
    let host = screen(snap, "netns:4026531840");
    assert!(
        host.contains(&format!("{} of {total}", total.div_ceil(2))),
        "{host}"
    );
}
