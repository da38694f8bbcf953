//! Reads the network namespace's TCP settings (keepalive, retries, fin timeout) from /proc/sys/net/ipv4.

use std::path::Path;

use crate::model::Settings;

/// Reads the settings under `proc_root/sys/net/ipv4`. A value that cannot be read or parsed is `None`.
pub fn read_settings(proc_root: &Path) -> Settings {
    let dir = proc_root.join("sys/net/ipv4");
    let read = |name: &str| {
        std::fs::read_to_string(dir.join(name))
            .ok()
            .and_then(|s| parse_value(&s))
    };
    Settings {
        tcp_keepalive_time_s: read("tcp_keepalive_time"),
        tcp_keepalive_intvl_s: read("tcp_keepalive_intvl"),
        tcp_keepalive_probes: read("tcp_keepalive_probes"),
        tcp_retries2: read("tcp_retries2"),
        tcp_fin_timeout_s: read("tcp_fin_timeout"),
    }
}

/// Parses one sysctl file's content: a decimal number and a newline.
pub fn parse_value(content: &str) -> Option<u32> {
    content.trim().parse().ok()
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn parses_numbers_and_rejects_garbage() {
        assert_eq!(parse_value("7200\n"), Some(7200));
        assert_eq!(parse_value(" 75 "), Some(75));
        assert_eq!(parse_value(""), None);
        assert_eq!(parse_value("-1\n"), None);
        assert_eq!(parse_value("abc"), None);
    }

    #[test]
    fn reads_a_fake_tree_and_leaves_missing_values_absent() {
        let root = tempfile::tempdir().unwrap();
        let dir = root.path().join("sys/net/ipv4");
        std::fs::create_dir_all(&dir).unwrap();
        for (name, value) in [
            ("tcp_keepalive_time", "7200\n"),
            ("tcp_keepalive_intvl", "75\n"),
            ("tcp_keepalive_probes", "9\n"),
        ] {
            std::fs::write(dir.join(name), value).unwrap();
        }
        let s = read_settings(root.path());
        assert_eq!(s.tcp_keepalive_time_s, Some(7200));
        assert_eq!(s.tcp_keepalive_intvl_s, Some(75));
        assert_eq!(s.tcp_keepalive_probes, Some(9));
        assert_eq!(s.tcp_retries2, None);
        assert!(s.keepalive_is_default());
    }

    #[test]
    fn reads_this_machine() {
        let s = read_settings(Path::new("/proc"));
        assert!(
            s.tcp_keepalive_time_s.is_some(),
            "tcp_keepalive_time should be readable on Linux"
        );
        assert!(s.tcp_retries2.is_some());
    }
}
