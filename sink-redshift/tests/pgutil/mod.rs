//! PostgreSQL helpers of the Redshift tests (the same as in tests/sink.rs).
#![allow(dead_code, clippy::unwrap_used)]

use std::sync::atomic::{AtomicU32, Ordering};

use dpl_core::{RowBatch, Schema, SqlType, Table, Value};
use dpl_sink::quote_ident;
use tokio_postgres::{Client, NoTls};

pub fn pg_url() -> String {
    std::env::var("DPL_TEST_PG_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".to_owned())
}

pub fn schema_name(tag: &str) -> String {
    static N: AtomicU32 = AtomicU32::new(0);
    let nanos = jiff::Timestamp::now().as_nanosecond() % 1_000_000_000;
    format!(
        "dpl_t_{tag}_{}_{}_{nanos}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}

pub async fn client() -> Client {
    let (client, conn) = tokio_postgres::connect(&pg_url(), NoTls).await.unwrap();
    tokio::spawn(conn);
    client
}

/// Drops the test's schema when the test ends, passed or failed.
pub struct DropSchema(pub String);

impl Drop for DropSchema {
    fn drop(&mut self) {
        let stmt = format!("DROP SCHEMA IF EXISTS {} CASCADE", quote_ident(&self.0));
        let _ = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async {
                let c = client().await;
                c.batch_execute(&stmt).await.unwrap();
            });
        })
        .join();
    }
}

/// A row of `table` with the named columns set and every other column NULL.
pub fn row(schema: &Schema, table: Table, set: &[(&str, Value)]) -> Vec<Value> {
    let mut r = vec![Value::Null; schema.columns(table).len()];
    for (name, v) in set {
        let i = schema
            .index(table, name)
            .unwrap_or_else(|| panic!("{} has no {name}", table.name()));
        r[i] = v.clone();
    }
    r
}

pub fn batch(schema: &Schema, table: Table, rows: &[Vec<Value>]) -> RowBatch {
    let mut b = RowBatch::new(table, schema.columns(table).len());
    for r in rows {
        b.values.extend(r.iter().cloned());
    }
    b
}

pub fn ts(y: i16, mo: i8, d: i8, h: i8, mi: i8, s: i8, us: i32) -> Value {
    Value::Ts(dpl_core::micros_of(jiff::civil::date(y, mo, d).at(
        h,
        mi,
        s,
        us * 1000,
    )))
}

pub fn day(y: i16, mo: i8, d: i8) -> Value {
    Value::Date(dpl_core::day_number(jiff::civil::date(y, mo, d)))
}

/// Every row of a table as Values, ordered by primary key.
pub async fn read_table(
    c: &Client,
    schema_name: &str,
    schema: &Schema,
    table: Table,
) -> Vec<Vec<Value>> {
    let cols = schema.columns(table);
    let exprs: Vec<String> = cols
        .iter()
        .map(|col| {
            let q = quote_ident(&col.name);
            match col.ty {
                SqlType::Timestamp => format!("(EXTRACT(EPOCH FROM {q}) * 1000000)::bigint"),
                SqlType::Date => format!("({q} - DATE '1970-01-01')"),
                _ => q,
            }
        })
        .collect();
    let keys: Vec<String> = table.primary_key().iter().map(|k| quote_ident(k)).collect();
    let q = format!(
        "SELECT {} FROM {}.{} ORDER BY {}",
        exprs.join(", "),
        quote_ident(schema_name),
        quote_ident(table.name()),
        keys.join(", ")
    );
    let rows = c.query(&q, &[]).await.unwrap();
    rows.iter()
        .map(|r| {
            cols.iter()
                .enumerate()
                .map(|(i, col)| match col.ty {
                    SqlType::Text(_) => Value::opt_text(r.get::<_, Option<String>>(i)),
                    SqlType::BigInt => r.get::<_, Option<i64>>(i).map_or(Value::Null, Value::Int),
                    SqlType::Double => r.get::<_, Option<f64>>(i).map_or(Value::Null, Value::Float),
                    SqlType::Bool => r.get::<_, Option<bool>>(i).map_or(Value::Null, Value::Bool),
                    SqlType::Timestamp => r.get::<_, Option<i64>>(i).map_or(Value::Null, Value::Ts),
                    SqlType::Date => r.get::<_, Option<i32>>(i).map_or(Value::Null, Value::Date),
                })
                .collect()
        })
        .collect()
}
