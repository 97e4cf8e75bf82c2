//! Chunk planning: splitting the key space of the source into ranges the copy workers take one
//! at a time, each copied in its own short transaction.
//!
//! A single integer key is split arithmetically between its min and max (no scan); any other key
//! (composite, text, uuid...) is split by walking the key index once and taking every n-th key
//! as a boundary. The first chunk has no lower bound and the last no upper bound, so rows
//! inserted beyond the ends during the copy are still covered. Predicates are rendered with
//! literals because COPY takes no bind parameters.

use crate::error::{DbContext, Result};
use crate::ident::literal;
use crate::plan::Plan;
use tokio_postgres::Client;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Chunk {
    pub no: i32,
    /// SQL predicate over the source's key columns.
    pub predicate: String,
}

const INTEGER_TYPES: [&str; 3] = ["smallint", "integer", "bigint"];

/// Plans the chunks for `plan` aiming at `chunk_rows` rows each.
pub async fn plan_chunks(
    client: &Client,
    plan: &Plan,
    estimated_rows: f64,
    chunk_rows: i64,
) -> Result<Vec<Chunk>> {
    let src = &plan.source;
    let chunk_rows = chunk_rows.max(1);
    if plan.key.len() == 1 && INTEGER_TYPES.contains(&plan.key[0].source_type.as_str()) {
        let k = &plan.key[0].name;
        let row = client
            .query_one(
                &format!("SELECT min({k})::int8, max({k})::int8 FROM ONLY {src}"),
                &[],
            )
            .await
            .ctx(format_args!("reading the key range of {}", src.human()))?;
        let (min, max): (Option<i64>, Option<i64>) = (row.get(0), row.get(1));
        let (Some(min), Some(max)) = (min, max) else {
            return Ok(vec![Chunk {
                no: 0,
                predicate: "true".into(),
            }]);
        };
        let rows = if estimated_rows > 0.0 {
            estimated_rows
        } else {
            (max - min + 1) as f64
        };
        let n = ((rows / chunk_rows as f64).ceil() as i64).max(1);
        return Ok(integer_chunks(&k.to_string(), min, max, n));
    }
    // Any other key: every chunk_rows-th key in index order is a boundary.
    let keys = plan.key_list();
    let text_cols: Vec<String> = plan
        .key
        .iter()
        .map(|k| format!("{}::text", k.name))
        .collect();
    let rows = client
        .query(
            &format!(
                "SELECT {tc} FROM (SELECT {keys}, row_number() OVER (ORDER BY {keys}) AS hotswap_rn FROM ONLY {src}) s \
                  WHERE hotswap_rn % $1 = 0 ORDER BY {keys}",
                tc = text_cols.join(", ")
            ),
            &[&chunk_rows],
        )
        .await
        .ctx(format_args!("walking the key index of {} to plan chunks", src.human()))?;
    let bounds: Vec<Vec<String>> = rows
        .iter()
        .map(|r| (0..plan.key.len()).map(|i| r.get::<_, String>(i)).collect())
        .collect();
    let types: Vec<&str> = plan.key.iter().map(|k| k.source_type.as_str()).collect();
    Ok(row_chunks(&keys, &types, &bounds))
}

/// `n` ranges over [min, max]: `k < b1`, `k >= b1 AND k < b2`, ..., `k >= bn-1`.
pub fn integer_chunks(col: &str, min: i64, max: i64, n: i64) -> Vec<Chunk> {
    let span = (max as i128) - (min as i128) + 1;
    let n = (n as i128).clamp(1, span.max(1));
    let step = (span + n - 1) / n;
    let mut bounds = Vec::new();
    let mut b = min as i128 + step;
    while b <= max as i128 {
        bounds.push(b as i64);
        b += step;
    }
    if bounds.is_empty() {
        return vec![Chunk {
            no: 0,
            predicate: "true".into(),
        }];
    }
    let mut chunks = Vec::with_capacity(bounds.len() + 1);
    chunks.push(Chunk {
        no: 0,
        predicate: format!("{col} < {}", bounds[0]),
    });
    for (i, w) in bounds.windows(2).enumerate() {
        chunks.push(Chunk {
            no: i as i32 + 1,
            predicate: format!("{col} >= {} AND {col} < {}", w[0], w[1]),
        });
    }
    chunks.push(Chunk {
        no: bounds.len() as i32,
        predicate: format!("{col} >= {}", bounds[bounds.len() - 1]),
    });
    chunks
}

/// Ranges between boundary keys (row comparison): `(k) <= b1`, `(k) > b1 AND (k) <= b2`, ...
pub fn row_chunks(keys: &str, types: &[&str], bounds: &[Vec<String>]) -> Vec<Chunk> {
    let render = |vals: &Vec<String>| {
        let parts: Vec<String> = vals
            .iter()
            .zip(types)
            .map(|(v, t)| format!("CAST({} AS {t})", literal(v)))
            .collect();
        format!("ROW({})", parts.join(", "))
    };
    if bounds.is_empty() {
        return vec![Chunk {
            no: 0,
            predicate: "true".into(),
        }];
    }
    let mut chunks = Vec::with_capacity(bounds.len() + 1);
    chunks.push(Chunk {
        no: 0,
        predicate: format!("ROW({keys}) <= {}", render(&bounds[0])),
    });
    for (i, w) in bounds.windows(2).enumerate() {
        chunks.push(Chunk {
            no: i as i32 + 1,
            predicate: format!(
                "ROW({keys}) > {} AND ROW({keys}) <= {}",
                render(&w[0]),
                render(&w[1])
            ),
        });
    }
    chunks.push(Chunk {
        no: bounds.len() as i32,
        predicate: format!("ROW({keys}) > {}", render(&bounds[bounds.len() - 1])),
    });
    chunks
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn integer_chunks_cover_everything_without_overlap() {
        let c = integer_chunks("\"id\"", 1, 100, 4);
        assert_eq!(c.len(), 4);
        assert_eq!(c[0].predicate, "\"id\" < 26");
        assert_eq!(c[1].predicate, "\"id\" >= 26 AND \"id\" < 51");
        assert_eq!(c[3].predicate, "\"id\" >= 76");
        // Numbering is dense from 0.
        assert!(c.iter().enumerate().all(|(i, ch)| ch.no == i as i32));
    }

    #[test]
    fn integer_chunks_handle_extremes() {
        let c = integer_chunks("k", i64::MIN, i64::MAX, 3);
        assert_eq!(c.len(), 3);
        let one = integer_chunks("k", 5, 5, 10);
        assert_eq!(one.len(), 1);
        assert_eq!(one[0].predicate, "true");
    }

    #[test]
    fn row_chunks_quote_values_as_literals() {
        let c = row_chunks(
            "\"a\", \"b\"",
            &["text", "integer"],
            &[vec!["it's".into(), "3".into()]],
        );
        assert_eq!(c.len(), 2);
        assert_eq!(
            c[0].predicate,
            "ROW(\"a\", \"b\") <= ROW(CAST('it''s' AS text), CAST('3' AS integer))"
        );
        assert!(c[1].predicate.starts_with("ROW(\"a\", \"b\") > "));
    }
}
