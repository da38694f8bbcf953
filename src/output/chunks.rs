//! Output rows turned into bytes on every core and written in order: the JSON document's socket rows and the
//! table's lines, which at 200,000 sockets are most of a one-shot run after the kernel dump and /proc.

use std::io::{self, Write};
use std::num::NonZeroUsize;

use crate::parallel;

/// Writes `items` in order: `render` turns `chunk` items at a time into bytes on every core
/// ([`parallel::map`]), a window of one chunk per core at a time, so that only a few chunks are in memory.
/// `between` is written between two chunks (a JSON array's comma). The first error, in order, is returned.
pub fn write<T: Sync>(
    w: &mut impl Write,
    items: &[T],
    chunk: usize,
    between: &[u8],
    render: impl Fn(&[T]) -> io::Result<Vec<u8>> + Sync,
) -> io::Result<()> {
    let chunk = chunk.max(1);
    let threads = std::thread::available_parallelism().map_or(1, NonZeroUsize::get);
    let mut first = true;
    for window in items.chunks(chunk * threads) {
        let chunks: Vec<(usize, &[T])> = window.chunks(chunk).enumerate().collect();
        let mut done = parallel::map(&chunks, |&(i, part)| (i, render(part)));
        done.sort_unstable_by_key(|(i, _)| *i);
        for (_, bytes) in done {
            if !first {
                w.write_all(between)?;
            }
            first = false;
            w.write_all(&bytes?)?;
        }
    }
    Ok(())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn chunks_are_written_in_order_with_the_separator_between() {
        for n in [0usize, 1, 7, 64, 1001] {
            let items: Vec<usize> = (0..n).collect();
            let mut out = Vec::new();
            write(&mut out, &items, 10, b"|", |part| {
                Ok(part
                    .iter()
                    .map(|i| i.to_string() + ";")
                    .collect::<String>()
                    .into_bytes())
            })
            .unwrap();
            let expected = items
                .chunks(10)
                .map(|c| c.iter().map(|i| i.to_string() + ";").collect::<String>())
                .collect::<Vec<_>>()
                .join("|");
            assert_eq!(String::from_utf8(out).unwrap(), expected);
        }
    }

    #[test]
    fn the_first_error_in_order_is_returned() {
        let items: Vec<usize> = (0..100).collect();
        let mut out = Vec::new();
        let e = write(&mut out, &items, 10, b"", |part| {
            if part[0] >= 30 {
                Err(io::Error::other(format!("chunk {}", part[0])))
            } else {
                Ok(vec![b'.'])
            }
        })
        .unwrap_err();
        assert_eq!(e.to_string(), "chunk 30");
        assert_eq!(out, b"...");
    }
}
