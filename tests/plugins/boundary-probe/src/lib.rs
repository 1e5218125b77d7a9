//! `boundary-probe`: receives the same `customers` rows as JSON text or as typed columns
//! and maps each into the struct a transform would use (see `wit/probe.wit`).

#![allow(unsafe_code)] // wit-bindgen's generated glue

wit_bindgen::generate!({ path: "wit", world: "probe" });

use exports::sluice::probe::rows::{Cell, Column, Guest};
use serde::Deserialize;

#[derive(Default, Deserialize)]
struct CustomerRow {
    id: i64,
    first_name: Option<String>,
    last_name: Option<String>,
    email: Option<String>,
    credit_limit: Option<String>,
    birth_date: Option<i64>,
    created_at: Option<i64>,
    updated_at: Option<i64>,
    customer_guid: Option<String>,
    is_active: Option<bool>,
}

impl CustomerRow {
    fn checksum(&self) -> u64 {
        let text = |s: &Option<String>| s.as_ref().map_or(0, |s| s.len() as u64);
        (self.id as u64)
            .wrapping_add(text(&self.first_name) + text(&self.last_name) + text(&self.email))
            .wrapping_add(text(&self.credit_limit) + text(&self.customer_guid))
            .wrapping_add(self.birth_date.unwrap_or(0) as u64)
            .wrapping_add(self.created_at.unwrap_or(0) as u64 ^ self.updated_at.unwrap_or(0) as u64)
            .wrapping_add(u64::from(self.is_active.unwrap_or(false)))
    }
}

struct Probe;

impl Guest for Probe {
    fn json_rows(rows: Vec<Vec<u8>>) -> u64 {
        rows.iter()
            .map(|row| serde_json::from_slice::<CustomerRow>(row).map_or(0, |r| r.checksum()))
            .fold(0, u64::wrapping_add)
    }

    fn span_rows(data: Vec<u8>, rows: Vec<(u32, u32)>) -> u64 {
        rows.iter()
            .map(|&(start, len)| {
                let row = &data[start as usize..(start + len) as usize];
                serde_json::from_slice::<CustomerRow>(row).map_or(0, |r| r.checksum())
            })
            .fold(0, u64::wrapping_add)
    }

    fn typed_rows(rows: Vec<Vec<Column>>) -> u64 {
        rows.into_iter()
            .map(|columns| from_columns(columns).checksum())
            .fold(0, u64::wrapping_add)
    }
}

fn from_columns(columns: Vec<Column>) -> CustomerRow {
    let mut row = CustomerRow::default();
    for Column { name, value } in columns {
        match (name.as_str(), value) {
            ("id", Cell::Integer(n)) => row.id = n,
            ("first_name", Cell::Text(s)) => row.first_name = Some(s),
            ("last_name", Cell::Text(s)) => row.last_name = Some(s),
            ("email", Cell::Text(s)) => row.email = Some(s),
            ("credit_limit", Cell::Text(s)) => row.credit_limit = Some(s),
            ("birth_date", Cell::Integer(n)) => row.birth_date = Some(n),
            ("created_at", Cell::Integer(n)) => row.created_at = Some(n),
            ("updated_at", Cell::Integer(n)) => row.updated_at = Some(n),
            ("customer_guid", Cell::Text(s)) => row.customer_guid = Some(s),
            ("is_active", Cell::Boolean(b)) => row.is_active = Some(b),
            _ => {}
        }
    }
    row
}

export!(Probe);
