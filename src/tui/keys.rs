//! The key map: a pure function from (mode, key) to an action, and the help text that lists it.

use crossterm::event::{KeyCode, KeyEvent, KeyEventKind, KeyModifiers};

use crate::tui::app::{Action, Mode};

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

/// Every key, as the help overlay lists it: (keys, what they do).
pub const HELP: &[(&str, &str)] = &[
    ("Up/k  Down/j", "move the cursor"),
    ("PgUp  PgDn", "a page up / down (also Ctrl-B / Ctrl-F)"),
    ("Home/g  End/G", "first / last row"),
    ("mouse wheel", "scroll"),
    ("Tab", "switch connections / processes"),
    ("Enter", "connection: details; process: its connections"),
    ("Esc", "close details, leave a process, clear the filter"),
    ("/", "filter: port:443 state:close-wait pid:1234 stuck"),
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
    ("s  S", "next sort column / reverse the sort"),
    ("space", "pause / resume refreshing (replay: play / pause)"),
    (
        "K  E",
        "kill · keepalive on 60/10/5 (row or process; asks y/N)",
    ),
    ("L", "event log: deaths, state changes, held dead fds"),
    (
        "Left/,  Right/.",
        "replay: previous / next recorded refresh",
    ),
    ("[  ]   {  }", "replay: a minute / an hour back and forward"),
    ("t", "replay: go to a time: 03:12, 2026-12-05 03:12:30, -2h"),
    ("? h F1", "this help"),
    ("q  Ctrl-C", "quit"),
];

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
}
