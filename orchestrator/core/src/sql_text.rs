//! Named placeholders in SQL text: found once at load, rewritten into each driver's positional
//! form, and always bound, never spliced.
//!
//! The scanner knows enough SQL lexing to not mistake text for placeholders: single-quoted
//! strings (with `''`), double-quoted and backquoted identifiers, `--` and `/* */` comments,
//! PostgreSQL dollar-quoted strings and `::` casts. `:name` outside those is a placeholder;
//! `?`, `?NNN` and `$N` outside those are positional placeholders, which the validator rejects
//! (PostgreSQL's JSON operators `?`, `?|`, `?&` are allowed there).

use std::ops::Range;

/// A token of interest in SQL text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Token<'a> {
    /// `:name`; the range covers the colon and the name.
    Named { name: &'a str, range: Range<usize> },
    /// `?`, `?3` or `$3`.
    Positional { text: &'a str, range: Range<usize> },
}

fn is_ident_start(b: u8) -> bool {
    b.is_ascii_alphabetic() || b == b'_'
}

fn is_ident(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_'
}

/// The placeholders of `sql`, in order of appearance.
pub(crate) fn scan(sql: &str) -> Vec<Token<'_>> {
    let b = sql.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    let skip_to = |from: usize, end: &[u8]| -> usize {
        sql[from..]
            .find(std::str::from_utf8(end).unwrap_or_default())
            .map_or(b.len(), |p| from + p + end.len())
    };
    while i < b.len() {
        match b[i] {
            b'\'' => {
                // A string; `''` is an escaped quote and simply re-enters the loop here.
                i = skip_to(i + 1, b"'");
            }
            b'"' => i = skip_to(i + 1, b"\""),
            b'`' => i = skip_to(i + 1, b"`"),
            b'-' if b.get(i + 1) == Some(&b'-') => i = skip_to(i + 2, b"\n"),
            b'/' if b.get(i + 1) == Some(&b'*') => i = skip_to(i + 2, b"*/"),
            b':' if b.get(i + 1) == Some(&b':') => i += 2,
            b':' if b.get(i + 1).is_some_and(|&c| is_ident_start(c)) => {
                let start = i;
                i += 1;
                while i < b.len() && is_ident(b[i]) {
                    i += 1;
                }
                out.push(Token::Named {
                    name: &sql[start + 1..i],
                    range: start..i,
                });
            }
            // `?`, `?3`, `$3`
            b'$' | b'?' if b[i] == b'?' || b.get(i + 1).is_some_and(u8::is_ascii_digit) => {
                let start = i;
                i += 1;
                while i < b.len() && b[i].is_ascii_digit() {
                    i += 1;
                }
                out.push(Token::Positional {
                    text: &sql[start..i],
                    range: start..i,
                });
            }
            b'$' => {
                // `$tag$ … $tag$` (PostgreSQL), including `$$ … $$`.
                let start = i + 1;
                let mut j = start;
                while j < b.len() && is_ident(b[j]) {
                    j += 1;
                }
                if b.get(j) == Some(&b'$') && (j == start || is_ident_start(b[start])) {
                    let tag = &sql[i..=j];
                    i = sql[j + 1..]
                        .find(tag)
                        .map_or(b.len(), |p| j + 1 + p + tag.len());
                } else {
                    i += 1;
                }
            }
            _ => i += 1,
        }
    }
    out
}

/// How a driver spells positional placeholders.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Style {
    /// `$1`, `$2`, … (PostgreSQL); a repeated name reuses its number.
    Dollar,
    /// `?1`, `?2`, … (SQLite); a repeated name reuses its number.
    NumberedQuestion,
    /// `?` (MySQL); a repeated name is bound again.
    Question,
}

/// `sql` with each `:name` replaced by `style`'s placeholder, and for each placeholder slot the
/// index into `params` of the value to bind. Names not in `params` are left alone (the
/// validator reports them).
pub fn rewrite(sql: &str, params: &[&str], style: Style) -> (String, Vec<usize>) {
    let mut out = String::with_capacity(sql.len());
    let mut binds: Vec<usize> = Vec::new();
    let mut last = 0;
    for token in scan(sql) {
        let Token::Named { name, range } = token else {
            continue;
        };
        let Some(index) = params.iter().position(|p| *p == name) else {
            continue;
        };
        out.push_str(&sql[last..range.start]);
        last = range.end;
        match style {
            Style::Question => {
                binds.push(index);
                out.push('?');
            }
            Style::Dollar | Style::NumberedQuestion => {
                let slot = match binds.iter().position(|&b| b == index) {
                    Some(slot) => slot,
                    None => {
                        binds.push(index);
                        binds.len() - 1
                    }
                };
                out.push(if style == Style::Dollar { '$' } else { '?' });
                out.push_str(&(slot + 1).to_string());
            }
        }
    }
    out.push_str(&sql[last..]);
    (out, binds)
}

/// The name [`expand`] gives the `i`-th value of list parameter `name`.
pub fn element_name(name: &str, i: usize) -> String {
    format!("{name}__{i}")
}

/// `sql` with every `:name` placeholder of the list parameter `name` replaced by `n` of them
/// (`:name__0, :name__1, …`, see [`element_name`]), for an `IN (:name)` list of `n` values.
pub fn expand(sql: &str, name: &str, n: usize) -> String {
    let list: Vec<String> = (0..n)
        .map(|i| format!(":{}", element_name(name, i)))
        .collect();
    let list = list.join(", ");
    let mut out = String::with_capacity(sql.len() + list.len());
    let mut last = 0;
    for token in scan(sql) {
        if let Token::Named { name: found, range } = token
            && found == name
        {
            out.push_str(&sql[last..range.start]);
            out.push_str(&list);
            last = range.end;
        }
    }
    out.push_str(&sql[last..]);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_list_parameter_expands_into_one_placeholder_per_value() {
        let sql = "SELECT * FROM t WHERE id IN (:ids) AND note <> ':ids' AND k = :k";
        let expanded = expand(sql, "ids", 3);
        assert_eq!(
            expanded,
            "SELECT * FROM t WHERE id IN (:ids__0, :ids__1, :ids__2) AND note <> ':ids' AND k = :k"
        );
        let (pg, slots) = rewrite(
            &expanded,
            &["k", "ids__0", "ids__1", "ids__2"],
            Style::Dollar,
        );
        assert_eq!(
            pg,
            "SELECT * FROM t WHERE id IN ($1, $2, $3) AND note <> ':ids' AND k = $4"
        );
        assert_eq!(slots, [1, 2, 3, 0]);
    }

    fn names(sql: &str) -> Vec<&str> {
        scan(sql)
            .into_iter()
            .map(|t| match t {
                Token::Named { name, .. } => name,
                Token::Positional { text, .. } => text,
            })
            .collect()
    }

    #[test]
    fn finds_placeholders_outside_literals_comments_and_casts() {
        assert_eq!(
            names("SELECT * FROM c WHERE id = :id AND n = :name_2"),
            ["id", "name_2"]
        );
        assert_eq!(
            names("SELECT ':no', \"a:b\", `c:d` FROM t"),
            Vec::<&str>::new()
        );
        assert_eq!(names("SELECT 'it''s :no' , :yes"), ["yes"]);
        assert_eq!(names("SELECT 1 -- :no\n, :yes /* :no */"), ["yes"]);
        assert_eq!(names("SELECT :ts::timestamptz, x::int"), ["ts"]);
        assert_eq!(names("SELECT $$ :no $$, $f$ :no $f$, :yes"), ["yes"]);
        assert_eq!(names("SELECT '12:30', a[1:2]"), Vec::<&str>::new());
        assert_eq!(names("SELECT ? , ?2, $1"), ["?", "?2", "$1"]);
    }

    #[test]
    fn rewrites_per_driver() {
        let sql = "SELECT * FROM t WHERE a = :a OR b = :b OR c = :a";
        assert_eq!(
            rewrite(sql, &["a", "b"], Style::Dollar),
            (
                "SELECT * FROM t WHERE a = $1 OR b = $2 OR c = $1".into(),
                vec![0, 1]
            )
        );
        assert_eq!(
            rewrite(sql, &["b", "a"], Style::NumberedQuestion),
            (
                "SELECT * FROM t WHERE a = ?1 OR b = ?2 OR c = ?1".into(),
                vec![1, 0]
            )
        );
        assert_eq!(
            rewrite(sql, &["a", "b"], Style::Question),
            (
                "SELECT * FROM t WHERE a = ? OR b = ? OR c = ?".into(),
                vec![0, 1, 0]
            )
        );
        assert_eq!(
            rewrite("SELECT ':a', :a::int", &["a"], Style::Dollar).0,
            "SELECT ':a', $1::int"
        );
    }
}
