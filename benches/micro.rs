//! Micro benchmarks of CPU-bound pieces of the crate (criterion), kept short:
//! `cargo bench --bench micro`.
//!
//! - chunk planning for an integer key: 10,000 ranges rendered as SQL predicates;
//! - identifier quoting: `Display` of 1,000 plain and 1,000 awkward names, and of 1,000
//!   qualified names;
//! - literal rendering of 1,000 strings (the workload and the COPY predicates use it).

use criterion::{black_box, criterion_group, criterion_main, Criterion, Throughput};
use pg_hotswap::db::ident::{literal, Ident, QualifiedName};
use pg_hotswap::rewrite::chunks::integer_chunks;
use std::fmt::Write;
use std::time::Duration;

fn chunks(c: &mut Criterion) {
    let mut g = c.benchmark_group("chunks");
    g.throughput(Throughput::Elements(10_000));
    g.bench_function("integer_chunks_10k", |b| {
        b.iter(|| integer_chunks(black_box("\"id\""), 1, black_box(1_000_000_000), 10_000))
    });
    g.finish();
}

fn idents(c: &mut Criterion) {
    let plain: Vec<Ident> = (0..1_000)
        .map(|i| Ident::new(format!("column_{i}")))
        .collect();
    let awkward: Vec<Ident> = (0..1_000)
        .map(|i| Ident::new(format!("Größe \"{i}\" of tbl")))
        .collect();
    let qualified: Vec<QualifiedName> = (0..1_000)
        .map(|i| QualifiedName::new("App", format!("table {i}")))
        .collect();
    let mut g = c.benchmark_group("ident_display");
    g.throughput(Throughput::Elements(1_000));
    let mut out = String::with_capacity(64 * 1024);
    g.bench_function("plain_1k", |b| {
        b.iter(|| {
            out.clear();
            for i in black_box(&plain) {
                let _ = write!(out, "{i}, ");
            }
            out.len()
        })
    });
    g.bench_function("awkward_1k", |b| {
        b.iter(|| {
            out.clear();
            for i in black_box(&awkward) {
                let _ = write!(out, "{i}, ");
            }
            out.len()
        })
    });
    g.bench_function("qualified_1k", |b| {
        b.iter(|| {
            out.clear();
            for q in black_box(&qualified) {
                let _ = write!(out, "{q}, ");
            }
            out.len()
        })
    });
    g.finish();

    let values: Vec<String> = (0..1_000)
        .map(|i| format!("it's value {i} with a \\ backslash"))
        .collect();
    let mut g = c.benchmark_group("literal");
    g.throughput(Throughput::Elements(1_000));
    g.bench_function("literal_1k", |b| {
        b.iter(|| {
            black_box(&values)
                .iter()
                .map(|v| literal(v).len())
                .sum::<usize>()
        })
    });
    g.finish();
}

criterion_group! {
    name = micro;
    config = Criterion::default()
        .sample_size(30)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2));
    targets = chunks, idents
}
criterion_main!(micro);
