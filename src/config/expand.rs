//! `${VAR}` and `${VAR:-default}` expansion of config strings from the environment.

/// Expands every `${NAME}` and `${NAME:-default}` in `input`; `$$` is a literal `$`. A `$` not
/// followed by `{` or `$` is kept as is, so shell snippets in hooks mostly need no escaping.
///
/// Fails with a message naming the variable when one is unset and has no default, or when a
/// `${` is never closed.
pub fn expand(input: &str, lookup: &dyn Fn(&str) -> Option<String>) -> Result<String, String> {
    let mut out = String::with_capacity(input.len());
    let mut rest = input;
    while let Some(pos) = rest.find('$') {
        out.push_str(&rest[..pos]);
        let after = &rest[pos + 1..];
        if let Some(tail) = after.strip_prefix('$') {
            out.push('$');
            rest = tail;
        } else if let Some(body) = after.strip_prefix('{') {
            let end = body
                .find('}')
                .ok_or_else(|| format!("unclosed \"${{\" in {input:?}"))?;
            let expr = &body[..end];
            let (name, default) = match expr.split_once(":-") {
                Some((name, default)) => (name, Some(default)),
                None => (expr, None),
            };
            if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
                return Err(format!("invalid variable name {name:?} in \"${{{expr}}}\""));
            }
            match (lookup(name).filter(|v| !v.is_empty()), default) {
                (Some(value), _) => out.push_str(&value),
                (None, Some(default)) => out.push_str(default),
                (None, None) => {
                    return Err(format!(
                        "environment variable {name} is not set (write ${{{name}:-default}} to give a default)"
                    ));
                }
            }
            rest = &body[end + 1..];
        } else {
            out.push('$');
            rest = after;
        }
    }
    out.push_str(rest);
    Ok(out)
}

/// A `${...}` the early pass could not expand: where it stands (1-based) and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unexpanded {
    pub line: u64,
    pub column: u64,
    pub message: String,
}

/// Expands, in the YAML text itself, every plain scalar that is a whole `${...}`
/// (`port: ${MYSQL_PORT:-3306}`, `init: ${INIT:-true}`) when its value is a plain token
/// (letters, digits, `._:+-`), so numbers, booleans and durations can come from the
/// environment and are typed after expansion. A value shorter than its `${...}` is padded
/// with spaces, which YAML ignores, so the positions of everything after it stay true.
/// Quoted scalars, comments, and values that are not plain tokens are left for the string
/// expansion that follows (the result is the same); the ones that cannot be expanded are
/// returned, so an error at their place can say which variable is missing.
pub fn expand_plain_scalars(
    text: &str,
    lookup: &dyn Fn(&str) -> Option<String>,
) -> (String, Vec<Unexpanded>) {
    let mut out = String::with_capacity(text.len());
    let mut failed = Vec::new();
    for (n, line) in text.split_inclusive('\n').enumerate() {
        out.push_str(&expand_line(line, n as u64 + 1, lookup, &mut failed));
    }
    (out, failed)
}

fn expand_line(
    line: &str,
    line_no: u64,
    lookup: &dyn Fn(&str) -> Option<String>,
    failed: &mut Vec<Unexpanded>,
) -> String {
    let b = line.as_bytes();
    let mut out = String::with_capacity(line.len());
    // The last byte that was not a space, outside quotes: what a scalar starting here follows.
    let mut before: Option<u8> = None;
    let mut i = 0;
    while i < b.len() {
        let c = b[i];
        let at_scalar_start = matches!(before, None | Some(b':' | b'-' | b'[' | b'{' | b','));
        if c == b'#' && (i == 0 || b[i - 1] == b' ' || b[i - 1] == b'\t') {
            out.push_str(&line[i..]);
            return out;
        }
        if (c == b'\'' || c == b'"') && at_scalar_start {
            let end = quoted_end(b, i);
            out.push_str(&line[i..end]);
            before = Some(c);
            i = end;
            continue;
        }
        if c == b'$'
            && b.get(i + 1) == Some(&b'{')
            && matches!(before, Some(b':' | b'-' | b'[' | b'{' | b','))
            && let Some(close) = line[i..].find('}').map(|p| i + p)
            && ends_scalar(b, close + 1)
        {
            let expr = &line[i..=close];
            match expand(expr, lookup) {
                Ok(v) if is_plain_token(&v) => {
                    out.push_str(&v);
                    for _ in v.len()..expr.len() {
                        out.push(' ');
                    }
                }
                Ok(_) => out.push_str(expr),
                Err(message) => {
                    failed.push(Unexpanded {
                        line: line_no,
                        column: line[..i].chars().count() as u64 + 1,
                        message,
                    });
                    out.push_str(expr);
                }
            }
            before = Some(b'}');
            i = close + 1;
            continue;
        }
        if c != b' ' && c != b'\t' && c != b'\n' && c != b'\r' {
            before = Some(c);
        }
        let len = line[i..].chars().next().map_or(1, char::len_utf8);
        out.push_str(&line[i..i + len]);
        i += len;
    }
    out
}

/// The index after the quoted scalar starting at `start` (or the line's end when unclosed).
fn quoted_end(b: &[u8], start: usize) -> usize {
    let quote = b[start];
    let mut j = start + 1;
    while j < b.len() {
        if quote == b'"' && b[j] == b'\\' {
            j += 2;
            continue;
        }
        if b[j] == quote {
            // '' inside single quotes is an escaped quote.
            if quote == b'\'' && b.get(j + 1) == Some(&b'\'') {
                j += 2;
                continue;
            }
            return j + 1;
        }
        j += 1;
    }
    b.len()
}

/// Whether a plain scalar may end at `at`: spaces, then the line's end, a comment, or the
/// end of a flow item.
fn ends_scalar(b: &[u8], at: usize) -> bool {
    let mut j = at;
    while j < b.len() && (b[j] == b' ' || b[j] == b'\t') {
        j += 1;
    }
    match b.get(j) {
        None | Some(b'\n' | b'\r' | b',' | b'}' | b']') => true,
        Some(b'#') => j > at,
        _ => false,
    }
}

fn is_plain_token(v: &str) -> bool {
    !v.is_empty()
        && v.bytes()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'.' | b'_' | b':' | b'+' | b'-'))
        && !v.starts_with(['-', ':'])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(name: &str) -> Option<String> {
        match name {
            "HOME" => Some("/root".into()),
            "EMPTY" => Some(String::new()),
            _ => None,
        }
    }

    #[test]
    fn expands_set_variables_and_defaults() {
        assert_eq!(expand("${HOME}/x", &env).unwrap(), "/root/x");
        assert_eq!(expand("${NOPE:-/tmp}/x", &env).unwrap(), "/tmp/x");
        assert_eq!(expand("${EMPTY:-d}", &env).unwrap(), "d");
        assert_eq!(expand("${HOME:-/tmp}", &env).unwrap(), "/root");
    }

    #[test]
    fn dollar_escapes_and_plain_dollars_survive() {
        assert_eq!(
            expand("cost $$5 and $PATH", &env).unwrap(),
            "cost $5 and $PATH"
        );
    }

    #[test]
    fn unset_variable_is_named() {
        let err = expand("a ${MISSING_THING} b", &env).unwrap_err();
        assert!(err.contains("MISSING_THING is not set"), "{err}");
    }

    #[test]
    fn unclosed_brace_is_an_error() {
        assert!(expand("${HOME", &env).unwrap_err().contains("unclosed"));
    }

    #[test]
    fn whole_plain_scalars_are_expanded_before_typing() {
        let env = |name: &str| match name {
            "PORT" => Some("3307".to_string()),
            "WORDS" => Some("two words".to_string()),
            _ => None,
        };
        let text = "a: ${PORT}\nb: { port: ${PORT:-1}, init: ${INIT:-true} }\n\
                    c: '${PORT}'\nd: x${PORT}\n- ${PORT} # note\ne: ${WORDS}\nf: ${GONE}\n\
                    g: $${PORT}\n# h: ${PORT}\n";
        let (out, failed) = expand_plain_scalars(text, &env);
        assert_eq!(
            out,
            "a: 3307   \nb: { port: 3307      , init: true          }\n\
             c: '${PORT}'\nd: x${PORT}\n- 3307    # note\ne: ${WORDS}\nf: ${GONE}\n\
             g: $${PORT}\n# h: ${PORT}\n"
        );
        assert_eq!(failed.len(), 1);
        assert_eq!((failed[0].line, failed[0].column), (7, 4));
        assert!(failed[0].message.contains("GONE is not set"));
    }
}
