//! Text that may hold credentials, made fit to print: in error messages, diagnostics, logs,
//! traces and the admin views, a URL appears without its password and query values, and a
//! connection string that is not a URL not at all.

/// `text` as a URL fit to print: the password of its user info and the values of its query
/// replaced by `***` (`postgres://app:***@db/orders?sslmode=***`). Text that is not a URL
/// (`host=db password=…`) is not shown at all.
///
/// ```
/// use api_orchestrator_core::redact;
///
/// assert_eq!(redact::url("https://u:p4ss@api.example.com/v1?key=s3cr3t&x=1#top"),
///            "https://u:***@api.example.com/v1?key=***&x=***#top");
/// assert_eq!(redact::url("host=db password=hunter2"), "(a connection string that is not a URL; not shown)");
/// ```
pub fn url(text: &str) -> String {
    let Some((scheme, rest)) = text.split_once("://") else {
        return "(a connection string that is not a URL; not shown)".into();
    };
    if scheme.is_empty()
        || !scheme
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"+-.".contains(&b))
    {
        return "(a connection string that is not a URL; not shown)".into();
    }
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(authority_end);
    let authority = match authority.rsplit_once('@') {
        Some((user, host)) => match user.split_once(':') {
            Some((name, _)) => format!("{name}:***@{host}"),
            None => format!("{user}@{host}"),
        },
        None => authority.to_owned(),
    };
    let (before_fragment, fragment) = match tail.split_once('#') {
        Some((b, f)) => (b, Some(f)),
        None => (tail, None),
    };
    let mut out = format!("{scheme}://{authority}");
    match before_fragment.split_once('?') {
        Some((path, query)) => {
            out.push_str(path);
            out.push('?');
            let pairs: Vec<String> = query
                .split('&')
                .map(|pair| match pair.split_once('=') {
                    Some((k, _)) => format!("{k}=***"),
                    None => pair.to_owned(),
                })
                .collect();
            out.push_str(&pairs.join("&"));
        }
        None => out.push_str(before_fragment),
    }
    if let Some(f) = fragment {
        out.push('#');
        out.push_str(f);
    }
    out
}

/// `text` (an upstream's answer, an error from a driver) fit for one log line: control
/// characters escaped (no forged lines, no terminal escapes), at most `max` characters.
pub fn excerpt(text: &str, max: usize) -> String {
    let text = text.trim();
    let mut out = String::with_capacity(text.len().min(max) + 8);
    for (n, c) in text.chars().enumerate() {
        if n == max {
            out.push('…');
            break;
        }
        if c.is_control() {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
    }
    out
}

/// Keys whose values are credentials wherever they appear in a config: any key whose name ends
/// with one of these (`token`, `jwt_secret`, `X-API-Key`, `Authorization` …).
const SECRET_KEYS: &[&str] = &["password", "token", "secret", "key", "authorization"];

/// A line of a config file fit to quote under a diagnostic: URL passwords and query values,
/// `password=…` pairs and the values of secret keys (`token:`, `password:`, `X-API-Key:`,
/// `Authorization:` …) are masked with `*`, one per character, so a caret under the line
/// still points at the same column.
pub fn line(text: &str) -> String {
    let mut chars: Vec<char> = text.chars().collect();
    // An environment reference (`${env:TOKEN}`) names the secret without holding it: it stays.
    let mask = |chars: &mut [char], from: usize, to: usize| {
        if chars.get(from..from + 2) == Some(&['$', '{']) {
            return;
        }
        for c in chars.iter_mut().take(to).skip(from) {
            *c = '*';
        }
    };
    let lower: Vec<char> = chars.iter().map(char::to_ascii_lowercase).collect();
    let starts = |at: usize, word: &str| {
        word.chars()
            .enumerate()
            .all(|(i, w)| lower.get(at + i) == Some(&w))
    };
    let stop = |c: char| c.is_whitespace() || "\"',}]&;".contains(c);
    let mut i = 0;
    while i < chars.len() {
        // A URL's user info: `scheme://user:password@host`.
        if starts(i, "://") {
            let from = i + 3;
            let end = (from..chars.len())
                .find(|&j| stop(chars[j]) || "/?#".contains(chars[j]))
                .unwrap_or(chars.len());
            if let Some(at) = (from..end).rev().find(|&j| chars[j] == '@')
                && let Some(colon) = (from..at).find(|&j| chars[j] == ':')
            {
                mask(&mut chars, colon + 1, at);
            }
            // Its query values: `?key=…&sig=…`.
            let url_end = (end..chars.len())
                .find(|&j| stop(chars[j]) && chars[j] != '&' || chars[j] == '#')
                .unwrap_or(chars.len());
            if let Some(q) = (end..url_end).find(|&j| chars[j] == '?') {
                let mut j = q + 1;
                while j < url_end {
                    let pair_end = (j..url_end).find(|&k| chars[k] == '&').unwrap_or(url_end);
                    if let Some(eq) = (j..pair_end).find(|&k| chars[k] == '=') {
                        mask(&mut chars, eq + 1, pair_end);
                    }
                    j = pair_end + 1;
                }
            }
            i = url_end;
            continue;
        }
        // `password=…` in a connection string.
        if let Some(word) = ["password=", "pwd="].iter().find(|w| starts(i, w)) {
            let from = i + word.len();
            let end = (from..chars.len())
                .find(|&j| stop(chars[j]))
                .unwrap_or(chars.len());
            mask(&mut chars, from, end);
            i = end;
            continue;
        }
        // `token: value`, in block or flow style.
        let boundary = i == 0 || matches!(chars[i - 1], ' ' | '{' | ',' | '\t');
        let name_end = (i..chars.len())
            .find(|&j| !(chars[j].is_ascii_alphanumeric() || "_-".contains(chars[j])))
            .unwrap_or(chars.len());
        if boundary
            && name_end > i
            && chars.get(name_end) == Some(&':')
            && SECRET_KEYS
                .iter()
                .any(|k| name_end - i >= k.len() && starts(name_end - k.len(), k))
        {
            let mut from = name_end + 1;
            while chars.get(from).is_some_and(|c| *c == ' ') {
                from += 1;
            }
            let end = match chars.get(from) {
                Some(&q @ ('"' | '\'')) => {
                    from += 1;
                    (from..chars.len())
                        .find(|&j| chars[j] == q)
                        .unwrap_or(chars.len())
                }
                _ => (from..chars.len())
                    .find(|&j| chars[j] == ',' || chars[j] == '}' || chars[j] == '#')
                    .unwrap_or(chars.len()),
            };
            let end = (from..end)
                .rev()
                .find(|&j| !chars[j].is_whitespace())
                .map_or(from, |j| j + 1);
            mask(&mut chars, from, end);
            i = end.max(i + 1);
            continue;
        }
        i += 1;
    }
    chars.into_iter().collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_lose_passwords_and_query_values() {
        assert_eq!(
            url("postgres://app:pw@db:5432/orders"),
            "postgres://app:***@db:5432/orders"
        );
        assert_eq!(
            url("mysql://root@127.0.0.1/test"),
            "mysql://root@127.0.0.1/test"
        );
        assert_eq!(url("sqlite:///data/x.db"), "sqlite:///data/x.db");
        assert_eq!(url("http://h/p?a&b=2"), "http://h/p?a&b=***");
        assert_eq!(url("http://u:p@w@h/"), "http://u:***@h/");
        assert!(!url("Server=x;Password=hunter2").contains("hunter2"));
    }

    #[test]
    fn config_lines_keep_their_shape_and_lose_their_secrets() {
        for (text, want) in [
            (
                "      connection_string: \"postgres://app:hunter2@db/x\"",
                "      connection_string: \"postgres://app:*******@db/x\"",
            ),
            (
                "    default: {connection_string: \"host=db password=pw-1\"}",
                "    default: {connection_string: \"host=db password=****\"}",
            ),
            (
                "      auth: {type: bearer, token: \"s3cr3t\"}",
                "      auth: {type: bearer, token: \"******\"}",
            ),
            ("  jwt_secret: abc def", "  jwt_secret: *******"),
            (
                "      auth: {type: api_key, query: api_key, key: k-123}",
                "      auth: {type: api_key, query: api_key, key: *****}",
            ),
            ("  name: keyboard", "  name: keyboard"),
            ("  keys: [a, b]", "  keys: [a, b]"),
            (
                "      headers: {X-API-Key: k-1, Accept: json}",
                "      headers: {X-API-Key: ***, Accept: json}",
            ),
            (
                "      base_url: \"http://h/v1?key=s-1&x=2\"",
                "      base_url: \"http://h/v1?key=***&x=*\"",
            ),
            (
                "      auth: {type: bearer, token: \"${env:TOKEN}\"}",
                "      auth: {type: bearer, token: \"${env:TOKEN}\"}",
            ),
        ] {
            assert_eq!(line(text), want);
            assert_eq!(text.chars().count(), want.chars().count());
        }
    }

    #[test]
    fn excerpts_cannot_forge_lines() {
        assert_eq!(excerpt("a\nb\u{1b}[31m", 100), "a\\nb\\u{1b}[31m");
        assert_eq!(excerpt("abcdef", 3), "abc…");
    }
}
