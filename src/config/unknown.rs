//! Unknown keys, all of them in one pass: each one the parser stops at is reported with the
//! nearest known key, then blanked out of the text (spaces, so every position stays true) and
//! the text parsed again.

/// The unknown key and the keys serde expected instead, from serde's message.
pub fn parse_message(serde_message: &str) -> Option<(&str, Vec<&str>)> {
    let rest = serde_message.strip_prefix("unknown field `")?;
    let (key, rest) = rest.split_once('`')?;
    let known: Vec<&str> = rest
        .split_once("expected one of ")
        .or_else(|| rest.split_once("expected "))
        .map(|(_, list)| {
            list.split(',')
                .map(|k| k.trim().trim_matches('`'))
                .filter(|k| !k.is_empty())
                .collect()
        })
        .unwrap_or_default();
    Some((key, known))
}

/// The message for unknown `key` where `known` are the keys that apply: the nearest one when
/// there is one, the whole list only when there is none.
pub fn suggest(key: &str, known: &[&str]) -> String {
    match nearest(key, known) {
        Some(near) => format!("unknown key `{key}`: did you mean `{near}`?"),
        None if known.is_empty() => format!("unknown key `{key}`"),
        None => format!("unknown key `{key}`; known here: {}", known.join(", ")),
    }
}

/// The known key closest to `key` by edit distance, when it is close enough to be a typo.
fn nearest<'a>(key: &str, known: &[&'a str]) -> Option<&'a str> {
    let key_lower = key.to_lowercase();
    known
        .iter()
        .map(|k| (distance(&key_lower, &k.to_lowercase()), *k))
        .filter(|(d, k)| *d <= (k.chars().count() / 3).max(1))
        .min_by_key(|(d, _)| *d)
        .map(|(_, k)| k)
}

/// Levenshtein distance, with a swap of two neighbours counted as one edit.
fn distance(a: &str, b: &str) -> usize {
    let a: Vec<char> = a.chars().collect();
    let b: Vec<char> = b.chars().collect();
    let mut d = vec![vec![0usize; b.len() + 1]; a.len() + 1];
    for (i, row) in d.iter_mut().enumerate() {
        row[0] = i;
    }
    d[0] = (0..=b.len()).collect();
    for i in 1..=a.len() {
        for j in 1..=b.len() {
            let cost = usize::from(a[i - 1] != b[j - 1]);
            d[i][j] = (d[i - 1][j] + 1)
                .min(d[i][j - 1] + 1)
                .min(d[i - 1][j - 1] + cost);
            if i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] {
                d[i][j] = d[i][j].min(d[i - 2][j - 2] + 1);
            }
        }
    }
    d[a.len()][b.len()]
}

/// `text` with the entry whose key starts at `line`:`column` (1-based) replaced by spaces:
/// in a flow mapping (`{ a: 1, bad: 2 }`) the entry and its comma, in a block mapping the key's
/// line from the key on and the lines nested under it. `None` when it cannot be done safely
/// (the key is the first of a `- ` sequence item, or the position is outside the text).
pub fn blank_entry(text: &str, line: u64, column: u64) -> Option<String> {
    let mut lines: Vec<Vec<char>> = text.split('\n').map(|l| l.chars().collect()).collect();
    let li = usize::try_from(line).ok()?.checked_sub(1)?;
    let ci = usize::try_from(column).ok()?.checked_sub(1)?;
    let l = lines.get(li)?;
    if ci >= l.len() {
        return None;
    }
    if open_flow(&l[..ci]) {
        let (end, closer) = flow_entry_end(l, ci)?;
        let l = &mut lines[li];
        if closer {
            // The last entry: blank the comma before it instead of one after it.
            let mut start = ci;
            let mut j = ci;
            while j > 0 && l[j - 1] == ' ' {
                j -= 1;
            }
            if j > 0 && l[j - 1] == ',' {
                start = j - 1;
            }
            l[start..end].fill(' ');
        } else {
            l[ci..=end].fill(' ');
        }
    } else {
        let before: String = l[..ci].iter().collect();
        if before.trim_start().starts_with('-') {
            return None;
        }
        if !before.chars().all(|c| c == ' ') {
            return None;
        }
        lines[li][ci..].fill(' ');
        for next in lines.iter_mut().skip(li + 1) {
            let indent = next.iter().take_while(|c| **c == ' ').count();
            let blank = indent == next.len() || next.get(indent) == Some(&'#');
            if !blank && indent <= ci {
                break;
            }
            next.fill(' ');
        }
    }
    Some(
        lines
            .iter()
            .map(|l| l.iter().collect::<String>())
            .collect::<Vec<_>>()
            .join("\n"),
    )
}

/// Whether `prefix` leaves a `{` or `[` open (outside quotes).
fn open_flow(prefix: &[char]) -> bool {
    let mut depth = 0i32;
    let mut quote: Option<char> = None;
    for &c in prefix {
        match (quote, c) {
            (Some(q), c) if c == q => quote = None,
            (Some(_), _) => {}
            (None, '\'' | '"') => quote = Some(c),
            (None, '{' | '[') => depth += 1,
            (None, '}' | ']') => depth -= 1,
            (None, '#') => break,
            _ => {}
        }
    }
    depth > 0
}

/// Where the flow entry starting at `start` ends: the index of its comma (false) or of the
/// closing bracket after it (true).
fn flow_entry_end(l: &[char], start: usize) -> Option<(usize, bool)> {
    let mut depth = 0i32;
    let mut quote: Option<char> = None;
    for (i, &c) in l.iter().enumerate().skip(start) {
        match (quote, c) {
            (Some(q), c) if c == q => quote = None,
            (Some(_), _) => {}
            (None, '\'' | '"') => quote = Some(c),
            (None, '{' | '[') => depth += 1,
            (None, '}' | ']') if depth == 0 => return Some((i, true)),
            (None, '}' | ']') => depth -= 1,
            (None, ',') if depth == 0 => return Some((i, false)),
            _ => {}
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_message_suggests_the_nearest_key() {
        let (key, known) =
            parse_message("unknown field `databses`, expected one of `name`, `databases`, `paths`")
                .unwrap();
        let m = suggest(key, &known);
        assert_eq!(m, "unknown key `databses`: did you mean `databases`?");
        let (key, known) = parse_message("unknown field `zzz`, expected one of url, init").unwrap();
        assert_eq!(
            suggest(key, &known),
            "unknown key `zzz`; known here: url, init"
        );
        assert_eq!(parse_message("invalid type"), None);
    }

    #[test]
    fn only_the_keys_that_apply_are_suggested() {
        assert_eq!(
            suggest("pth", &["name", "type", "host", "user"]),
            "unknown key `pth`; known here: name, type, host, user"
        );
        assert_eq!(
            suggest("usr", &["name", "type", "host", "user"]),
            "unknown key `usr`: did you mean `user`?"
        );
    }

    #[test]
    fn entries_are_blanked_in_place() {
        let flow = "a: { x: 1, bad: { y: [1, 2] }, z: 2 }\n";
        assert_eq!(
            blank_entry(flow, 1, 12).unwrap(),
            "a: { x: 1,                     z: 2 }\n"
        );
        let last = "a: { x: 1, bad: 2 }\n";
        assert_eq!(blank_entry(last, 1, 12).unwrap(), "a: { x: 1         }\n");
        let block = "p:\n  bad:\n    - 1\n\n    - 2\n  ok: 1\n";
        assert_eq!(
            blank_entry(block, 2, 3).unwrap(),
            "p:\n      \n       \n\n       \n  ok: 1\n"
        );
        assert_eq!(blank_entry("- bad: 1\n  ok: 2\n", 1, 3), None);
        assert_eq!(blank_entry("a: 1\n", 9, 1), None);
    }
}
