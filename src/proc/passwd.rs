//! User names by uid, parsed from a passwd file (`name:password:uid:gid:gecos:home:shell`).

use std::collections::HashMap;
use std::io::{self, BufRead};

/// uid → user name, from one read of a passwd file.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Users {
    names: HashMap<u32, String>,
}

impl Users {
    /// Parses a passwd file. Comments, blank, malformed and NIS (`+`/`-`) lines are skipped; when several lines
    /// share a uid the first one wins, as with `getpwuid`. Names are decoded lossily and kept raw.
    pub fn parse(reader: impl BufRead) -> io::Result<Users> {
        let mut names = HashMap::new();
        for line in reader.split(b'\n') {
            let line = line?;
            if let Some((uid, name)) = parse_line(&line) {
                names.entry(uid).or_insert(name);
            }
        }
        Ok(Users { names })
    }

    pub fn name(&self, uid: u32) -> Option<&str> {
        self.names.get(&uid).map(String::as_str)
    }

    pub fn len(&self) -> usize {
        self.names.len()
    }

    pub fn is_empty(&self) -> bool {
        self.names.is_empty()
    }
}

fn parse_line(line: &[u8]) -> Option<(u32, String)> {
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    if line.is_empty() || matches!(line[0], b'#' | b'+' | b'-') {
        return None;
    }
    let mut fields = line.split(|b| *b == b':');
    let name = fields.next().filter(|n| !n.is_empty())?;
    let _password = fields.next()?;
    let uid = std::str::from_utf8(fields.next()?).ok()?.parse().ok()?;
    Some((uid, String::from_utf8_lossy(name).into_owned()))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn parses_names_by_uid() {
        let passwd = b"root:x:0:0:root:/root:/bin/bash\n\
            # a comment\n\
            \n\
            daemon:x:1:1:daemon:/usr/sbin:/usr/sbin/nologin\n\
            toor:x:0:0:second root:/root:/bin/sh\n\
            +nisuser::::::\n\
            broken-line-without-fields\n\
            baduid:x:abc:1::/:/bin/sh\n\
            :x:5:5::/:/bin/sh\n\
            dos:x:42:42::/:/bin/sh\r\n\
            caf\xc3\xa9:x:1001:1001::/home/cafe:/bin/sh\n\
            weird\x1b:x:1002:1002::/:/bin/sh\n\
            nobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin";
        let users = Users::parse(&passwd[..]).unwrap();
        assert_eq!(users.name(0), Some("root"), "first entry for a uid wins");
        assert_eq!(users.name(1), Some("daemon"));
        assert_eq!(users.name(42), Some("dos"));
        assert_eq!(users.name(1001), Some("café"));
        assert_eq!(
            users.name(1002),
            Some("weird\x1b"),
            "kept raw, escaped at display"
        );
        assert_eq!(
            users.name(65534),
            Some("nobody"),
            "last line without newline"
        );
        assert_eq!(users.name(5), None, "empty name skipped");
        assert_eq!(users.name(7), None);
        assert_eq!(users.len(), 6);
    }

    #[test]
    fn empty_input_gives_no_users() {
        let users = Users::parse(&b""[..]).unwrap();
        assert!(users.is_empty());
    }

    #[test]
    fn read_errors_are_reported() {
        struct Failing;
        impl io::Read for Failing {
            fn read(&mut self, _: &mut [u8]) -> io::Result<usize> {
                Err(io::Error::other("disk on fire"))
            }
        }
        let err = Users::parse(io::BufReader::new(Failing)).unwrap_err();
        assert_eq!(err.to_string(), "disk on fire");
    }
}
