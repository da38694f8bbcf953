//! Makes untrusted strings (process names, command lines) safe to put on a terminal.
//!
//! A process chooses its own `comm` and `cmdline`, so it can name itself `\x1b]0;pwned\x07` and retitle, recolour
//! or scramble the terminal of whoever looks at it. [`escape`] turns every control character into a visible,
//! unambiguous escape: C0 controls and DEL become `\n`, `\t`, `\r` or `\xNN`, C1 controls (U+0080-U+009F, which
//! some terminals treat like ESC-sequences) become `\u{NN}`, and a literal backslash becomes `\\` so that a name
//! that really contains the text `\x1b` cannot pass for one that contains ESC. Bidirectional formatting characters
//! (U+061C, U+200E, U+200F, U+202A-U+202E, U+2066-U+2069) are not controls to Rust but reorder the text after them
//! on screen, so `evil\u{202e}gpj.exe` could pass for another name and shift the columns it shares a line with:
//! they become `\u{202e}` too. Everything else, including U+FFFD from lossy UTF-8 decoding and all non-ASCII
//! letters, is left untouched.

use std::borrow::Cow;
use std::fmt::Write as _;

/// True for characters [`escape`] rewrites.
fn needs_escape(c: char) -> bool {
    c == '\\' || c.is_control() || is_bidi_control(c)
}

/// The Unicode bidirectional formatting characters: marks (ALM, LRM, RLM), embeddings and overrides
/// (LRE, RLE, PDF, LRO, RLO) and isolates (LRI, RLI, FSI, PDI).
pub fn is_bidi_control(c: char) -> bool {
    matches!(c, '\u{061c}' | '\u{200e}' | '\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
}

/// Returns `s` with control characters and backslashes made visible; borrowed when nothing needed escaping.
pub fn escape(s: &str) -> Cow<'_, str> {
    let Some(first) = s.find(needs_escape) else {
        return Cow::Borrowed(s);
    };
    let mut out = String::with_capacity(s.len() + 8);
    out.push_str(&s[..first]);
    for c in s[first..].chars() {
        push_escaped(&mut out, c);
    }
    Cow::Owned(out)
}

fn push_escaped(out: &mut String, c: char) {
    match c {
        '\\' => out.push_str("\\\\"),
        '\n' => out.push_str("\\n"),
        '\t' => out.push_str("\\t"),
        '\r' => out.push_str("\\r"),
        // C0 controls and DEL: one byte, shown as a hex byte escape.
        '\0'..='\x1f' | '\x7f' => {
            // Writing to a String cannot fail.
            let _ = write!(out, "\\x{:02x}", c as u32);
        }
        // C1 controls (U+0080-U+009F) and bidi controls: code points, not bytes, so Rust's `\u{..}` notation.
        c if c.is_control() || is_bidi_control(c) => {
            let _ = write!(out, "\\u{{{:x}}}", c as u32);
        }
        c => out.push(c),
    }
}

/// A command line for display: each argument escaped, joined with single spaces.
pub fn escape_cmdline(args: &[String]) -> String {
    let mut out = String::new();
    for (i, arg) in args.iter().enumerate() {
        if i > 0 {
            out.push(' ');
        }
        out.push_str(&escape(arg));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_text_is_borrowed_unchanged() {
        for s in [
            "",
            "nginx",
            "java",
            "kworker/0:1-events",
            "Ünïcødé ✓ 名前",
            "a b\u{a0}c",
        ] {
            let out = escape(s);
            assert!(matches!(out, Cow::Borrowed(_)), "{s:?} was copied");
            assert_eq!(out, s);
        }
    }

    #[test]
    fn osc_title_sequence_becomes_visible() {
        let out = escape("\u{1b}]0;pwned\u{7}");
        assert_eq!(out, "\\x1b]0;pwned\\x07");
        assert!(!out.chars().any(char::is_control));
    }

    #[test]
    fn c0_del_and_c1_controls_are_escaped() {
        let cases = [
            ("a\nb", "a\\nb"),
            ("a\tb", "a\\tb"),
            ("a\rb", "a\\rb"),
            ("\0", "\\x00"),
            ("\u{1f}", "\\x1f"),
            ("\u{7f}", "\\x7f"),
            ("\u{80}", "\\u{80}"),
            ("x\u{9b}31m", "x\\u{9b}31m"),
            ("\u{9f}", "\\u{9f}"),
        ];
        for (input, want) in cases {
            assert_eq!(escape(input), want, "input {input:?}");
        }
    }

    #[test]
    fn bidirectional_controls_are_escaped() {
        let cases = [
            ("evil\u{202e}gpj.exe", "evil\\u{202e}gpj.exe"),
            (
                "\u{202a}\u{202b}\u{202c}\u{202d}",
                "\\u{202a}\\u{202b}\\u{202c}\\u{202d}",
            ),
            (
                "\u{2066}a\u{2067}b\u{2068}c\u{2069}",
                "\\u{2066}a\\u{2067}b\\u{2068}c\\u{2069}",
            ),
            ("\u{200e}\u{200f}\u{061c}", "\\u{200e}\\u{200f}\\u{61c}"),
        ];
        for (input, want) in cases {
            assert_eq!(escape(input), want, "input {input:?}");
        }
        // Their neighbours are ordinary text: zero-width joiner, em dash, U+2070 superscript zero, Arabic letters.
        let near = "\u{200d}\u{2014}\u{2070}\u{061b}\u{0627}";
        assert!(matches!(escape(near), Cow::Borrowed(_)));
    }

    #[test]
    fn characters_next_to_the_control_ranges_are_kept() {
        // Space, '~', U+00A0 (no-break space) and U+00FF are printable.
        let s = " ~\u{a0}\u{ff}";
        assert!(matches!(escape(s), Cow::Borrowed(_)));
    }

    #[test]
    fn backslash_is_doubled_so_escapes_are_unambiguous() {
        assert_eq!(escape("a\\b"), "a\\\\b");
        // A name containing the four characters `\x1b` differs from one containing ESC.
        assert_ne!(escape("\\x1b"), escape("\u{1b}"));
        assert_eq!(escape("\\x1b"), "\\\\x1b");
    }

    #[test]
    fn replacement_character_from_invalid_utf8_is_kept() {
        let lossy = String::from_utf8_lossy(b"bad\xff\xfename\x1b");
        assert_eq!(escape(&lossy), "bad\u{fffd}\u{fffd}name\\x1b");
        let clean = String::from_utf8_lossy(b"bad\xffname");
        assert!(matches!(escape(&clean), Cow::Borrowed(_)));
    }

    #[test]
    fn escaped_output_has_no_control_characters() {
        let all: String = (0u32..0x200).filter_map(char::from_u32).collect();
        let out = escape(&all);
        assert!(!out.chars().any(char::is_control));
    }

    #[test]
    fn cmdline_joins_escaped_arguments_with_spaces() {
        let args = [
            "./evil".to_string(),
            "--banner".to_string(),
            "line one\nline two".to_string(),
        ];
        assert_eq!(escape_cmdline(&args), "./evil --banner line one\\nline two");
        assert_eq!(escape_cmdline(&[]), "");
        assert_eq!(escape_cmdline(&["\u{1b}[2J".to_string()]), "\\x1b[2J");
    }
}
