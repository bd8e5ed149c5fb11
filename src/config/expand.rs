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
}
