//! The text of `--alter`: a lexer that knows PostgreSQL's quoting rules, the split into actions,
//! the `ALTER COLUMN ... TYPE ... USING <expr>` actions whose expressions the mapping must
//! follow, and the constraint and index names the actions refer to ([`object_names`]: the
//! shadow and the sample clone carry other names than the source, issue 15).
//!
//! Why the tool reads the text at all (issue 13): the ALTER runs on the *empty* shadow, where a
//! `USING` expression has no row to act on, and PostgreSQL keeps no trace of it in the catalog.
//! Without it the mapping fell back to a plain cast and wrote other values than PostgreSQL's own
//! ALTER would (`numeric 1.25 USING (amount * 100)::bigint` became 1, not 125). The server is
//! still the judge of the SQL: the ALTER is executed as written on the shadow (and on a sampled
//! clone by `oracle`), this module only finds the pieces; anything it misreads shows up as a
//! difference in the sample check, never as a silent wrong value.
//!
//! The lexer follows the lexical rules of PostgreSQL's scanner (scan.l) for what can hide a
//! comma, a `;` or a keyword: `'...'` strings with `''` (and `E'...'` with backslash escapes),
//! `"..."` identifiers with `""`, dollar quotes `$tag$...$tag$`, `--` and nested `/* */`
//! comments, and parentheses / brackets.

use crate::db::ident::Ident;

/// One lexical token, as a byte range of the input and its kind.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// An unquoted word: keyword or identifier (case-folded when compared).
    Word,
    /// A `"quoted identifier"`.
    QuotedIdent,
    /// A string literal or dollar-quoted string.
    Str,
    /// A number.
    Number,
    /// `(` `[`
    Open,
    /// `)` `]`
    Close,
    Comma,
    Semicolon,
    /// Any other operator or punctuation.
    Other,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Token {
    pub kind: Kind,
    pub start: usize,
    pub end: usize,
}

/// Why a text could not be read.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LexError(pub String);

impl std::fmt::Display for LexError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

fn is_ident_start(c: char) -> bool {
    c.is_alphabetic() || c == '_' || !c.is_ascii()
}

fn is_ident_cont(c: char) -> bool {
    is_ident_start(c) || c.is_ascii_digit() || c == '$'
}

/// Splits `sql` into tokens, skipping white space and comments.
pub fn tokens(sql: &str) -> Result<Vec<Token>, LexError> {
    let b = sql.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    let at = |i: usize| -> Option<char> { sql.get(i..).and_then(|s| s.chars().next()) };
    while let Some(c) = at(i) {
        let start = i;
        if c.is_whitespace() {
            i += c.len_utf8();
            continue;
        }
        if sql[i..].starts_with("--") {
            i = sql[i..].find('\n').map(|n| i + n + 1).unwrap_or(sql.len());
            continue;
        }
        if sql[i..].starts_with("/*") {
            let mut depth = 0usize;
            loop {
                if sql[i..].starts_with("/*") {
                    depth += 1;
                    i += 2;
                } else if sql[i..].starts_with("*/") {
                    depth -= 1;
                    i += 2;
                    if depth == 0 {
                        break;
                    }
                } else if let Some(c) = at(i) {
                    i += c.len_utf8();
                } else {
                    return Err(LexError("unterminated /* comment".into()));
                }
            }
            continue;
        }
        // E'...' (backslash escapes), U&'...', B'...', X'...', N'...': a prefix, then a string.
        let prefixed = matches!(c, 'e' | 'E' | 'b' | 'B' | 'x' | 'X' | 'n' | 'N')
            && b.get(i + 1) == Some(&b'\'');
        let unicode = matches!(c, 'u' | 'U')
            && b.get(i + 1) == Some(&b'&')
            && matches!(b.get(i + 2), Some(b'\'') | Some(b'"'));
        if c == '\'' || prefixed || (unicode && b.get(i + 2) == Some(&b'\'')) {
            let backslash = matches!(c, 'e' | 'E');
            i += if c == '\'' {
                0
            } else if prefixed {
                1
            } else {
                2
            };
            i = end_of_quoted(sql, i, '\'', backslash)
                .ok_or_else(|| LexError("unterminated string literal".into()))?;
            out.push(Token {
                kind: Kind::Str,
                start,
                end: i,
            });
            continue;
        }
        if c == '"' || unicode {
            if unicode {
                i += 2;
            }
            i = end_of_quoted(sql, i, '"', false)
                .ok_or_else(|| LexError("unterminated quoted identifier".into()))?;
            out.push(Token {
                kind: Kind::QuotedIdent,
                start,
                end: i,
            });
            continue;
        }
        if c == '$' {
            // $tag$ ... $tag$ (tag: identifier characters but no leading digit, or empty).
            let rest = &sql[i + 1..];
            let tag_len = rest
                .char_indices()
                .take_while(|(n, ch)| {
                    if *n == 0 {
                        is_ident_start(*ch)
                    } else {
                        is_ident_start(*ch) || ch.is_ascii_digit()
                    }
                })
                .map(|(n, ch)| n + ch.len_utf8())
                .last()
                .unwrap_or(0);
            if rest[tag_len..].starts_with('$') {
                let delim = &sql[i..i + tag_len + 2];
                let body = i + delim.len();
                let close = sql[body..]
                    .find(delim)
                    .ok_or_else(|| LexError(format!("unterminated dollar quote {delim}")))?;
                i = body + close + delim.len();
                out.push(Token {
                    kind: Kind::Str,
                    start,
                    end: i,
                });
                continue;
            }
            // $1: a parameter; treat as a word.
            i += 1;
            while at(i).is_some_and(|ch| ch.is_ascii_digit()) {
                i += 1;
            }
            out.push(Token {
                kind: Kind::Other,
                start,
                end: i,
            });
            continue;
        }
        if is_ident_start(c) {
            while let Some(ch) = at(i) {
                if is_ident_cont(ch) {
                    i += ch.len_utf8();
                } else {
                    break;
                }
            }
            out.push(Token {
                kind: Kind::Word,
                start,
                end: i,
            });
            continue;
        }
        if c.is_ascii_digit() || (c == '.' && at(i + 1).is_some_and(|d| d.is_ascii_digit())) {
            while let Some(ch) = at(i) {
                if ch.is_ascii_alphanumeric() || ch == '.' || ch == '_' {
                    i += 1;
                } else {
                    break;
                }
            }
            out.push(Token {
                kind: Kind::Number,
                start,
                end: i,
            });
            continue;
        }
        let kind = match c {
            '(' | '[' => Kind::Open,
            ')' | ']' => Kind::Close,
            ',' => Kind::Comma,
            ';' => Kind::Semicolon,
            _ => Kind::Other,
        };
        i += c.len_utf8();
        out.push(Token {
            kind,
            start,
            end: i,
        });
    }
    Ok(out)
}

/// The index just past the closing `quote` of a quoted token whose opening quote is at `i`.
fn end_of_quoted(sql: &str, i: usize, quote: char, backslash: bool) -> Option<usize> {
    let mut chars = sql[i + 1..].char_indices().peekable();
    while let Some((n, c)) = chars.next() {
        if backslash && c == '\\' {
            chars.next();
        } else if c == quote {
            if chars.peek().map(|(_, c)| *c) == Some(quote) {
                chars.next();
            } else {
                return Some(i + 1 + n + 1);
            }
        }
    }
    None
}

/// True when `sql` has a `;` outside quotes and comments: more than one statement.
pub fn has_top_level_semicolon(sql: &str) -> bool {
    match tokens(sql) {
        Ok(t) => t.iter().any(|t| t.kind == Kind::Semicolon),
        // Unreadable text is refused by the server later; a `;` inside an unterminated quote
        // does not separate statements either.
        Err(_) => false,
    }
}

/// The actions of an ALTER TABLE (the text after `ALTER TABLE name`), split at the commas
/// outside parentheses, each as its token list and its text.
pub fn actions(sql: &str) -> Result<Vec<(Vec<Token>, &str)>, LexError> {
    let toks = tokens(sql)?;
    let mut out = Vec::new();
    let mut depth = 0i32;
    let mut current: Vec<Token> = Vec::new();
    let mut flush = |current: &mut Vec<Token>| {
        if let (Some(a), Some(z)) = (current.first().copied(), current.last().copied()) {
            out.push((std::mem::take(current), &sql[a.start..z.end]));
        }
    };
    for t in toks {
        match t.kind {
            Kind::Open => depth += 1,
            Kind::Close => depth -= 1,
            Kind::Comma if depth == 0 => {
                flush(&mut current);
                continue;
            }
            _ => {}
        }
        current.push(t);
    }
    flush(&mut current);
    Ok(out)
}

/// The storage options the ALTER's own `SET (...)` and `RESET (...)` actions name (not a
/// column's `ALTER COLUMN c SET (...)`), as (a `toast.` one, name in lower case), in order.
/// `SET WITHOUT CLUSTER`, `SET TABLESPACE` and the like name none.
pub fn storage_option_names(alter: &str) -> Result<Vec<(bool, String)>, LexError> {
    let mut out = Vec::new();
    for (toks, text) in actions(alter)? {
        let first = toks.first();
        if !(is_word(alter, first, "set") || is_word(alter, first, "reset"))
            || toks.get(1).map(|t| t.kind) != Some(Kind::Open)
        {
            continue;
        }
        let (Some(open), Some(close)) = (text.find('('), text.rfind(')')) else {
            continue;
        };
        for item in text[open + 1..close].split(',') {
            let name = item
                .split_once('=')
                .map_or(item, |(n, _)| n)
                .trim()
                .to_lowercase();
            match name.strip_prefix("toast.") {
                Some(n) => out.push((true, n.trim().to_string())),
                None if !name.is_empty() => out.push((false, name)),
                None => {}
            }
        }
    }
    Ok(out)
}

/// A column name as PostgreSQL reads it: unquoted names fold to lower case, quoted ones keep
/// their spelling with `""` undoubled.
pub(crate) fn ident_of(sql: &str, t: &Token) -> Option<Ident> {
    let text = &sql[t.start..t.end];
    match t.kind {
        Kind::Word => Some(Ident::new(text.to_lowercase())),
        Kind::QuotedIdent if text.starts_with('"') => {
            Some(Ident::new(text[1..text.len() - 1].replace("\"\"", "\"")))
        }
        _ => None,
    }
}

fn is_word(sql: &str, t: Option<&Token>, word: &str) -> bool {
    t.is_some_and(|t| t.kind == Kind::Word && sql[t.start..t.end].eq_ignore_ascii_case(word))
}

/// An `ALTER [COLUMN] c [SET DATA] TYPE t [COLLATE x] [USING expr]` action.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TypeChange {
    pub column: Ident,
    /// The `USING` expression as written, or None (then PostgreSQL casts the column itself).
    pub using: Option<String>,
}

/// Every column type change among the actions of `alter`, with its `USING` expression.
pub fn type_changes(alter: &str) -> Result<Vec<TypeChange>, LexError> {
    let mut out = Vec::new();
    for (toks, _) in actions(alter)? {
        let t = |i: usize| toks.get(i);
        if !is_word(alter, t(0), "alter") {
            continue;
        }
        // ALTER [COLUMN] name
        // COLUMN is optional: "ALTER COLUMN type TYPE int" alters a column named "type", and
        // "ALTER column TYPE int" one named "column". The word after the name tells.
        let i = if is_word(alter, t(1), "column")
            && (is_word(alter, t(3), "type") || is_word(alter, t(3), "set"))
        {
            2
        } else {
            1
        };
        let Some(column) = t(i).and_then(|x| ident_of(alter, x)) else {
            continue;
        };
        let mut i = i + 1;
        if is_word(alter, t(i), "set") && is_word(alter, t(i + 1), "data") {
            i += 2;
        }
        if !is_word(alter, t(i), "type") {
            continue;
        }
        // USING at depth 0 after TYPE: the rest of the action is the expression.
        let mut depth = 0;
        let mut using = None;
        for (n, x) in toks.iter().enumerate().skip(i + 1) {
            match x.kind {
                Kind::Open => depth += 1,
                Kind::Close => depth -= 1,
                Kind::Word if depth == 0 && is_word(alter, Some(x), "using") => {
                    let first = toks.get(n + 1).ok_or_else(|| {
                        LexError(format!("USING without an expression for column {column}"))
                    })?;
                    let last = toks.last().expect("non-empty: holds `first`");
                    using = Some(alter[first.start..last.end].to_string());
                    break;
                }
                _ => {}
            }
        }
        out.push(TypeChange { column, using });
    }
    Ok(out)
}

/// Functions and SQL value functions whose result depends on when they are evaluated (the
/// transaction's start, or the clock).
const TIME_DEPENDENT: [&str; 10] = [
    "now",
    "current_timestamp",
    "current_date",
    "current_time",
    "localtime",
    "localtimestamp",
    "transaction_timestamp",
    "statement_timestamp",
    "clock_timestamp",
    "timeofday",
];

/// The first word of `expr` (outside quotes and comments) that names a time-dependent function
/// (`now()`, `current_timestamp`...), lower-cased. PostgreSQL's ALTER evaluates such an
/// expression at one moment for every row; an online copy spread over many transactions cannot
/// (issue 13, found by a fresh tester).
pub fn time_dependent_word(expr: &str) -> Option<String> {
    let toks = tokens(expr).ok()?;
    toks.iter()
        .filter(|t| t.kind == Kind::Word)
        .map(|t| expr[t.start..t.end].to_lowercase())
        .find(|w| TIME_DEPENDENT.contains(&w.as_str()))
}

/// What a name in an action refers to (see [`object_names`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NameRole {
    /// An existing constraint or index of the table (`DROP CONSTRAINT x`, `CLUSTER ON x`,
    /// `... USING INDEX x`, the old name of `RENAME CONSTRAINT x TO y`...).
    Existing,
    /// The name a new index-backed constraint takes (`ADD CONSTRAINT x PRIMARY KEY|UNIQUE|
    /// EXCLUDE ...`): it names an index too, and index names are unique in a schema.
    NewKey,
    /// The new name of `RENAME CONSTRAINT x TO y`; the index of an index-backed `x` takes it.
    RenamedTo,
}

/// One constraint or index name written in an ALTER's actions: where (a byte range of the
/// text), the name as PostgreSQL reads it, and what it refers to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NameRef {
    pub start: usize,
    pub end: usize,
    pub name: Ident,
    pub role: NameRole,
}

/// The constraint and index names among the actions of `alter` (issue 15: the ALTER names the
/// source's constraints as the user sees them, while the shadow's index-backed constraints
/// carry temporary names, since index names are unique in a schema). The forms are those of
/// PostgreSQL's ALTER TABLE synopsis that name a constraint or an index:
/// `DROP CONSTRAINT [IF EXISTS] x`, `ALTER CONSTRAINT x`, `VALIDATE CONSTRAINT x`,
/// `RENAME CONSTRAINT x TO y`, `CLUSTER ON x`, `REPLICA IDENTITY USING INDEX x`,
/// `ADD [CONSTRAINT c] PRIMARY KEY | UNIQUE USING INDEX x`, and the `c` of
/// `ADD CONSTRAINT c PRIMARY KEY | UNIQUE | EXCLUDE`.
pub fn object_names(alter: &str) -> Result<Vec<NameRef>, LexError> {
    let mut out = Vec::new();
    for (toks, _) in actions(alter)? {
        let w = |i: usize, word: &str| is_word(alter, toks.get(i), word);
        let mut push = |i: usize, role: NameRole| {
            if let Some(t) = toks.get(i) {
                if let Some(name) = ident_of(alter, t) {
                    out.push(NameRef {
                        start: t.start,
                        end: t.end,
                        name,
                        role,
                    });
                }
            }
        };
        if w(0, "drop") && w(1, "constraint") {
            push(
                if w(2, "if") && w(3, "exists") { 4 } else { 2 },
                NameRole::Existing,
            );
        } else if (w(0, "alter") || w(0, "validate")) && w(1, "constraint") {
            push(2, NameRole::Existing);
        } else if w(0, "rename") && w(1, "constraint") && w(3, "to") {
            push(2, NameRole::Existing);
            push(4, NameRole::RenamedTo);
        } else if w(0, "cluster") && w(1, "on") {
            push(2, NameRole::Existing);
        } else if w(0, "replica") && w(1, "identity") && w(2, "using") && w(3, "index") {
            push(4, NameRole::Existing);
        } else if w(0, "add") {
            let kind_at = if w(1, "constraint") {
                let key = w(3, "primary") || w(3, "unique") || w(3, "exclude");
                if key {
                    push(2, NameRole::NewKey);
                }
                3
            } else {
                1
            };
            // `PRIMARY KEY USING INDEX x` / `UNIQUE USING INDEX x` (not `USING INDEX TABLESPACE`).
            let after = if w(kind_at, "primary") && w(kind_at + 1, "key") {
                kind_at + 2
            } else if w(kind_at, "unique") {
                kind_at + 1
            } else {
                continue;
            };
            if w(after, "using") && w(after + 1, "index") && !w(after + 2, "tablespace") {
                push(after + 2, NameRole::Existing);
            }
        }
    }
    Ok(out)
}

/// The first `DROP ... CASCADE` action of `alter`, as written. PostgreSQL's CASCADE drops
/// objects that depend on what is dropped (other tables' foreign keys, views); on the shadow
/// nothing depends on anything, so the run could not do what the ALTER says (issue 15).
pub fn drop_cascade(alter: &str) -> Option<String> {
    actions(alter).ok()?.into_iter().find_map(|(toks, text)| {
        let first = is_word(alter, toks.first(), "drop");
        let last = is_word(alter, toks.last(), "cascade");
        (first && last).then(|| text.to_string())
    })
}

/// `alter` with each name of `refs` for which `rename` gives a new (already quoted) spelling
/// replaced by it; the rest of the text unchanged.
pub fn replace_names(
    alter: &str,
    refs: &[NameRef],
    mut rename: impl FnMut(&NameRef) -> Option<String>,
) -> String {
    let mut out = String::with_capacity(alter.len());
    let mut at = 0;
    let mut sorted: Vec<&NameRef> = refs.iter().collect();
    sorted.sort_by_key(|r| r.start);
    for r in sorted {
        if let Some(new) = rename(r) {
            out.push_str(&alter[at..r.start]);
            out.push_str(&new);
            at = r.end;
        }
    }
    out.push_str(&alter[at..]);
    out
}

/// `alter` as a copy of the table must read it when the copy's index-backed constraints and
/// indexes carry other names than the source's (issue 15): each name of `existing` (the
/// source's name, the copy's name) is replaced by the copy's; the name of a new index-backed
/// constraint, and the new name of a renamed one, by `fresh(n)` (the n-th such name), so that
/// it cannot collide with the source's index of that name in the same schema. Returns the text
/// and the (fresh name, name the user wrote) pairs, in order. Text the lexer cannot read is
/// returned unchanged (the server judges it).
pub fn translate_names(
    alter: &str,
    existing: &[(Ident, Ident)],
    mut fresh: impl FnMut(usize) -> Ident,
) -> (String, Vec<(Ident, Ident)>) {
    let Ok(refs) = object_names(alter) else {
        return (alter.to_string(), Vec::new());
    };
    let mut map: Vec<(Ident, Ident)> = existing.to_vec();
    let mut created = Vec::new();
    let mut last_mapped = false;
    let mut new_name = |name: &Ident, map: &mut Vec<(Ident, Ident)>| {
        let tmp = fresh(created.len());
        created.push((tmp.clone(), name.clone()));
        map.push((name.clone(), tmp.clone()));
        tmp
    };
    let mut spelled = Vec::new();
    for r in &refs {
        let to = match r.role {
            NameRole::Existing => {
                // The latest binding: `DROP CONSTRAINT k, ADD CONSTRAINT k ..., CLUSTER ON k`
                // names the new `k`.
                let to = map
                    .iter()
                    .rev()
                    .find(|(from, _)| from == &r.name)
                    .map(|(_, t)| t.clone());
                last_mapped = to.is_some();
                to
            }
            NameRole::NewKey => Some(new_name(&r.name, &mut map)),
            NameRole::RenamedTo if last_mapped => Some(new_name(&r.name, &mut map)),
            NameRole::RenamedTo => None,
        };
        spelled.push(to.map(|t| t.to_string()));
    }
    let mut i = 0;
    let text = replace_names(alter, &refs, |_| {
        i += 1;
        spelled[i - 1].clone()
    });
    (text, created)
}

#[cfg(test)]
mod tests {
    #[test]
    fn storage_option_names_are_the_tables_set_and_reset_ones() {
        assert_eq!(
            storage_option_names(
                "SET (fillfactor = 40, TOAST.autovacuum_enabled=false), ALTER COLUMN a SET (n_distinct = 5), \
                 RESET (autovacuum_vacuum_scale_factor), SET WITHOUT CLUSTER, SET TABLESPACE x"
            )
            .unwrap(),
            vec![
                (false, "fillfactor".to_string()),
                (true, "autovacuum_enabled".to_string()),
                (false, "autovacuum_vacuum_scale_factor".to_string()),
            ]
        );
    }

    use super::*;

    fn tc(c: &str, u: Option<&str>) -> TypeChange {
        TypeChange {
            column: Ident::new(c),
            using: u.map(str::to_string),
        }
    }

    #[test]
    fn constraint_and_index_names_are_found_with_their_roles() {
        let a =
            "DROP CONSTRAINT account_pkey, ADD CONSTRAINT \"Acc PK\" PRIMARY KEY (tenant_id, id), \
                 drop constraint if exists u1, RENAME CONSTRAINT Old_U TO new_u, CLUSTER ON ix, \
                 REPLICA IDENTITY USING INDEX ri, ADD UNIQUE USING INDEX uix, \
                 ADD PRIMARY KEY (id) USING INDEX TABLESPACE ts, ADD CONSTRAINT c CHECK (id > 0), \
                 VALIDATE CONSTRAINT v, ALTER CONSTRAINT fk DEFERRABLE";
        let found: Vec<(String, NameRole)> = object_names(a)
            .unwrap()
            .into_iter()
            .map(|r| (r.name.as_str().to_string(), r.role))
            .collect();
        use NameRole::*;
        let want: Vec<(String, NameRole)> = [
            ("account_pkey", Existing),
            ("Acc PK", NewKey),
            ("u1", Existing),
            ("old_u", Existing),
            ("new_u", RenamedTo),
            ("ix", Existing),
            ("ri", Existing),
            ("uix", Existing),
            ("v", Existing),
            ("fk", Existing),
        ]
        .into_iter()
        .map(|(n, r)| (n.to_string(), r))
        .collect();
        assert_eq!(found, want);
    }

    #[test]
    fn names_translate_to_the_copy_and_new_keys_get_fresh_names() {
        let a = "DROP CONSTRAINT account_pkey, ADD CONSTRAINT account_pkey PRIMARY KEY (t, id), \
                 CLUSTER ON account_pkey, RENAME CONSTRAINT u TO u2, DROP CONSTRAINT chk";
        let existing = vec![
            (Ident::new("account_pkey"), Ident::new("hotswap_7_i0")),
            (Ident::new("u"), Ident::new("hotswap_7_i1")),
        ];
        let (text, created) =
            translate_names(a, &existing, |n| Ident::new(format!("hotswap_7_k{n}")));
        assert_eq!(
            text,
            "DROP CONSTRAINT \"hotswap_7_i0\", ADD CONSTRAINT \"hotswap_7_k0\" PRIMARY KEY (t, id), \
                 CLUSTER ON \"hotswap_7_k0\", RENAME CONSTRAINT \"hotswap_7_i1\" TO \"hotswap_7_k1\", DROP CONSTRAINT chk"
        );
        assert_eq!(
            created,
            vec![
                (Ident::new("hotswap_7_k0"), Ident::new("account_pkey")),
                (Ident::new("hotswap_7_k1"), Ident::new("u2")),
            ]
        );
    }

    #[test]
    fn the_latest_binding_of_a_name_wins() {
        let a =
            "DROP CONSTRAINT t_pkey, ADD CONSTRAINT t_pkey PRIMARY KEY (k, id), CLUSTER ON t_pkey";
        let existing = vec![(Ident::new("t_pkey"), Ident::new("hotswap_1_i0"))];
        let (text, _) = translate_names(a, &existing, |n| Ident::new(format!("hotswap_1_k{n}")));
        assert_eq!(
            text,
            "DROP CONSTRAINT \"hotswap_1_i0\", ADD CONSTRAINT \"hotswap_1_k0\" PRIMARY KEY (k, id), CLUSTER ON \"hotswap_1_k0\""
        );
    }

    #[test]
    fn drop_cascade_is_found() {
        assert_eq!(
            drop_cascade("ADD COLUMN c int, DROP CONSTRAINT p_pkey CASCADE").as_deref(),
            Some("DROP CONSTRAINT p_pkey CASCADE")
        );
        assert_eq!(
            drop_cascade("DROP COLUMN x RESTRICT, ADD COLUMN cascade int"),
            None
        );
        assert_eq!(drop_cascade("drop column \"cascade\""), None);
    }

    #[test]
    fn names_are_replaced_where_asked_only() {
        let a = "DROP CONSTRAINT account_pkey, ADD CONSTRAINT account_pkey PRIMARY KEY (a, id)";
        let refs = object_names(a).unwrap();
        let out = replace_names(a, &refs, |r| match r.role {
            NameRole::Existing => Some("hotswap_1_i0".into()),
            _ => None,
        });
        assert_eq!(
            out,
            "DROP CONSTRAINT hotswap_1_i0, ADD CONSTRAINT account_pkey PRIMARY KEY (a, id)"
        );
    }

    #[test]
    fn using_expressions_are_found_per_column() {
        let a = "ALTER COLUMN amount TYPE bigint USING (amount * 100)::bigint, \
                 ALTER state SET DATA TYPE order_state_v2 USING state::text::order_state_v2, \
                 ALTER COLUMN \"Odd, \"\"Col\"\"\" TYPE numeric(10, 2), ADD COLUMN n int DEFAULT 0";
        assert_eq!(
            type_changes(a).unwrap(),
            vec![
                tc("amount", Some("(amount * 100)::bigint")),
                tc("state", Some("state::text::order_state_v2")),
                tc("Odd, \"Col\"", None),
            ]
        );
    }

    #[test]
    fn quotes_comments_and_dollar_quotes_hide_commas_and_keywords() {
        let a = "ALTER COLUMN c TYPE text USING c || ', USING ' || $x$a, b; c$x$ -- , ALTER COLUMN d TYPE int\n \
                 /* , ALTER d TYPE int /* nested */ */ , ALTER \"D\" TYPE int USING E'\\', x'::int";
        assert_eq!(
            type_changes(a).unwrap(),
            vec![
                tc("c", Some("c || ', USING ' || $x$a, b; c$x$")),
                tc("D", Some("E'\\', x'::int")),
            ]
        );
    }

    #[test]
    fn collate_and_casts_in_using_stay_in_the_expression() {
        let a = "ALTER COLUMN Name TYPE text COLLATE \"C\" USING lower(Name) COLLATE \"C\"";
        assert_eq!(
            type_changes(a).unwrap(),
            vec![tc("name", Some("lower(Name) COLLATE \"C\""))]
        );
        // A column named "column" or "type".
        assert_eq!(
            type_changes("ALTER COLUMN type TYPE bigint").unwrap(),
            vec![tc("type", None)]
        );
        assert_eq!(
            type_changes("ALTER column TYPE bigint").unwrap(),
            vec![tc("column", None)]
        );
    }

    #[test]
    fn semicolons_only_count_outside_quotes() {
        assert!(!has_top_level_semicolon(
            "ALTER COLUMN id TYPE bigint, ADD COLUMN n text DEFAULT ';'"
        ));
        assert!(!has_top_level_semicolon(
            "ADD COLUMN n text DEFAULT $$a;b$$, ADD COLUMN m text DEFAULT E'\\';'"
        ));
        assert!(has_top_level_semicolon("ADD COLUMN n int; DROP TABLE x"));
        assert!(has_top_level_semicolon(
            "ADD COLUMN n text DEFAULT E'\\''; DROP TABLE x"
        ));
        assert!(!has_top_level_semicolon(
            "ADD COLUMN n int -- ; not a statement"
        ));
    }

    #[test]
    fn time_dependent_expressions_are_found() {
        assert_eq!(
            time_dependent_word("coalesce(created, NOW())").as_deref(),
            Some("now")
        );
        assert_eq!(
            time_dependent_word("created AT TIME ZONE 'UTC' + (CURRENT_DATE - d)").as_deref(),
            Some("current_date")
        );
        assert_eq!(time_dependent_word("'now'::text || x -- now()"), None);
        assert_eq!(time_dependent_word("(amount * 100)::bigint"), None);
    }

    #[test]
    fn unterminated_quotes_are_errors() {
        assert!(tokens("ALTER COLUMN a TYPE text USING 'x").is_err());
        assert!(tokens("ALTER COLUMN a TYPE text USING $q$x").is_err());
        assert!(tokens("/* open").is_err());
    }
}
