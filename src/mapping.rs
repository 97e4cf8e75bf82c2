//! The column mapping: for every shadow column, the expression that produces it from a source
//! row (DESIGN.md, phase 2).
//!
//! Same name -> the column itself, or an explicit cast when the type changed; `--map col=expr`
//! for renamed and computed columns; new columns take their default; generated columns are
//! computed by the server. Casts go to the type *without* its modifier (`character varying`,
//! not `character varying(10)`), so that the binary receive function of the target column
//! applies the modifier and rejects a value that does not fit, as ALTER TABLE would, instead of
//! an explicit cast silently truncating it.

use crate::catalog::Column;
use crate::error::{Error, Result};
use crate::ident::Ident;
use crate::plan::{ColumnSource, KeyColumn, MappedColumn};

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
pub fn build(
    table: &str,
    source: &[Column],
    shadow: &[Column],
    key: &[Ident],
    maps: &[MapArg],
) -> Result<Built> {
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
        if key.contains(&m.column) {
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
        let src = source
            .iter()
            .find(|c| c.name == col.name && !c.is_generated());
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
        } else if let Some(s) = src {
            if s.type_oid == col.type_oid {
                (ColumnSource::Same, Some(col.name.to_string()))
            } else {
                (
                    ColumnSource::Cast {
                        from: s.type_name.clone(),
                        to: col.type_name.clone(),
                    },
                    Some(format!("CAST({} AS {})", col.name, col.base_type)),
                )
            }
        } else {
            (ColumnSource::Default, None)
        };
        if expr.is_some() && col.identity == "a" {
            overriding = true;
        }
        columns.push(MappedColumn {
            column: col.name.clone(),
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
        let t = shadow.iter().find(|c| &c.name == k).ok_or_else(|| {
            Error::refused(format!(
                "cannot rewrite table {table}: the ALTER removes or renames column {:?}, which is \
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
            source_type: s.type_name.clone(),
            shadow_cast: (s.type_oid != t.type_oid).then(|| t.base_type.clone()),
        });
    }
    let dropped = source
        .iter()
        .filter(|s| !s.is_generated())
        .filter(|s| !shadow.iter().any(|c| c.name == s.name))
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
        let b = build("t", &src, &sh, &[Ident::new("id")], &maps).unwrap();
        assert_eq!(b.columns[0].expr.as_deref(), Some("CAST(\"id\" AS bigint)"));
        // Same type, different modifier: no cast, the receive function applies the modifier.
        assert_eq!(b.columns[1].source, ColumnSource::Same);
        assert_eq!(b.columns[2].expr.as_deref(), Some("CAST((old) AS text)"));
        assert_eq!(b.columns[3].source, ColumnSource::Default);
        assert_eq!(b.dropped, vec![Ident::new("old")]);
        assert_eq!(b.key[0].shadow_cast.as_deref(), Some("bigint"));
    }

    #[test]
    fn map_on_key_or_unknown_column_is_refused() {
        let src = vec![col("id", "integer", 23)];
        let sh = vec![col("id", "integer", 23)];
        let k = [Ident::new("id")];
        assert!(build("t", &src, &sh, &k, &[parse_map("id=id+1").unwrap()]).is_err());
        assert!(build("t", &src, &sh, &k, &[parse_map("nope=1").unwrap()]).is_err());
    }

    #[test]
    fn dropping_a_key_column_is_refused() {
        let src = vec![col("id", "integer", 23), col("x", "integer", 23)];
        let sh = vec![col("x", "integer", 23)];
        let e = build("t", &src, &sh, &[Ident::new("id")], &[]).unwrap_err();
        assert!(e.to_string().contains("row identity"));
    }
}
