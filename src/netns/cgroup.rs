//! Pure parser: which container, Kubernetes pod or systemd service a process belongs to, told from the paths
//! in its `/proc/PID/cgroup`.
//!
//! Container runtimes and systemd name cgroups by convention, not by contract; what is recognized:
//!
//! | path (last segments) | unit |
//! |---|---|
//! | `docker-<id>.scope`, `/docker/<id>` | docker |
//! | `cri-containerd-<id>.scope`, `nerdctl-<id>.scope` | containerd |
//! | `crio-<id>.scope` | cri-o |
//! | `libpod-<id>.scope` | podman |
//! | `<id>` (64 hex) under a pod | the pod's container, runtime not told |
//! | `kubepods-…-pod<uid>.slice`, `/kubepods/…/pod<uid>` | adds the Kubernetes pod uid |
//! | `<name>.service` (the deepest one) | systemd service |
//!
//! A container beats a service (the path of a container started by a service's daemon names both), and a
//! cgroup v2 line (`0::`) beats the v1 hierarchies when both name something.

use crate::model::{Unit, UnitKind};

/// Parses the content of `/proc/PID/cgroup`. `None` when no line names a container or a service.
pub fn parse(content: &str) -> Option<Unit> {
    let mut best: Option<((bool, bool), Unit)> = None;
    for line in content.lines() {
        // hierarchy-id:controllers:path; the path may itself contain ':'.
        let mut parts = line.splitn(3, ':');
        let (Some(id), Some(_controllers), Some(path)) = (parts.next(), parts.next(), parts.next())
        else {
            continue;
        };
        let Some(unit) = parse_path(path) else {
            continue;
        };
        let rank = (unit.kind != UnitKind::Systemd, id == "0");
        if best.as_ref().is_none_or(|(r, _)| rank > *r) {
            best = Some((rank, unit));
        }
    }
    best.map(|(_, unit)| unit)
}

/// Parses one cgroup path such as `/kubepods.slice/…/cri-containerd-<id>.scope`.
pub fn parse_path(path: &str) -> Option<Unit> {
    let segments: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
    let pod = segments.iter().rev().find_map(|s| pod_uid(s));
    let in_pods = segments.iter().any(|s| s.starts_with("kubepods"));
    for (i, seg) in segments.iter().enumerate().rev() {
        let parent = i.checked_sub(1).and_then(|p| segments.get(p)).copied();
        if let Some((kind, id)) = container(seg, parent, in_pods) {
            return Some(Unit {
                kind,
                id: id.to_string(),
                pod,
            });
        }
    }
    if let Some(pod) = pod {
        // A pod's own cgroup (its processes are in containers below it): the pod without a container.
        return Some(Unit {
            kind: UnitKind::Container,
            id: String::new(),
            pod: Some(pod),
        });
    }
    let service = segments.iter().rev().find(|s| {
        s.strip_suffix(".service")
            .is_some_and(|name| !name.is_empty())
    })?;
    Some(Unit {
        kind: UnitKind::Systemd,
        id: (*service).to_string(),
        pod: None,
    })
}

/// A container segment: its runtime and id.
fn container<'a>(seg: &'a str, parent: Option<&str>, in_pods: bool) -> Option<(UnitKind, &'a str)> {
    if let Some(stem) = seg.strip_suffix(".scope") {
        for (prefix, kind) in [
            ("docker-", UnitKind::Docker),
            ("cri-containerd-", UnitKind::Containerd),
            ("nerdctl-", UnitKind::Containerd),
            ("crio-", UnitKind::Crio),
            ("libpod-", UnitKind::Podman),
        ] {
            if let Some(id) = stem.strip_prefix(prefix).filter(|id| is_container_id(id)) {
                return Some((kind, id));
            }
        }
        return None;
    }
    if seg.len() == 64 && is_container_id(seg) {
        if parent == Some("docker") {
            return Some((UnitKind::Docker, seg));
        }
        if in_pods {
            return Some((UnitKind::Container, seg));
        }
    }
    None
}

/// Container ids are lowercase hex, 64 digits (docker, containerd, cri-o, podman); shorter ones are accepted
/// from 12 digits up because some tools shorten them. `conmon-<id>` (podman's monitor) is not a container.
fn is_container_id(s: &str) -> bool {
    (12..=64).contains(&s.len())
        && s.bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

/// The pod uid of a pod cgroup: `kubepods-besteffort-pod<uid_with_underscores>.slice` (systemd driver) or
/// `pod<uid>` (cgroupfs driver), always written with dashes.
fn pod_uid(seg: &str) -> Option<String> {
    let uid = match seg.strip_suffix(".slice") {
        Some(slice) if slice.starts_with("kubepods") => slice.rsplit_once("-pod")?.1,
        Some(_) => return None,
        None => seg.strip_prefix("pod")?,
    };
    let uid = uid.replace('_', "-");
    let valid = uid.len() >= 32 && uid.bytes().all(|b| b.is_ascii_hexdigit() || b == b'-');
    valid.then_some(uid)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    const ID: &str = "3f4e1b2c9d8a7b6c5d4e3f2a1b0c9d8e7f6a5b4c3d2e1f0a9b8c7d6e5f4a3b2c";
    const POD: &str = "8a1b2c3d-4e5f-4a6b-8c7d-9e0f1a2b3c4d";

    // Builds the Some arm of the cases table, whose expectations are Option<Unit>.
    #[allow(clippy::unnecessary_wraps)]
    fn unit(kind: UnitKind, id: &str, pod: Option<&str>) -> Option<Unit> {
        Some(Unit {
            kind,
            id: id.to_string(),
            pod: pod.map(str::to_string),
        })
    }

    #[test]
    fn paths_of_each_runtime_and_driver() {
        let pod_us = POD.replace('-', "_");
        let cases: Vec<(String, Option<Unit>)> = vec![
            // docker, systemd driver (cgroup v2) and cgroupfs driver (v1 and v2).
            (
                format!("/system.slice/docker-{ID}.scope"),
                unit(UnitKind::Docker, ID, None),
            ),
            (format!("/docker/{ID}"), unit(UnitKind::Docker, ID, None)),
            // Processes in a container's own sub-cgroup (systemd inside the container).
            (
                format!("/system.slice/docker-{ID}.scope/init.scope"),
                unit(UnitKind::Docker, ID, None),
            ),
            // Kubernetes with containerd, systemd driver.
            (
                format!(
                    "/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod{pod_us}.slice/cri-containerd-{ID}.scope"
                ),
                unit(UnitKind::Containerd, ID, Some(POD)),
            ),
            // Guaranteed QoS pods sit directly under kubepods.slice.
            (
                format!("/kubepods.slice/kubepods-pod{pod_us}.slice/crio-{ID}.scope"),
                unit(UnitKind::Crio, ID, Some(POD)),
            ),
            // Kubernetes, cgroupfs driver: the runtime is not in the path.
            (
                format!("/kubepods/besteffort/pod{POD}/{ID}"),
                unit(UnitKind::Container, ID, Some(POD)),
            ),
            // The pod's own cgroup.
            (
                format!(
                    "/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod{pod_us}.slice"
                ),
                unit(UnitKind::Container, "", Some(POD)),
            ),
            // containerd without Kubernetes (nerdctl), podman rootful and rootless.
            (
                format!("/system.slice/nerdctl-{ID}.scope"),
                unit(UnitKind::Containerd, ID, None),
            ),
            (
                format!("/machine.slice/libpod-{ID}.scope/container"),
                unit(UnitKind::Podman, ID, None),
            ),
            (
                format!(
                    "/user.slice/user-1000.slice/user@1000.service/user.slice/libpod-{ID}.scope"
                ),
                unit(UnitKind::Podman, ID, None),
            ),
            // podman's monitor is not the container; it runs in the user's service.
            (
                format!(
                    "/user.slice/user-1000.slice/user@1000.service/user.slice/libpod-conmon-{ID}.scope"
                ),
                unit(UnitKind::Systemd, "user@1000.service", None),
            ),
            // systemd services: system, templated, nested sub-cgroup, user service.
            (
                "/system.slice/nginx.service".into(),
                unit(UnitKind::Systemd, "nginx.service", None),
            ),
            (
                "/system.slice/system-getty.slice/getty@tty1.service".into(),
                unit(UnitKind::Systemd, "getty@tty1.service", None),
            ),
            (
                "/system.slice/containerd.service/sub".into(),
                unit(UnitKind::Systemd, "containerd.service", None),
            ),
            (
                "/user.slice/user-1000.slice/user@1000.service/app.slice/app-gnome-foo.service"
                    .into(),
                unit(UnitKind::Systemd, "app-gnome-foo.service", None),
            ),
            // Nothing to tell: root, a login session, a made-up hex directory outside pods.
            ("/".into(), None),
            ("/user.slice/user-1000.slice/session-3.scope".into(), None),
            (format!("/mygroup/{ID}"), None),
            ("/system.slice/docker-notanid.scope".into(), None),
            ("/system.slice/.service".into(), None),
        ];
        for (path, want) in cases {
            assert_eq!(parse_path(&path), want, "{path}");
        }
    }

    #[test]
    fn whole_files_prefer_containers_and_the_unified_line() {
        // cgroup v2 only.
        assert_eq!(
            parse(&format!("0::/system.slice/docker-{ID}.scope\n")),
            unit(UnitKind::Docker, ID, None)
        );
        // Hybrid v1 + v2: the v1 memory line names the container, name=systemd the same scope.
        let hybrid = format!(
            "12:memory:/docker/{ID}\n11:cpu,cpuacct:/docker/{ID}\n1:name=systemd:/system.slice/docker.service\n0::/system.slice/docker.service\n"
        );
        assert_eq!(parse(&hybrid), unit(UnitKind::Docker, ID, None));
        // A plain service in every hierarchy.
        let svc = "5:pids:/system.slice/sshd.service\n1:name=systemd:/system.slice/sshd.service\n0::/system.slice/sshd.service\n";
        assert_eq!(parse(svc), unit(UnitKind::Systemd, "sshd.service", None));
        // The v2 line wins between two services.
        let two = "5:pids:/system.slice/old.service\n0::/system.slice/new.service\n";
        assert_eq!(parse(two), unit(UnitKind::Systemd, "new.service", None));
        // A path containing ':' is kept whole.
        assert_eq!(
            parse("0::/system.slice/a:b.service\n"),
            unit(UnitKind::Systemd, "a:b.service", None)
        );
        assert_eq!(parse("0::/\n"), None);
        assert_eq!(parse(""), None);
        assert_eq!(parse("garbage\n"), None);
    }
}
