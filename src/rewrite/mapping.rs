//! The column mapping: for every shadow column, the expression that produces it from a source
//! row (DESIGN.md, phase 2).
//!
//! Same name -> the column itself, or an explicit cast when the type changed; `--map col=expr`
//! for renamed and computed columns; new columns take their default; generated columns are
//! computed by the server. Casts go to the type *without* its modifier (`pg_catalog.varchar`,
//! not `character varying(10)`; `pg_catalog.bpchar`, never `character`, which SQL reads as
//! `char(1)`), so that the binary receive function of the target column applies the modifier
//! and rejects a value that does not fit, as ALTER TABLE's assignment coercion would, instead of
//! an explicit cast silently truncating it (issue 21).
//!
//! `ALTER COLUMN c TYPE t USING expr` (issue 13): the column takes `CAST((expr) AS t)`, exactly
//! the expression PostgreSQL's ALTER evaluates for each row — the expression, not a cast of the
//! old value, even when the type stays the same. A USING on a row-identity column is refused:
//! replay finds a changed row in the shadow by its key converted to the new type, and an
//! arbitrary expression cannot be followed back that way.

use crate::db::catalog::Column;
use crate::db::ident::Ident;
use crate::error::{Error, Result};
use crate::rewrite::alter_text::TypeChange;
use crate::rewrite::plan::{ColumnSource, KeyColumn, MappedColumn};

/// A parsed `--map col=expr`.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct MapArg {
    pub column: Ident,
    pub expr: String,
}

/// Parses `col=expr` or `"Quoted Col"=expr`.
pub fn parse_map(arg: &str) -> Result<MapArg, String> {
    let arg = arg.trim_start();
    let (column, rest) = if let Some(stripped) = arg.strip_prefix('"') {
        let mut name = String::new();
        let mut chars = stripped.char_indices().peekable();
        let mut end = None;
        while let Some((i, c)) = chars.next() {
            if c == '"' {
                if matches!(chars.peek(), Some((_, '"'))) {
                    name.push('"');
                    chars.next();
                } else {
                    end = Some(i + 1);
                    break;
                }
            } else {
                name.push(c);
            }
        }
        let end = end.ok_or_else(|| format!("--map {arg:?}: unterminated quoted column name"))?;
        (name, stripped[end..].trim_start())
    } else {
        let eq = arg
            .find('=')
            .ok_or_else(|| format!("--map {arg:?}: expected column=expression"))?;
        (arg[..eq].trim().to_string(), &arg[eq..])
    };
    let expr = rest
        .strip_prefix('=')
        .ok_or_else(|| format!("--map {arg:?}: expected column=expression"))?
        .trim();
    if column.is_empty() {
        return Err(format!("--map {arg:?}: the column name is empty"));
    }
    if expr.is_empty() {
        return Err(format!("--map {arg:?}: the expression is empty"));
    }
    Ok(MapArg {
        column: Ident::new(column),
        expr: expr.to_string(),
    })
}

/// The mapping, the row-identity columns with their casts, and the source columns dropped.
#[derive(Debug)]
pub struct Built {
    pub columns: Vec<MappedColumn>,
    pub key: Vec<KeyColumn>,
    pub dropped: Vec<Ident>,
    pub overriding: bool,
}

/// Builds the mapping from the source and shadow columns. `table` names the table in messages.
///
/// `origins` lists the shadow's columns as they were before the ALTER (attnum, name — the same
/// names as the source's, since the shadow is created `LIKE` it). A column keeps its attnum
/// through `RENAME COLUMN` and `ALTER COLUMN TYPE`, so the attnum tells which source column a
/// shadow column comes from: a rename carries its data, and a source column with no
/// descendant was removed by an explicit `DROP COLUMN`. Without origins, columns match by name.
pub fn build(
    table: &str,
    source: &[Column],
    shadow: &[Column],
    origins: Option<&[(i32, Ident)]>,
    key: &[Ident],
    maps: &[MapArg],
    type_changes: &[TypeChange],
) -> Result<Built> {
    let using_of = |src: &Ident| {
        type_changes
            .iter()
            .find(|t| &t.column == src)
            .and_then(|t| t.using.as_deref())
    };
    for t in type_changes {
        let Some(u) = t.using.as_deref() else {
            continue;
        };
        if let Some(word) = crate::rewrite::alter_text::time_dependent_word(u) {
            return Err(Error::refused(format!(
                "cannot rewrite table {table}: the USING expression of column {:?} calls {word}; \
                 PostgreSQL's ALTER evaluates it at one moment for every row, while pg-hotswap \
                 copies in many transactions and replays changes later, so the values would differ",
                t.column.as_str()
            ))
            .with_state("nothing was changed")
            .with_next(
                "write the moment as a literal in the USING expression (e.g. \
                 coalesce(created, '2026-01-01 00:00:00+00')), or run this change as a blocking ALTER TABLE",
            ));
        }
    }
    for k in key {
        if let Some(u) = using_of(k) {
            return Err(Error::refused(format!(
                "cannot rewrite table {table}: the ALTER changes row identity column {:?} with USING {u}; pg-hotswap finds the new row of a changed key by converting the key, which an arbitrary expression does not allow",
                k.as_str()
            ))
            .with_state("nothing was changed")
            .with_next(
                "change the key's type without USING (a plain cast), or rewrite the other columns in this run and the key in a blocking ALTER TABLE",
            ));
        }
    }
    let origin_of = |col: &Column| -> Option<Ident> {
        match origins {
            Some(o) => o
                .iter()
                .find(|(n, _)| *n == col.num)
                .map(|(_, name)| name.clone()),
            None => Some(col.name.clone()),
        }
    };
    let descendant = |src: &Ident| shadow.iter().find(|c| origin_of(c).as_ref() == Some(src));
    for m in maps {
        let Some(target) = shadow.iter().find(|c| c.name == m.column) else {
            return Err(Error::usage(format!(
                "--map {}: the new table {table} has no column {:?}",
                m.column.as_str(),
                m.column.as_str()
            )));
        };
        if target.is_generated() {
            return Err(Error::usage(format!(
                "--map {}: column {:?} is a generated column; the server computes it",
                m.column.as_str(),
                m.column.as_str()
            )));
        }
        if key
            .iter()
            .any(|k| descendant(k).map(|c| &c.name) == Some(&m.column))
        {
            return Err(Error::usage(format!(
                "--map {}: column {:?} is part of the row identity of {table}; it must keep its \
                 values (a type change is fine, use --alter)",
                m.column.as_str(),
                m.column.as_str()
            )));
        }
    }
    let mut columns = Vec::with_capacity(shadow.len());
    let mut overriding = false;
    for col in shadow {
        let origin = origin_of(col);
        let src = origin
            .as_ref()
            .and_then(|o| source.iter().find(|c| &c.name == o && !c.is_generated()));
        let map = maps.iter().find(|m| m.column == col.name);
        let (source_kind, expr) = if col.is_generated() {
            (ColumnSource::Generated, None)
        } else if let Some(m) = map {
            (
                ColumnSource::Mapped {
                    expr: m.expr.clone(),
                },
                Some(format!("CAST(({}) AS {})", m.expr, col.base_type)),
            )
        } else if let Some((s, using)) = src.and_then(|s| using_of(&s.name).map(|u| (s, u))) {
            (
                ColumnSource::Using {
                    from: s.name.as_str().to_string(),
                    expr: using.to_string(),
                    to: col.type_name.clone(),
                },
                Some(format!("CAST(({using}) AS {})", col.base_type)),
            )
        } else if let Some(s) = src {
            let cast = s.type_oid != col.type_oid;
            let expr = if cast {
                format!("CAST({} AS {})", s.name, col.base_type)
            } else {
                s.name.to_string()
            };
            let kind = if s.name != col.name {
                ColumnSource::Renamed {
                    from: s.name.as_str().to_string(),
                    cast_to: cast.then(|| col.type_name.clone()),
                }
            } else if cast {
                ColumnSource::Cast {
                    from: s.type_name.clone(),
                    to: col.type_name.clone(),
                }
            } else {
                ColumnSource::Same
            };
            (kind, Some(expr))
        } else {
            (ColumnSource::Default, None)
        };
        if expr.is_some() && col.identity == "a" {
            overriding = true;
        }
        columns.push(MappedColumn {
            column: col.name.clone(),
            origin: src.map(|s| s.name.clone()),
            source: source_kind,
            expr,
        });
    }
    let mut key_cols = Vec::with_capacity(key.len());
    for k in key {
        let s = source
            .iter()
            .find(|c| &c.name == k)
            .ok_or_else(|| Error::failed(format!("row identity column {k} not found")))?;
        let t = descendant(k).ok_or_else(|| {
            Error::refused(format!(
                "cannot rewrite table {table}: the ALTER removes column {:?}, which is \
                 part of the row identity; pg-hotswap needs it to match rows",
                k.as_str()
            ))
            .with_state("nothing was changed")
        })?;
        if t.is_generated() {
            return Err(Error::refused(format!(
                "cannot rewrite table {table}: row identity column {:?} becomes a generated column",
                k.as_str()
            )));
        }
        key_cols.push(KeyColumn {
            name: k.clone(),
            shadow_name: t.name.clone(),
            source_type: s.type_name.clone(),
            shadow_cast: (s.type_oid != t.type_oid).then(|| t.base_type.clone()),
            shadow_collation: None,
        });
    }
    let dropped = source
        .iter()
        .filter(|s| !s.is_generated())
        .filter(|s| descendant(&s.name).is_none())
        .map(|s| s.name.clone())
        .collect();
    Ok(Built {
        columns,
        key: key_cols,
        dropped,
        overriding,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn col(name: &str, ty: &str, oid: u32) -> Column {
        Column {
            num: 1,
            name: Ident::new(name),
            type_name: ty.into(),
            base_type: ty.split('(').next().unwrap().into(),
            type_oid: oid,
            not_null: false,
            generated: String::new(),
            identity: String::new(),
            default_expr: None,
            comment: None,
            stat_target: -1,
            options: Vec::new(),
        }
    }

    #[test]
    fn parse_map_plain_and_quoted() {
        let m = parse_map("full_name = first || ' ' || last").unwrap();
        assert_eq!(m.column.as_str(), "full_name");
        assert_eq!(m.expr, "first || ' ' || last");
        let m = parse_map("\"Odd \"\"Col\"\"\"=a = b").unwrap();
        assert_eq!(m.column.as_str(), "Odd \"Col\"");
        assert_eq!(m.expr, "a = b");
        assert!(parse_map("noequals").is_err());
        assert!(parse_map("=x").is_err());
        assert!(parse_map("c=").is_err());
        assert!(parse_map("\"unterminated=x").is_err());
    }

    #[test]
    fn same_cast_mapped_default_and_dropped() {
        let src = vec![
            col("id", "integer", 23),
            col("v", "character varying(10)", 1043),
            col("old", "text", 25),
        ];
        let sh = vec![
            col("id", "bigint", 20),
            col("v", "character varying(5)", 1043),
            col("renamed", "text", 25),
            col("flags", "integer", 23),
        ];
        let maps = vec![parse_map("renamed=old").unwrap()];
        let b = build("t", &src, &sh, None, &[Ident::new("id")], &maps, &[]).unwrap();
        assert_eq!(b.columns[0].expr.as_deref(), Some("CAST(\"id\" AS bigint)"));
        // Same type, different modifier: no cast, the receive function applies the modifier.
        assert_eq!(b.columns[1].source, ColumnSource::Same);
        assert_eq!(b.columns[2].expr.as_deref(), Some("CAST((old) AS text)"));
        assert_eq!(b.columns[3].source, ColumnSource::Default);
        assert_eq!(b.dropped, vec![Ident::new("old")]);
        assert_eq!(b.key[0].shadow_cast.as_deref(), Some("bigint"));
    }

    #[test]
    fn renamed_columns_are_found_by_attnum() {
        let mut a = col("a", "integer", 23);
        a.num = 1;
        let mut id = col("id", "integer", 23);
        id.num = 2;
        let mut gone = col("gone", "text", 25);
        gone.num = 3;
        let src = vec![a.clone(), id.clone(), gone];
        // After "RENAME COLUMN a TO b, ALTER COLUMN id TYPE bigint, DROP COLUMN gone".
        let mut b = col("b", "integer", 23);
        b.num = 1;
        let mut id2 = col("id", "bigint", 20);
        id2.num = 2;
        let sh = vec![b, id2];
        let origins = vec![
            (1, Ident::new("a")),
            (2, Ident::new("id")),
            (3, Ident::new("gone")),
        ];
        let built = build(
            "t",
            &src,
            &sh,
            Some(&origins),
            &[Ident::new("id")],
            &[],
            &[],
        )
        .unwrap();
        assert_eq!(built.columns[0].expr.as_deref(), Some("\"a\""));
        assert!(matches!(
            built.columns[0].source,
            ColumnSource::Renamed { .. }
        ));
        assert_eq!(built.columns[0].origin, Some(Ident::new("a")));
        assert_eq!(built.dropped, vec![Ident::new("gone")]);
        assert_eq!(built.key[0].shadow_name, Ident::new("id"));
    }

    #[test]
    fn map_on_key_or_unknown_column_is_refused() {
        let src = vec![col("id", "integer", 23)];
        let sh = vec![col("id", "integer", 23)];
        let k = [Ident::new("id")];
        assert!(build(
            "t",
            &src,
            &sh,
            None,
            &k,
            &[parse_map("id=id+1").unwrap()],
            &[]
        )
        .is_err());
        assert!(build(
            "t",
            &src,
            &sh,
            None,
            &k,
            &[parse_map("nope=1").unwrap()],
            &[]
        )
        .is_err());
    }

    #[test]
    fn dropping_a_key_column_is_refused() {
        let src = vec![col("id", "integer", 23), col("x", "integer", 23)];
        let sh = vec![col("x", "integer", 23)];
        let e = build("t", &src, &sh, None, &[Ident::new("id")], &[], &[]).unwrap_err();
        assert!(e.to_string().contains("row identity"));
    }

    #[test]
    fn using_replaces_the_cast_even_for_the_same_type() {
        let src = vec![
            col("id", "integer", 23),
            col("amount", "numeric(12,2)", 1700),
            col("name", "text", 25),
        ];
        let mut sh = src.clone();
        sh[1] = col("amount", "bigint", 20);
        sh[1].base_type = "pg_catalog.int8".into();
        let changes = crate::rewrite::alter_text::type_changes(
            "ALTER COLUMN amount TYPE bigint USING (amount * 100)::bigint, \
             ALTER COLUMN name TYPE text USING upper(name)",
        )
        .unwrap();
        let b = build("t", &src, &sh, None, &[Ident::new("id")], &[], &changes).unwrap();
        assert_eq!(
            b.columns[1].expr.as_deref(),
            Some("CAST(((amount * 100)::bigint) AS pg_catalog.int8)")
        );
        assert_eq!(
            b.columns[2].expr.as_deref(),
            Some("CAST((upper(name)) AS text)")
        );
        assert!(matches!(b.columns[2].source, ColumnSource::Using { .. }));
        // On the key: refused before anything is created.
        let changes =
            crate::rewrite::alter_text::type_changes("ALTER COLUMN id TYPE bigint USING id * 10")
                .unwrap();
        let e = build("t", &src, &sh, None, &[Ident::new("id")], &[], &changes).unwrap_err();
        assert!(e.to_string().contains("USING"), "{e}");
    }
}
