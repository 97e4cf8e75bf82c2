//! Identifiers and literals: the only place where names and values are rendered into SQL text.
//!
//! Names reach SQL only through [`Ident`] and [`QualifiedName`], whose `Display` quotes them with
//! PostgreSQL's `quote_ident` rules (always quoted, embedded `"` doubled). Values are bind
//! parameters wherever PostgreSQL accepts them; where it cannot (DDL, `SET`, COPY options),
//! [`literal`] renders a string literal. Both are covered by unit tests below (DESIGN.md,
//! "Identifiers are always quoted").

use std::fmt;

/// A single SQL identifier (a table, column, index, schema name...), exactly as stored in the
/// catalog. `Display` renders it double-quoted, so it is safe to interpolate into SQL text.
#[derive(
    Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize,
)]
pub struct Ident(String);

impl Ident {
    pub fn new(name: impl Into<String>) -> Ident {
        Ident(name.into())
    }

    /// The raw name, as the catalog stores it (unquoted). Use it for bind parameters and messages.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Byte length of the raw name; PostgreSQL truncates names to 63 bytes (NAMEDATALEN - 1).
    pub fn byte_len(&self) -> usize {
        self.0.len()
    }
}

impl fmt::Display for Ident {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&postgres_protocol::escape::escape_identifier(&self.0))
    }
}

/// The longest identifier PostgreSQL keeps without truncating (NAMEDATALEN - 1).
pub const MAX_IDENT_BYTES: usize = 63;

/// `schema.name`, both parts quoted on display.
#[derive(Clone, Debug, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub struct QualifiedName {
    pub schema: Ident,
    pub name: Ident,
}

impl QualifiedName {
    pub fn new(schema: impl Into<String>, name: impl Into<String>) -> QualifiedName {
        QualifiedName {
            schema: Ident::new(schema),
            name: Ident::new(name),
        }
    }

    /// Another object in the same schema.
    pub fn sibling(&self, name: impl Into<String>) -> QualifiedName {
        QualifiedName {
            schema: self.schema.clone(),
            name: Ident::new(name),
        }
    }

    /// Unquoted `schema.name` for messages (human readable, not for SQL).
    pub fn human(&self) -> String {
        format!("{}.{}", self.schema.as_str(), self.name.as_str())
    }
}

impl fmt::Display for QualifiedName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}", self.schema, self.name)
    }
}

/// Renders a string as a SQL string literal (`'...'`, or `E'...'` when it holds a backslash).
/// Only for places where PostgreSQL cannot take a bind parameter.
pub fn literal(value: &str) -> String {
    postgres_protocol::escape::escape_literal(value)
}

/// Renders a duration as a setting's value in milliseconds (`100ms`; at least `1ms`, since `0`
/// would mean "no limit"), for `SET lock_timeout` and friends, which take no bind parameter.
/// Here, next to [`literal`], because this file is the one place values are rendered into SQL
/// text (issue 17 moved it from `conn`, which made `locking` depend on connections).
pub fn pg_millis(d: std::time::Duration) -> String {
    format!("{}ms", d.as_millis().max(1))
}

/// Joins identifiers as a comma-separated, quoted list: `"a", "b"`.
pub fn join_idents<'a>(idents: impl IntoIterator<Item = &'a Ident>) -> String {
    idents
        .into_iter()
        .map(|i| i.to_string())
        .collect::<Vec<_>>()
        .join(", ")
}

/// Truncates `base` so that `base + suffix` fits in 63 bytes, never splitting a UTF-8 character.
pub fn fit_name(base: &str, suffix: &str) -> String {
    let room = MAX_IDENT_BYTES.saturating_sub(suffix.len());
    let mut end = base.len().min(room);
    while !base.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}{}", &base[..end], suffix)
}

/// PostgreSQL's `makeObjectName` (`src/backend/commands/indexcmds.c`): `name1_name2_label`,
/// made to fit in 63 bytes by shortening the longer of the two names first, a byte at a time,
/// then cutting each back to a character boundary (`pg_mbcliplen`). The names PostgreSQL gives
/// identity and serial sequences (`ChooseRelationName(table, column, "seq")`), indexes and
/// constraints are built this way.
pub fn make_object_name(name1: &str, name2: &str, label: &str) -> String {
    let avail = MAX_IDENT_BYTES.saturating_sub(label.len() + 2);
    let (mut n1, mut n2) = (name1.len(), name2.len());
    while n1 + n2 > avail {
        if n1 > n2 {
            n1 -= 1;
        } else {
            n2 -= 1;
        }
    }
    fn clip(s: &str, mut n: usize) -> &str {
        while !s.is_char_boundary(n) {
            n -= 1;
        }
        &s[..n]
    }
    format!("{}_{}_{label}", clip(name1, n1), clip(name2, n2))
}

/// PostgreSQL's numbering of a name it chooses itself (`ChooseRelationName`,
/// `ChooseConstraintName` in `src/backend/commands/indexcmds.c` and `pg_constraint.c`): the
/// first of `candidate(0)`, `candidate(1)`, ... that `taken` does not reject, where candidate
/// `k > 0` carries the number `k` after its label (`t_x_check1`). None after 1000 tries.
pub fn first_free(
    candidate: impl Fn(usize) -> String,
    mut taken: impl FnMut(&str) -> bool,
) -> Option<String> {
    (0..1000).map(candidate).find(|n| !taken(n))
}

/// The candidates [`first_free`] tries for a name `<table><rest>` (`rest` = `_x_check`): the
/// table's name cut so that the whole fits in 63 bytes, then `rest` numbered.
pub fn numbered(table: &str, rest: &str, k: usize) -> String {
    match k {
        0 => fit_name(table, rest),
        k => fit_name(table, &format!("{rest}{k}")),
    }
}

/// Wraps a function body in a dollar quote whose tag does not occur in the body.
pub fn dollar_quote(body: &str) -> String {
    let mut tag = String::from("$hotswap$");
    let mut n = 0;
    while body.contains(&tag) {
        n += 1;
        tag = format!("$hotswap{n}$");
    }
    format!("{tag}{body}{tag}")
}

/// Renders one `reloptions` entry (`name=value`) for `SET (...)`, with `prefix` (`toast.`).
pub fn reloption_sql(opt: &str, prefix: &str) -> crate::error::Result<String> {
    let (name, value) = opt
        .split_once('=')
        .ok_or_else(|| crate::error::Error::failed(format!("unexpected storage option {opt:?}")))?;
    if name.is_empty()
        || !name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
    {
        return Err(crate::error::Error::failed(format!(
            "unexpected storage option name {name:?}"
        )));
    }
    Ok(format!("{prefix}{name} = {}", literal(value)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn object_names_are_cut_as_postgresql_cuts_them() {
        // The names PostgreSQL 15 gave these identity columns' sequences.
        assert_eq!(make_object_name("t", "id", "seq"), "t_id_seq");
        assert_eq!(
            make_object_name(&"a".repeat(60), &"b".repeat(10), "seq"),
            format!("{}_{}_seq", "a".repeat(48), "b".repeat(10))
        );
        let e = "é".repeat(31);
        assert_eq!(
            make_object_name(&e, "c", "seq"),
            format!("{}_c_seq", "é".repeat(28))
        );
        assert_eq!(
            make_object_name(&e, &"d".repeat(45), "seq1"),
            format!("{}_{}_seq1", "é".repeat(14), "d".repeat(28))
        );
    }

    #[test]
    fn quotes_every_identifier() {
        assert_eq!(Ident::new("plain").to_string(), "\"plain\"");
        assert_eq!(
            Ident::new("Weird \"Name\" tbl").to_string(),
            "\"Weird \"\"Name\"\" tbl\""
        );
        assert_eq!(Ident::new("select").to_string(), "\"select\"");
        assert_eq!(Ident::new("größe").to_string(), "\"größe\"");
    }

    #[test]
    fn qualified_name_quotes_both_parts() {
        let q = QualifiedName::new("App", "a\"b");
        assert_eq!(q.to_string(), "\"App\".\"a\"\"b\"");
        assert_eq!(q.human(), "App.a\"b");
    }

    #[test]
    fn literal_escapes_quotes_and_backslashes() {
        assert_eq!(literal("it's"), "'it''s'");
        assert_eq!(literal("a\\b"), " E'a\\\\b'");
    }

    #[test]
    fn millis_rendering() {
        use std::time::Duration;
        assert_eq!(pg_millis(Duration::from_millis(100)), "100ms");
        assert_eq!(pg_millis(Duration::from_micros(10)), "1ms");
        assert_eq!(pg_millis(Duration::from_secs(30)), "30000ms");
    }

    #[test]
    fn dollar_quote_avoids_tags_in_the_body() {
        assert_eq!(dollar_quote("x"), "$hotswap$x$hotswap$");
        let q = dollar_quote("a \"$hotswap$\" b");
        assert!(q.starts_with("$hotswap1$"));
        assert!(q.ends_with("$hotswap1$"));
    }

    #[test]
    fn fit_name_respects_63_bytes_and_char_boundaries() {
        let long = "ä".repeat(40); // 80 bytes
        let fitted = fit_name(&long, "_new");
        assert!(fitted.len() <= MAX_IDENT_BYTES);
        assert!(fitted.ends_with("_new"));
        assert_eq!(fit_name("short", "_new"), "short_new");
    }
}
