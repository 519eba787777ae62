//! Terminal key events → [`Key`]s. The only place that knows crossterm's key types.

use ratatui::crossterm::event::{KeyCode, KeyEvent, KeyEventKind, KeyModifiers};

use super::input::Key;

/// Translate a key press; `None` for releases and keys the dashboard ignores.
pub fn translate(k: KeyEvent) -> Option<Key> {
    if k.kind == KeyEventKind::Release {
        return None;
    }
    let ctrl = k.modifiers.contains(KeyModifiers::CONTROL);
    Some(match k.code {
        KeyCode::Char('c') if ctrl => Key::Interrupt,
        KeyCode::Char('d') if ctrl => Key::PageDown,
        KeyCode::Char('u') if ctrl => Key::PageUp,
        KeyCode::Char('n') if ctrl => Key::Down,
        KeyCode::Char('p') if ctrl => Key::Up,
        KeyCode::Char(_) if ctrl => return None,
        KeyCode::Char(c) => Key::Char(c),
        KeyCode::Up => Key::Up,
        KeyCode::Down => Key::Down,
        KeyCode::Left => Key::Left,
        KeyCode::Right => Key::Right,
        KeyCode::PageUp => Key::PageUp,
        KeyCode::PageDown => Key::PageDown,
        KeyCode::Home => Key::Home,
        KeyCode::End => Key::End,
        KeyCode::Enter => Key::Enter,
        KeyCode::Esc => Key::Esc,
        KeyCode::Backspace => Key::Backspace,
        KeyCode::Tab => Key::Tab,
        _ => return None,
    })
}

/// Parse a key script for `--keys` (`--once`): characters are keys, and
/// `<Enter>`, `<Esc>`, `<Up>`, `<Down>`, `<Left>`, `<Right>`, `<Tab>`, `<BS>`,
/// `<PgUp>`, `<PgDn>`, `<Home>`, `<End>` name the others.
pub fn parse_script(s: &str) -> Result<Vec<Key>, String> {
    let mut out = Vec::new();
    let mut rest = s;
    while let Some(c) = rest.chars().next() {
        if c == '<'
            && let Some(end) = rest.find('>')
            && end > 1
        {
            let name = &rest[1..end];
            let key = match name.to_ascii_lowercase().as_str() {
                "enter" | "cr" => Key::Enter,
                "esc" => Key::Esc,
                "up" => Key::Up,
                "down" => Key::Down,
                "left" => Key::Left,
                "right" => Key::Right,
                "tab" => Key::Tab,
                "bs" | "backspace" => Key::Backspace,
                "pgup" => Key::PageUp,
                "pgdn" => Key::PageDown,
                "home" => Key::Home,
                "end" => Key::End,
                "lt" => Key::Char('<'),
                _ => return Err(format!("unknown key `<{name}>` in the key script")),
            };
            out.push(key);
            rest = &rest[end + 1..];
        } else {
            out.push(Key::Char(c));
            rest = &rest[c.len_utf8()..];
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scripts_name_special_keys() {
        assert_eq!(
            parse_script("jj<Enter>/ab<esc>").unwrap(),
            [
                Key::Char('j'),
                Key::Char('j'),
                Key::Enter,
                Key::Char('/'),
                Key::Char('a'),
                Key::Char('b'),
                Key::Esc
            ]
        );
        assert!(parse_script("<Nope>").is_err());
        assert_eq!(parse_script("<").unwrap(), [Key::Char('<')]);
    }

    #[test]
    fn ctrl_c_interrupts_and_releases_are_ignored() {
        let mut k = KeyEvent::new(KeyCode::Char('c'), KeyModifiers::CONTROL);
        assert_eq!(translate(k), Some(Key::Interrupt));
        k.kind = KeyEventKind::Release;
        assert_eq!(translate(k), None);
    }
}
