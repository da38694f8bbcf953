//! Pure parsers for the bits of /proc/PID kwatch reads: fd link targets, comm, cmdline, the status Uid line.

/// The inode of an fd link target `socket:[INODE]`; `None` for every other target (`pipe:[5]`, `/dev/null`, ...)
/// and for a number past 32 bits: the kernel numbers socket inodes with an `unsigned int` (`get_next_ino`) and
/// dumps them as one (`idiag_inode`), so no socket of any dump has a wider one.
pub fn socket_inode(target: &[u8]) -> Option<u32> {
    let digits = target.strip_prefix(b"socket:[")?.strip_suffix(b"]")?;
    if digits.is_empty() || digits.len() > 10 || !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    digits.iter().try_fold(0u32, |n, d| {
        n.checked_mul(10)?.checked_add(u32::from(d - b'0'))
    })
}

/// `/proc/PID/comm` content without its trailing newline, lossily decoded (control bytes are kept raw).
pub fn comm(content: &[u8]) -> String {
    let content = content.strip_suffix(b"\n").unwrap_or(content);
    String::from_utf8_lossy(content).into_owned()
}

/// `/proc/PID/cmdline` split on NUL, lossily decoded. Trailing NULs (the terminator, and the padding some
/// programs leave after rewriting their argv) are dropped; empty arguments inside the line are kept.
pub fn cmdline(content: &[u8]) -> Vec<String> {
    let end = content.iter().rposition(|b| *b != 0).map_or(0, |i| i + 1);
    if end == 0 {
        return Vec::new();
    }
    content[..end]
        .split(|b| *b == 0)
        .map(|arg| String::from_utf8_lossy(arg).into_owned())
        .collect()
}

/// PF_KTHREAD in the task flags (include/linux/sched.h).
const PF_KTHREAD: u64 = 0x0020_0000;

/// Whether `/proc/PID/stat` describes a kernel thread (PF_KTHREAD in `flags`, its ninth field); `None` when the
/// content does not parse. The name (second field) is in parentheses and may hold spaces and `)`, so the fields
/// are counted after the last `)`.
pub fn stat_is_kernel_thread(content: &[u8]) -> Option<bool> {
    let close = content.iter().rposition(|b| *b == b')')?;
    // After the name: state, ppid, pgrp, session, tty_nr, tpgid, flags.
    let flags = content[close + 1..]
        .split(u8::is_ascii_whitespace)
        .filter(|f| !f.is_empty())
        .nth(6)?;
    let flags: u64 = std::str::from_utf8(flags).ok()?.parse().ok()?;
    Some(flags & PF_KTHREAD != 0)
}

/// The real uid: the first number of the `Uid:` line of `/proc/PID/status`.
pub fn status_uid(content: &[u8]) -> Option<u32> {
    content
        .split(|b| *b == b'\n')
        .find_map(|line| line.strip_prefix(b"Uid:"))
        .and_then(|rest| {
            rest.split(u8::is_ascii_whitespace)
                .find(|field| !field.is_empty())
        })
        .and_then(|field| std::str::from_utf8(field).ok()?.parse().ok())
}

/// The parent pid: the second field after the command of `/proc/PID/stat` (`PID (COMM) STATE PPID ...`). The
/// command may hold spaces and parentheses of its own, so the fields are counted from the last `)`.
pub fn stat_ppid(content: &[u8]) -> Option<u32> {
    let close = content.iter().rposition(|b| *b == b')')?;
    let mut fields = content[close + 1..]
        .split(u8::is_ascii_whitespace)
        .filter(|f| !f.is_empty());
    let _state = fields.next()?;
    std::str::from_utf8(fields.next()?).ok()?.parse().ok()
}

/// `inuse` + `tw` of the `TCP:` line of `/proc/net/sockstat`
/// (`TCP: inuse 5 orphan 0 tw 2 alloc 9 mem 1`).
pub fn sockstat_tcp(content: &str) -> Option<u64> {
    let line = content.lines().find_map(|l| l.strip_prefix("TCP:"))?;
    let words: Vec<&str> = line.split_whitespace().collect();
    let value = |name: &str| -> Option<u64> {
        let at = words.iter().position(|w| *w == name)?;
        words.get(at + 1)?.parse().ok()
    };
    Some(value("inuse")? + value("tw").unwrap_or(0))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sockstat_counts_tcp_in_use_and_time_wait() {
        let text = "sockets: used 13\nTCP: inuse 1000001 orphan 0 tw 31 alloc 1000040 mem 200\nUDP: inuse 0 mem 0\n";
        assert_eq!(sockstat_tcp(text), Some(1_000_032));
        assert_eq!(sockstat_tcp("TCP: inuse 4 orphan 0\n"), Some(4));
        assert_eq!(sockstat_tcp("UDP: inuse 4\n"), None);
        assert_eq!(sockstat_tcp("TCP: inuse x tw 1\n"), None);
    }

    #[test]
    fn stat_ppid_counts_fields_after_the_last_parenthesis() {
        assert_eq!(stat_ppid(b"812 (nginx) S 811 811 811 0 -1"), Some(811));
        // A process may call itself anything, parentheses and spaces included.
        assert_eq!(stat_ppid(b"9 (a) b) S 1 (x) R 77 9 9 0"), Some(77));
        assert_eq!(stat_ppid(b"1 (init) S 0 1 1"), Some(0));
        assert_eq!(stat_ppid(b"garbage"), None);
        assert_eq!(stat_ppid(b"5 (x) S"), None);
    }

    #[test]
    fn socket_inode_accepts_only_socket_links() {
        assert_eq!(socket_inode(b"socket:[1234]"), Some(1234));
        assert_eq!(socket_inode(b"socket:[0]"), Some(0));
        assert_eq!(socket_inode(b"socket:[4294967295]"), Some(u32::MAX));
        assert_eq!(socket_inode(b"socket:[4294967296]"), None);
        assert_eq!(socket_inode(b"socket:[18446744073709551615]"), None);
        assert_eq!(socket_inode(b"socket:[]"), None);
        assert_eq!(socket_inode(b"socket:[12a]"), None);
        assert_eq!(socket_inode(b"socket:[+12]"), None);
        assert_eq!(socket_inode(b"socket:[12"), None);
        assert_eq!(socket_inode(b"pipe:[5]"), None);
        assert_eq!(socket_inode(b"/dev/null"), None);
        assert_eq!(socket_inode(b"/tmp/socket:[7]"), None);
        assert_eq!(socket_inode(b"anon_inode:[eventpoll]"), None);
    }

    #[test]
    fn comm_drops_only_the_newline_and_keeps_control_bytes() {
        assert_eq!(comm(b"nginx\n"), "nginx");
        assert_eq!(comm(b"nginx"), "nginx");
        assert_eq!(comm(b"a\x1b]0;x\x07\n"), "a\x1b]0;x\x07");
        assert_eq!(comm(b"bad\xffname\n"), "bad\u{fffd}name");
        assert_eq!(comm(b"two\n\n"), "two\n");
    }

    #[test]
    fn cmdline_splits_on_nul() {
        assert_eq!(
            cmdline(b"/usr/bin/python3\0-m\0http.server\0"),
            ["/usr/bin/python3", "-m", "http.server"]
        );
        assert_eq!(cmdline(b"prog\0\0last\0"), ["prog", "", "last"]);
        assert_eq!(
            cmdline(b"nginx: worker process\0\0\0\0"),
            ["nginx: worker process"]
        );
        assert_eq!(cmdline(b"no-terminator"), ["no-terminator"]);
        assert_eq!(cmdline(b"x\xff\0"), ["x\u{fffd}"]);
        assert!(cmdline(b"").is_empty());
        assert!(cmdline(b"\0\0").is_empty());
    }

    #[test]
    fn status_uid_reads_the_real_uid() {
        let status = b"Name:\tsshd\nUmask:\t0022\nState:\tS (sleeping)\nUid:\t1000\t0\t0\t0\nGid:\t5\t5\t5\t5\n";
        assert_eq!(status_uid(status), Some(1000));
        assert_eq!(status_uid(b"Uid: 7 8 9 10"), Some(7));
        assert_eq!(status_uid(b"Name:\tx\nGid:\t1\t1\t1\t1\n"), None);
        assert_eq!(status_uid(b"Uid:\t\n"), None);
        assert_eq!(status_uid(b"Uid:\tabc\t0\n"), None);
        assert_eq!(status_uid(b"Name:\tUid: 5\n"), None);
    }

    #[test]
    fn kernel_threads_are_told_by_pf_kthread() {
        // Real lines: kthreadd (flags 0x208040), a kworker, and a user process (flags 0x400100).
        let kthreadd = b"2 (kthreadd) S 0 0 0 0 -1 2129984 0 0 0 0 0 0 0 0 20 0 1 0 3 0 0";
        let kworker = b"7 (kworker/0:0H-events_highpri) I 2 0 0 0 -1 69238880 0 0 0 0";
        let user = b"812 (my (odd) name) S 1 812 812 0 -1 4194560 120 0 0 0 1 2 0 0 20";
        assert_eq!(stat_is_kernel_thread(kthreadd), Some(true));
        assert_eq!(stat_is_kernel_thread(kworker), Some(true));
        assert_eq!(stat_is_kernel_thread(user), Some(false));
        assert_eq!(stat_is_kernel_thread(b"9 (short) S 1 2"), None);
        assert_eq!(stat_is_kernel_thread(b"no parenthesis"), None);
        assert_eq!(
            stat_is_kernel_thread(b"9 (x) S 1 1 1 0 -1 notanumber"),
            None
        );
    }
}
