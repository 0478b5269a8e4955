//! The result of validating one table, and its two renderings: an aligned
//! table with the differing keys below it, or JSON.

use super::compare::{key_object, Differences, KeyList};
use super::schema_check::SchemaReport;
use serde::Serialize;
use serde_json::json;
use tributary_core::TableSchema;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// Rows, schema and lag checked, nothing differs.
    Passed,
    Failed,
    /// Schema and lag checked and fine, but the rows were not compared: the
    /// table has no primary key, so its mirror is an append-only changelog.
    /// Never reported as passed.
    NotCompared,
}

impl Outcome {
    /// The status in JSON and in `validation.json`: `passed`, `failed`, `not_compared`.
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Passed => "passed",
            Outcome::Failed => "failed",
            Outcome::NotCompared => "not_compared",
        }
    }

    /// The status in the human table.
    fn label(self) -> &'static str {
        match self {
            Outcome::NotCompared => "not compared",
            other => other.as_str(),
        }
    }
}

/// One table's validation.
#[derive(Debug, Clone)]
pub struct TableReport {
    pub schema: std::sync::Arc<TableSchema>,
    pub delta_rows: Option<u64>,
    pub diffs: Option<Differences>,
    pub schema_report: Option<SchemaReport>,
    pub lag_secs: Option<f64>,
    pub max_lag_secs: Option<u64>,
    /// Failures that are not row or schema differences (no mirror, lag).
    pub problems: Vec<String>,
    pub notes: Vec<String>,
    pub seconds: f64,
}

impl TableReport {
    pub fn new(schema: std::sync::Arc<TableSchema>) -> Self {
        TableReport {
            schema,
            delta_rows: None,
            diffs: None,
            schema_report: None,
            lag_secs: None,
            max_lag_secs: None,
            problems: Vec::new(),
            notes: Vec::new(),
            seconds: 0.0,
        }
    }

    pub fn outcome(&self) -> Outcome {
        let rows_ok = self.diffs.as_ref().is_none_or(Differences::none);
        let schema_ok = self.schema_report.as_ref().is_none_or(SchemaReport::ok);
        if !self.problems.is_empty() || !rows_ok || !schema_ok {
            Outcome::Failed
        } else if self.diffs.is_none() {
            Outcome::NotCompared
        } else {
            Outcome::Passed
        }
    }

    fn keys_json(&self, list: &KeyList) -> serde_json::Value {
        json!({
            "count": list.count,
            "keys": list.keys.iter().map(|k| key_object(&self.schema, k)).collect::<Vec<_>>(),
        })
    }

    pub fn to_json(&self) -> serde_json::Value {
        let d = self.diffs.as_ref();
        json!({
            "table": self.schema.id.to_string(),
            "status": self.outcome(),
            "rows": if d.is_some() { "compared" } else { "not_compared" },
            "source_rows": d.map(|d| d.source_rows),
            "delta_rows": self.delta_rows,
            "chunks": d.map(|d| d.chunks),
            "missing_in_delta": d.map(|d| self.keys_json(&d.missing_in_delta)),
            "extra_in_delta": d.map(|d| self.keys_json(&d.extra_in_delta)),
            "different": d.map(|d| self.keys_json(&d.different)),
            "schema": self.schema_report,
            "lag_secs": self.lag_secs,
            "max_lag_secs": self.max_lag_secs,
            "problems": self.problems,
            "notes": self.notes,
            "seconds": (self.seconds * 1000.0).round() / 1000.0,
        })
    }
}

fn count(n: Option<u64>) -> String {
    n.map(|n| n.to_string()).unwrap_or_else(|| "-".into())
}

/// The aligned table, then per failed table what differs.
pub fn render_table(reports: &[TableReport]) -> String {
    let mut out = format!(
        "{:<40} {:<12} {:>11} {:>11} {:>8} {:>8} {:>9} {:<7} {:>9}\n",
        "TABLE", "STATUS", "SOURCE ROWS", "DELTA ROWS", "MISSING", "EXTRA", "DIFFERENT", "SCHEMA", "LAG"
    );
    for r in reports {
        let d = r.diffs.as_ref();
        out.push_str(&format!(
            "{:<40} {:<12} {:>11} {:>11} {:>8} {:>8} {:>9} {:<7} {:>9}\n",
            r.schema.id.to_string(),
            r.outcome().label(),
            count(d.map(|d| d.source_rows)),
            count(r.delta_rows),
            count(d.map(|d| d.missing_in_delta.count)),
            count(d.map(|d| d.extra_in_delta.count)),
            count(d.map(|d| d.different.count)),
            match &r.schema_report {
                Some(s) if s.ok() => "ok",
                Some(_) => "DIFFERS",
                None => "-",
            },
            r.lag_secs.map(|s| format!("{s:.1}s")).unwrap_or_else(|| "-".into()),
        ));
    }
    for r in reports {
        let mut lines = Vec::new();
        if let Some(d) = &r.diffs {
            for (what, list) in [
                ("missing in Delta", &d.missing_in_delta),
                ("extra in Delta", &d.extra_in_delta),
                ("different values", &d.different),
            ] {
                if list.count > 0 {
                    let more = list.count.saturating_sub(list.keys.len() as u64);
                    let tail = if more > 0 { format!(" (and {more} more)") } else { String::new() };
                    lines.push(format!("{what}: {}{tail}", list.keys.join(" ")));
                }
            }
        }
        if let Some(s) = r.schema_report.as_ref().filter(|s| !s.ok()) {
            if !s.missing_columns.is_empty() {
                lines.push(format!("columns missing in Delta: {}", s.missing_columns.join(", ")));
            }
            if !s.extra_columns.is_empty() {
                lines.push(format!("columns only in Delta: {}", s.extra_columns.join(", ")));
            }
            for t in &s.type_changes {
                lines.push(format!(
                    "column {} ({}): Delta type {} where {} is expected",
                    t.column, t.source_type, t.actual, t.expected
                ));
            }
        }
        lines.extend(r.problems.iter().cloned());
        lines.extend(r.notes.iter().map(|n| format!("note: {n}")));
        if !lines.is_empty() {
            out.push_str(&format!("\n{}:\n", r.schema.id));
            for line in lines {
                out.push_str(&format!("  {line}\n"));
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use tributary_core::{Column, ColumnType, TableId};

    fn schema(primary_key: Vec<usize>) -> Arc<TableSchema> {
        let column = |name: &str| Column {
            name: name.into(),
            data_type: ColumnType::Int64,
            nullable: false,
            source_type: "bigint".into(),
            source_id: None,
        };
        Arc::new(TableSchema { id: TableId::new("shop", "t"), columns: vec![column("id"), column("v")], primary_key })
    }

    fn keyless() -> TableReport {
        let mut report = TableReport::new(schema(vec![]));
        report.delta_rows = Some(3);
        report
    }

    #[test]
    fn a_keyless_table_is_not_compared_rather_than_passed() {
        let report = keyless();
        assert_eq!(report.outcome(), Outcome::NotCompared);
        let json = report.to_json();
        assert_eq!(json["status"], "not_compared");
        assert_eq!(json["rows"], "not_compared");
        assert_eq!(json["source_rows"], serde_json::Value::Null);
        let text = render_table(&[report]);
        let row = text.lines().nth(1).unwrap();
        assert!(row.contains("not compared"), "{text}");
        assert!(!row.contains("passed"), "{text}");
    }

    #[test]
    fn a_keyless_table_with_a_problem_fails_and_still_says_its_rows_were_not_compared() {
        let mut report = keyless();
        report.problems.push("lag 90.0 s exceeds --max-lag-secs 60".into());
        assert_eq!(report.outcome(), Outcome::Failed);
        assert_eq!(report.to_json()["rows"], "not_compared");
    }

    #[test]
    fn a_compared_table_passes_with_its_rows_compared() {
        let mut report = TableReport::new(schema(vec![0]));
        report.diffs = Some(Differences::default());
        assert_eq!(report.outcome(), Outcome::Passed);
        assert_eq!(report.to_json()["status"], "passed");
        assert_eq!(report.to_json()["rows"], "compared");
    }
}
