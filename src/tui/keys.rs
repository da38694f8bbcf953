//! The key maps: pure functions from (mode, key) to an action, and in a replay from a key to a move through
//! recorded time; and the key table that the help overlay, the footer hints and README's key table are checked
//! against or drawn from.

use crossterm::event::{KeyCode, KeyEvent, KeyEventKind, KeyModifiers};

use crate::tui::app::{Action, Mode, View};
use crate::tui::replay::{Go, HOUR_MS, MINUTE_MS, ReplayKey};

/// Maps one key to an action in `mode`. Only presses count (not repeats' releases on terminals that report them).
pub fn map_key(mode: Mode, key: KeyEvent) -> Option<Action> {
    if key.kind != KeyEventKind::Press {
        return None;
    }
    let ctrl = key.modifiers.contains(KeyModifiers::CONTROL);
    if ctrl && matches!(key.code, KeyCode::Char('c' | 'C')) {
        return Some(Action::Quit);
    }
    match mode {
        Mode::Help => match key.code {
            KeyCode::Esc | KeyCode::Enter | KeyCode::Char('?' | 'q' | 'h') | KeyCode::F(1) => {
                Some(Action::ToggleHelp)
            }
            _ => None,
        },
        Mode::Filter => match key.code {
            KeyCode::Esc => Some(Action::FilterCancel),
            KeyCode::Enter => Some(Action::FilterApply),
            KeyCode::Backspace => Some(Action::FilterBackspace),
            KeyCode::Char('u') if ctrl => Some(Action::FilterClearLine),
            KeyCode::Char(c) if !ctrl => Some(Action::FilterChar(c)),
            _ => None,
        },
        // Only y says yes; any other key is a no, so a stray key never kills.
        Mode::Confirm => Some(match key.code {
            KeyCode::Char('y' | 'Y') if !ctrl => Action::ConfirmYes,
            _ => Action::ConfirmNo,
        }),
        Mode::Browse | Mode::Detail => browse(key.code, ctrl),
    }
}

fn browse(code: KeyCode, ctrl: bool) -> Option<Action> {
    if ctrl {
        return match code {
            KeyCode::Char('b') => Some(Action::PageUp),
            KeyCode::Char('f') => Some(Action::PageDown),
            _ => None,
        };
    }
    Some(match code {
        KeyCode::Up | KeyCode::Char('k') => Action::Up,
        KeyCode::Down | KeyCode::Char('j') => Action::Down,
        KeyCode::PageUp => Action::PageUp,
        KeyCode::PageDown => Action::PageDown,
        KeyCode::Home | KeyCode::Char('g') => Action::Home,
        KeyCode::End | KeyCode::Char('G') => Action::End,
        KeyCode::Char('/') => Action::FilterOpen,
        KeyCode::Char('s') => Action::SortNext,
        KeyCode::Char('S') => Action::SortReverse,
        KeyCode::Tab | KeyCode::BackTab => Action::SwitchView,
        KeyCode::Enter => Action::Enter,
        KeyCode::Esc => Action::Back,
        KeyCode::Char(' ') => Action::TogglePause,
        KeyCode::Char('L') => Action::ToggleLog,
        KeyCode::Char('K') => Action::Kill,
        KeyCode::Char('E') => Action::EnableKeepalive,
        KeyCode::Char('?' | 'h') | KeyCode::F(1) => Action::ToggleHelp,
        KeyCode::Char('q') => Action::Quit,
        _ => return None,
    })
}

/// Maps a key in a replay, before [`map_key`] is asked: every key while the time prompt is open, the replay keys while browsing
/// (`browsing`: no filter prompt, help or confirmation open). `None`: the live view's key map decides.
pub fn map_replay_key(prompt_open: bool, browsing: bool, key: KeyEvent) -> Option<ReplayKey> {
    if key.kind != KeyEventKind::Press {
        return None;
    }
    let ctrl = key.modifiers.contains(KeyModifiers::CONTROL);
    if prompt_open {
        return match key.code {
            KeyCode::Char('c') if ctrl => None,
            KeyCode::Enter => Some(ReplayKey::PromptApply),
            KeyCode::Backspace => Some(ReplayKey::PromptBackspace),
            KeyCode::Char(c) if !ctrl => Some(ReplayKey::PromptChar(c)),
            _ => Some(ReplayKey::PromptCancel), // Esc, and any other key
        };
    }
    if !browsing || ctrl {
        return None;
    }
    Some(match key.code {
        KeyCode::Left | KeyCode::Char(',') => ReplayKey::Go(Go::Prev),
        KeyCode::Right | KeyCode::Char('.') => ReplayKey::Go(Go::Next),
        KeyCode::Char('[') => ReplayKey::Go(Go::By(-MINUTE_MS)),
        KeyCode::Char(']') => ReplayKey::Go(Go::By(MINUTE_MS)),
        KeyCode::Char('{') => ReplayKey::Go(Go::By(-HOUR_MS)),
        KeyCode::Char('}') => ReplayKey::Go(Go::By(HOUR_MS)),
        KeyCode::Char('t') => ReplayKey::OpenPrompt,
        KeyCode::Char(' ') => ReplayKey::TogglePlay,
        _ => return None,
    })
}

/// One line of the key table: the keys as the help overlay and README name them, what they do, and how the
/// footer names them (empty: not in the footer).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Key {
    pub keys: &'static str,
    pub what: &'static str,
    pub hint: &'static str,
}

const fn key(keys: &'static str, what: &'static str, hint: &'static str) -> Key {
    Key { keys, what, hint }
}

impl Key {
    /// The key's line in the help overlay: (keys, what they do).
    const fn line(self) -> (&'static str, &'static str) {
        (self.keys, self.what)
    }
}

pub const MOVE: Key = key("Up/k  Down/j", "move the cursor", "↑↓");
pub const PAGE: Key = key("PgUp  PgDn", "a page up / down (also Ctrl-B / Ctrl-F)", "");
pub const HOME_END: Key = key("Home/g  End/G", "first / last row", "");
pub const WHEEL: Key = key("mouse wheel", "scroll", "");
pub const SWITCH: Key = key("Tab", "switch connections / processes", "Tab");
pub const ENTER: Key = key(
    "Enter",
    "connection: details; process: its connections",
    "Enter",
);
pub const BACK: Key = key(
    "Esc",
    "close details, leave a process, clear the filter",
    "Esc",
);
pub const FILTER: Key = key("/", "filter: port:443 state:close-wait pid:1234 stuck", "/");
pub const SORT: Key = key("s  S", "next sort column / reverse the sort", "s");
pub const PAUSE: Key = key(
    "space",
    "pause / resume refreshing (replay: play / pause)",
    "Space",
);
pub const ACT: Key = key(
    "K  E",
    "kill · keepalive on 60/10/5 (row or process; asks y/N)",
    "",
);
pub const LOG: Key = key("L", "event log: deaths, state changes, held dead fds", "L");
pub const REPLAY_STEP: Key = key(
    "Left/,  Right/.",
    "replay: previous / next recorded refresh",
    "←→",
);
pub const REPLAY_JUMP: Key = key(
    "[  ]   {  }",
    "replay: a minute / an hour back and forward",
    "[]{}",
);
pub const REPLAY_TIME: Key = key(
    "t",
    "replay: go to a time: 03:12, 2026-12-05 03:12:30, -2h",
    "t",
);
pub const HELP_KEYS: Key = key("? h F1", "this help", "?");
pub const QUIT: Key = key("q  Ctrl-C", "quit", "q");

/// The help overlay's lines, in order: every key of the table, and the filter's syntax and prompt keys.
pub const HELP: &[(&str, &str)] = &[
    MOVE.line(),
    PAGE.line(),
    HOME_END.line(),
    WHEEL.line(),
    SWITCH.line(),
    ENTER.line(),
    BACK.line(),
    FILTER.line(),
    (
        "",
        "also sport: dport: code: netns: comm:NAME or NAME, 4, 6",
    ),
    (
        "",
        "a name is exact (case too); comm:php* globs with * and ?",
    ),
    ("", "port:80,443 means either; terms combine with AND"),
    (
        "  in the prompt",
        "Enter apply (empty clears) · Esc cancel · Ctrl-U clear",
    ),
    SORT.line(),
    PAUSE.line(),
    ACT.line(),
    LOG.line(),
    REPLAY_STEP.line(),
    REPLAY_JUMP.line(),
    REPLAY_TIME.line(),
    HELP_KEYS.line(),
    QUIT.line(),
];

/// Every key of the table, each once.
pub const TABLE: &[Key] = &[
    MOVE,
    PAGE,
    HOME_END,
    WHEEL,
    SWITCH,
    ENTER,
    BACK,
    FILTER,
    SORT,
    PAUSE,
    ACT,
    LOG,
    REPLAY_STEP,
    REPLAY_JUMP,
    REPLAY_TIME,
    HELP_KEYS,
    QUIT,
];

/// One footer hint: keys of the table (shown by their hints, joined with `/`) and what they do here.
pub type Hint = (&'static [Key], &'static str);

/// The footer hints for `mode` in `view` (`drilled`: the connections of one process).
pub fn footer_hints(mode: Mode, view: View, drilled: bool) -> &'static [Hint] {
    match (mode, view) {
        (_, View::Log) => &[
            (&[HELP_KEYS], "Help"),
            (&[MOVE], "Scroll"),
            (&[LOG, BACK], "Back"),
            (&[PAUSE], "Pause"),
            (&[QUIT], "Quit"),
        ],
        (Mode::Detail, _) => &[
            (&[BACK], "Back"),
            (&[MOVE], "Prev/next"),
            (&[SWITCH], "Processes"),
            (&[HELP_KEYS], "Help"),
            (&[QUIT], "Quit"),
        ],
        (_, View::Connections) if drilled => &[
            (&[HELP_KEYS], "Help"),
            (&[FILTER], "Filter"),
            (&[SORT], "Sort"),
            (&[ENTER], "Details"),
            (&[BACK], "Processes"),
            (&[PAUSE], "Pause"),
            (&[QUIT], "Quit"),
        ],
        (_, View::Connections) => &[
            (&[HELP_KEYS], "Help"),
            (&[FILTER], "Filter"),
            (&[SORT], "Sort"),
            (&[SWITCH], "Processes"),
            (&[ENTER], "Details"),
            (&[PAUSE], "Pause"),
            (&[QUIT], "Quit"),
        ],
        (_, View::Processes) => &[
            (&[HELP_KEYS], "Help"),
            (&[FILTER], "Filter"),
            (&[SORT], "Sort"),
            (&[SWITCH], "Connections"),
            (&[ENTER], "Its sockets"),
            (&[PAUSE], "Pause"),
            (&[QUIT], "Quit"),
        ],
    }
}

/// The footer hints of a replay while browsing (`playing`: space pauses).
pub fn replay_hints(playing: bool) -> &'static [Hint] {
    const fn hints(space: &'static str) -> [Hint; 7] {
        [
            (&[HELP_KEYS], "Help"),
            (&[REPLAY_STEP], "Refresh"),
            (&[REPLAY_JUMP], "Minute/Hour"),
            (&[REPLAY_TIME], "Time"),
            (&[PAUSE], space),
            (&[FILTER], "Filter"),
            (&[QUIT], "Quit"),
        ]
    }
    const PLAYING: [Hint; 7] = hints("Pause");
    const PAUSED: [Hint; 7] = hints("Play");
    if playing { &PLAYING } else { &PAUSED }
}

/// A hint's keys as the footer shows them: `?`, `L/Esc`.
pub fn hint_keys(keys: &[Key]) -> String {
    keys.iter().map(|k| k.hint).collect::<Vec<_>>().join("/")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crossterm::event::KeyEventState;

    fn press(code: KeyCode) -> KeyEvent {
        KeyEvent::new(code, KeyModifiers::NONE)
    }

    fn ctrl(c: char) -> KeyEvent {
        KeyEvent::new(KeyCode::Char(c), KeyModifiers::CONTROL)
    }

    #[test]
    fn key_map_table() {
        use KeyCode::*;
        let shift_g = KeyEvent::new(Char('G'), KeyModifiers::SHIFT);
        let cases: Vec<(Mode, KeyEvent, Option<Action>)> = vec![
            (Mode::Browse, press(Up), Some(Action::Up)),
            (Mode::Browse, press(Char('k')), Some(Action::Up)),
            (Mode::Browse, press(Down), Some(Action::Down)),
            (Mode::Browse, press(Char('j')), Some(Action::Down)),
            (Mode::Browse, press(PageUp), Some(Action::PageUp)),
            (Mode::Browse, press(PageDown), Some(Action::PageDown)),
            (Mode::Browse, ctrl('b'), Some(Action::PageUp)),
            (Mode::Browse, ctrl('f'), Some(Action::PageDown)),
            (Mode::Browse, press(Home), Some(Action::Home)),
            (Mode::Browse, press(Char('g')), Some(Action::Home)),
            (Mode::Browse, press(End), Some(Action::End)),
            (Mode::Browse, shift_g, Some(Action::End)),
            (Mode::Browse, press(Char('/')), Some(Action::FilterOpen)),
            (Mode::Browse, press(Char('s')), Some(Action::SortNext)),
            (Mode::Browse, press(Char('S')), Some(Action::SortReverse)),
            (Mode::Browse, press(Tab), Some(Action::SwitchView)),
            (Mode::Browse, press(BackTab), Some(Action::SwitchView)),
            (Mode::Browse, press(Enter), Some(Action::Enter)),
            (Mode::Browse, press(Esc), Some(Action::Back)),
            (Mode::Browse, press(Char(' ')), Some(Action::TogglePause)),
            (Mode::Browse, press(Char('L')), Some(Action::ToggleLog)),
            (
                Mode::Browse,
                KeyEvent::new(Char('L'), KeyModifiers::SHIFT),
                Some(Action::ToggleLog),
            ),
            (Mode::Browse, press(Char('l')), None),
            (Mode::Detail, press(Char('L')), Some(Action::ToggleLog)),
            (Mode::Browse, press(Char('?')), Some(Action::ToggleHelp)),
            (Mode::Browse, press(F(1)), Some(Action::ToggleHelp)),
            (Mode::Browse, press(Char('q')), Some(Action::Quit)),
            (Mode::Browse, ctrl('c'), Some(Action::Quit)),
            (Mode::Browse, press(Char('x')), None),
            (Mode::Browse, ctrl('x'), None),
            (Mode::Detail, press(Esc), Some(Action::Back)),
            (Mode::Detail, press(Enter), Some(Action::Enter)),
            (Mode::Detail, press(Down), Some(Action::Down)),
            (Mode::Detail, press(Char('q')), Some(Action::Quit)),
            // The prompt takes text: letters that are keys elsewhere are typed.
            (
                Mode::Filter,
                press(Char('q')),
                Some(Action::FilterChar('q')),
            ),
            (
                Mode::Filter,
                press(Char('j')),
                Some(Action::FilterChar('j')),
            ),
            (
                Mode::Filter,
                press(Char(' ')),
                Some(Action::FilterChar(' ')),
            ),
            (
                Mode::Filter,
                press(Char(':')),
                Some(Action::FilterChar(':')),
            ),
            (
                Mode::Filter,
                press(Backspace),
                Some(Action::FilterBackspace),
            ),
            (Mode::Filter, ctrl('u'), Some(Action::FilterClearLine)),
            (
                Mode::Filter,
                press(Char('L')),
                Some(Action::FilterChar('L')),
            ),
            (Mode::Filter, press(Enter), Some(Action::FilterApply)),
            (Mode::Filter, press(Esc), Some(Action::FilterCancel)),
            (Mode::Filter, ctrl('c'), Some(Action::Quit)),
            (Mode::Filter, press(Up), None),
            (Mode::Help, press(Esc), Some(Action::ToggleHelp)),
            (Mode::Help, press(Char('?')), Some(Action::ToggleHelp)),
            (Mode::Help, press(Char('q')), Some(Action::ToggleHelp)),
            (Mode::Help, press(Down), None),
            (Mode::Help, ctrl('c'), Some(Action::Quit)),
            (Mode::Browse, press(Char('K')), Some(Action::Kill)),
            (Mode::Detail, press(Char('K')), Some(Action::Kill)),
            (
                Mode::Browse,
                press(Char('E')),
                Some(Action::EnableKeepalive),
            ),
            (
                Mode::Filter,
                press(Char('K')),
                Some(Action::FilterChar('K')),
            ),
            (Mode::Confirm, press(Char('y')), Some(Action::ConfirmYes)),
            (Mode::Confirm, press(Char('Y')), Some(Action::ConfirmYes)),
            (Mode::Confirm, press(Char('n')), Some(Action::ConfirmNo)),
            (Mode::Confirm, press(Enter), Some(Action::ConfirmNo)),
            (Mode::Confirm, press(Esc), Some(Action::ConfirmNo)),
            (Mode::Confirm, press(Char('K')), Some(Action::ConfirmNo)),
            (Mode::Confirm, ctrl('c'), Some(Action::Quit)),
        ];
        for (mode, key, want) in cases {
            assert_eq!(map_key(mode, key), want, "{mode:?} {key:?}");
        }
    }

    #[test]
    fn replay_key_table() {
        use KeyCode::*;
        for (code, want) in [
            (Left, Some(ReplayKey::Go(Go::Prev))),
            (Char(','), Some(ReplayKey::Go(Go::Prev))),
            (Right, Some(ReplayKey::Go(Go::Next))),
            (Char('.'), Some(ReplayKey::Go(Go::Next))),
            (Char('['), Some(ReplayKey::Go(Go::By(-MINUTE_MS)))),
            (Char(']'), Some(ReplayKey::Go(Go::By(MINUTE_MS)))),
            (Char('{'), Some(ReplayKey::Go(Go::By(-HOUR_MS)))),
            (Char('}'), Some(ReplayKey::Go(Go::By(HOUR_MS)))),
            (Char('t'), Some(ReplayKey::OpenPrompt)),
            (Char(' '), Some(ReplayKey::TogglePlay)),
            // The live view's keys stay the live view's.
            (Char('/'), None),
            (Char('q'), None),
            (Down, None),
            (Tab, None),
        ] {
            assert_eq!(map_replay_key(false, true, press(code)), want, "{code:?}");
        }
        // With the filter prompt, help or a question open, the live view's map decides.
        assert_eq!(map_replay_key(false, false, press(Char('t'))), None);
        // The time prompt takes every key.
        for (code, want) in [
            (Char('q'), ReplayKey::PromptChar('q')),
            (Char(':'), ReplayKey::PromptChar(':')),
            (Backspace, ReplayKey::PromptBackspace),
            (Enter, ReplayKey::PromptApply),
            (Esc, ReplayKey::PromptCancel),
            (Tab, ReplayKey::PromptCancel),
        ] {
            assert_eq!(
                map_replay_key(true, true, press(code)),
                Some(want),
                "{code:?}"
            );
        }
        let ctrl_c = KeyEvent::new(Char('c'), KeyModifiers::CONTROL);
        assert_eq!(
            map_replay_key(true, true, ctrl_c),
            None,
            "Ctrl-C still quits"
        );
    }

    #[test]
    fn only_presses_count() {
        for kind in [KeyEventKind::Release, KeyEventKind::Repeat] {
            let key = KeyEvent::new_with_kind_and_state(
                KeyCode::Char('q'),
                KeyModifiers::NONE,
                kind,
                KeyEventState::NONE,
            );
            assert_eq!(map_key(Mode::Browse, key), None, "{kind:?}");
        }
    }

    /// The key names in a table cell: `Up/k  Down/j` is `Up`, `k`, `Down`, `j`; `` `/` `` is `/`; README separates
    /// keys with `, ` (`?, h, F1`), while a comma after `/` is the comma key (`Left/,`, README's ``Left/`,` ``).
    fn key_names(cell: &str) -> Vec<&str> {
        let mut names = Vec::new();
        for word in cell.split(' ').filter(|w| !w.is_empty()) {
            let word = match word.strip_suffix(',') {
                Some(w) if !w.is_empty() && !w.ends_with('/') => w,
                _ => word,
            };
            if word.trim_matches('`') == "/" {
                names.push("/");
            } else {
                names.extend(
                    word.split('/')
                        .map(|n| n.trim_matches('`'))
                        .filter(|n| !n.is_empty()),
                );
            }
        }
        names
    }

    #[test]
    fn key_names_read_the_help_and_readme_alike() {
        assert_eq!(key_names("Left/,  Right/."), ["Left", ",", "Right", "."]);
        assert_eq!(
            key_names("Left/`,`, Right/`.`"),
            ["Left", ",", "Right", "."]
        );
        assert_eq!(key_names("?, h, F1"), ["?", "h", "F1"]);
        assert_eq!(key_names("`[` `]`, `{` `}`"), ["[", "]", "{", "}"]);
        assert_eq!(key_names("[  ]   {  }"), ["[", "]", "{", "}"]);
        assert_eq!(key_names("`/`"), ["/"]);
        assert_eq!(key_names("Up/k  Down/j"), ["Up", "k", "Down", "j"]);
    }

    /// How the help names a key: `k`, `Up`, `PgUp`, `space`, `F1`, `Ctrl-B`.
    fn key_name(key: KeyEvent) -> String {
        match key.code {
            KeyCode::Char(' ') => "space".to_string(),
            KeyCode::Char(c) if key.modifiers.contains(KeyModifiers::CONTROL) => {
                format!("Ctrl-{}", c.to_ascii_uppercase())
            }
            KeyCode::Char(c) => c.to_string(),
            KeyCode::PageUp => "PgUp".to_string(),
            KeyCode::PageDown => "PgDn".to_string(),
            // Shift-Tab switches back: the same line as Tab.
            KeyCode::BackTab => "Tab".to_string(),
            KeyCode::F(n) => format!("F{n}"),
            code => format!("{code:?}"),
        }
    }

    #[test]
    fn every_key_the_map_takes_is_in_the_help() {
        let named: Vec<&str> = TABLE.iter().flat_map(|k| key_names(k.keys)).collect();
        let text: String = HELP
            .iter()
            .map(|(k, w)| [*k, " ", *w, "\n"].concat())
            .collect();
        let mut keys: Vec<KeyEvent> = (' '..='~').map(|c| press(KeyCode::Char(c))).collect();
        keys.extend(('a'..='z').map(ctrl));
        keys.extend((1..=12).map(|n| press(KeyCode::F(n))));
        use KeyCode::*;
        for code in [
            Up, Down, Left, Right, PageUp, PageDown, Home, End, Tab, BackTab, Enter, Esc,
            Backspace, Delete, Insert,
        ] {
            keys.push(press(code));
        }
        let mut checked = 0;
        for mode in [Mode::Browse, Mode::Detail] {
            for key in &keys {
                // In a replay the replay's map is asked first (its time prompt closed: it takes text).
                if map_key(mode, *key).is_none() && map_replay_key(false, true, *key).is_none() {
                    continue;
                }
                checked += 1;
                let name = key_name(*key);
                let listed = if name.starts_with("Ctrl-") {
                    text.contains(&name)
                } else {
                    named.contains(&name.as_str())
                };
                assert!(
                    listed,
                    "{mode:?}: '{name}' does something but the help does not list it"
                );
            }
        }
        assert!(checked > 40, "only {checked} keys checked");
    }

    #[test]
    fn the_help_shows_every_key_of_the_table() {
        for key in TABLE {
            assert!(HELP.contains(&key.line()), "{key:?}");
        }
    }

    #[test]
    fn readme_key_table_lists_every_key() {
        let readme = include_str!(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md"));
        let rows: Vec<&str> = readme
            .lines()
            .skip_while(|l| !l.starts_with("| key | does |"))
            .skip(2)
            .take_while(|l| l.starts_with('|'))
            .collect();
        assert!(rows.len() > 5, "README has no key table");
        let listed: Vec<&str> = rows
            .iter()
            .flat_map(|row| key_names(row.split('|').nth(1).unwrap_or("")))
            .collect();
        for key in TABLE {
            for name in key_names(key.keys) {
                assert!(
                    listed.contains(&name),
                    "README's key table misses '{name}' ({})",
                    key.what
                );
            }
        }
    }

    #[test]
    fn footer_hints_name_keys_of_the_table() {
        for playing in [false, true] {
            for (keys, label) in replay_hints(playing) {
                assert!(!keys.is_empty(), "{label}");
                for key in *keys {
                    assert!(TABLE.contains(key) && !key.hint.is_empty(), "{key:?}");
                }
            }
        }
        for mode in [Mode::Browse, Mode::Detail] {
            for view in [View::Connections, View::Processes, View::Log] {
                for drilled in [false, true] {
                    for (keys, label) in footer_hints(mode, view, drilled) {
                        assert!(!keys.is_empty(), "{label}");
                        for key in *keys {
                            assert!(TABLE.contains(key) && !key.hint.is_empty(), "{key:?}");
                        }
                    }
                }
            }
        }
    }
}
