//! Which tables a source captures: `db.table` (MySQL) or `schema.table`
//! (PostgreSQL) include / exclude patterns with `*` (any run of characters)
//! and `?` (one character) wildcards, matched case-sensitively. The server's
//! own schemas, which each source names, are never captured.

use crate::TableId;

/// A malformed pattern: the config field (`source.include` / `source.exclude`) and what is wrong.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("config field {field}: {problem}")]
pub struct FilterError {
    pub field: String,
    pub problem: String,
}

/// One `db.table` pattern, split at its first dot.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Pattern {
    schema: Vec<char>,
    table: Vec<char>,
}

impl Pattern {
    fn parse(text: &str, field: &str) -> Result<Self, FilterError> {
        let bad = |problem: &str| FilterError {
            field: format!("source.{field}"),
            problem: format!("pattern {text:?} {problem}; write `db.table`, e.g. \"shop.*\" or \"*.orders\""),
        };
        let (schema, table) = text.split_once('.').ok_or_else(|| bad("has no dot"))?;
        if schema.is_empty() || table.is_empty() {
            return Err(bad("has an empty database or table part"));
        }
        Ok(Pattern { schema: schema.chars().collect(), table: table.chars().collect() })
    }

    fn matches(&self, id: &TableId) -> bool {
        glob_match(&self.schema, &id.schema) && glob_match(&self.table, &id.name)
    }
}

/// Matches `text` against a glob of `*` and `?`, in linear time with one
/// backtrack point (the last `*`).
fn glob_match(pattern: &[char], text: &str) -> bool {
    let text: Vec<char> = text.chars().collect();
    let (mut p, mut t) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while t < text.len() {
        match pattern.get(p) {
            Some('*') => {
                star = Some((p, t));
                p += 1;
            }
            Some(&c) if c == '?' || c == text[t] => {
                p += 1;
                t += 1;
            }
            _ => match star {
                Some((sp, st)) => {
                    p = sp + 1;
                    t = st + 1;
                    star = Some((sp, st + 1));
                }
                None => return false,
            },
        }
    }
    pattern[p..].iter().all(|&c| c == '*')
}

/// The include / exclude matcher of a source.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TableFilter {
    include: Vec<Pattern>,
    exclude: Vec<Pattern>,
    include_text: Vec<String>,
    system_schemas: &'static [&'static str],
}

impl TableFilter {
    /// Parses the patterns; the error names the config field of a malformed
    /// one. Tables in `system_schemas` (compared case-insensitively) never match.
    pub fn new(
        include: &[String],
        exclude: &[String],
        system_schemas: &'static [&'static str],
    ) -> Result<Self, FilterError> {
        let include_patterns = include.iter().map(|p| Pattern::parse(p, "include")).collect::<Result<_, _>>()?;
        let exclude_patterns = exclude.iter().map(|p| Pattern::parse(p, "exclude")).collect::<Result<_, _>>()?;
        Ok(TableFilter {
            include: include_patterns,
            exclude: exclude_patterns,
            include_text: include.to_vec(),
            system_schemas,
        })
    }

    /// True for the server's own schemas (compared case-insensitively).
    pub fn is_system_schema(&self, schema: &str) -> bool {
        self.system_schemas.iter().any(|s| s.eq_ignore_ascii_case(schema))
    }

    /// True when `table` is captured: matched by an include pattern, by no
    /// exclude pattern, and not in a system schema.
    pub fn matches(&self, table: &TableId) -> bool {
        !self.is_system_schema(&table.schema)
            && self.include.iter().any(|p| p.matches(table))
            && !self.exclude.iter().any(|p| p.matches(table))
    }

    /// The include patterns as written, for messages.
    pub fn include_patterns(&self) -> &[String] {
        &self.include_text
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SYSTEM: [&str; 4] = ["mysql", "information_schema", "performance_schema", "sys"];

    fn filter(include: &[&str], exclude: &[&str]) -> TableFilter {
        let s = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        TableFilter::new(&s(include), &s(exclude), &SYSTEM).unwrap()
    }

    fn t(schema: &str, name: &str) -> TableId {
        TableId::new(schema, name)
    }

    #[test]
    fn exact_pattern_matches_only_that_table() {
        let f = filter(&["shop.orders"], &[]);
        assert!(f.matches(&t("shop", "orders")));
        assert!(!f.matches(&t("shop", "orders2")));
        assert!(!f.matches(&t("shop2", "orders")));
    }

    #[test]
    fn star_and_question_mark_wildcards() {
        let f = filter(&["shop.*", "*.log_?"], &[]);
        assert!(f.matches(&t("shop", "anything")));
        assert!(f.matches(&t("crm", "log_1")));
        assert!(!f.matches(&t("crm", "log_12")));
        assert!(!f.matches(&t("crm", "log_")));
        let g = filter(&["s*p.o*r*s"], &[]);
        assert!(g.matches(&t("shop", "orders")));
        assert!(g.matches(&t("sp", "ors")));
        assert!(!g.matches(&t("shop", "order")));
    }

    #[test]
    fn matching_is_case_sensitive() {
        assert!(!filter(&["shop.orders"], &[]).matches(&t("Shop", "Orders")));
    }

    #[test]
    fn exclude_wins_over_include() {
        let f = filter(&["shop.*"], &["shop.tmp_*"]);
        assert!(f.matches(&t("shop", "orders")));
        assert!(!f.matches(&t("shop", "tmp_x")));
    }

    #[test]
    fn system_schemas_are_never_included() {
        let f = filter(&["*.*"], &[]);
        for schema in ["mysql", "information_schema", "performance_schema", "sys", "MySQL"] {
            assert!(!f.matches(&t(schema, "user")), "{schema}");
        }
        assert!(f.matches(&t("app", "user")));
    }

    #[test]
    fn a_table_name_may_contain_dots_after_the_first() {
        let f = filter(&["db.a.b"], &[]);
        assert!(f.matches(&t("db", "a.b")));
    }

    #[test]
    fn malformed_patterns_name_their_field() {
        let err = TableFilter::new(&["nodot".to_string()], &[], &SYSTEM).unwrap_err().to_string();
        assert!(err.contains("source.include") && err.contains("nodot"), "{err}");
        let err = TableFilter::new(&["a.b".to_string()], &[".x".to_string()], &SYSTEM).unwrap_err().to_string();
        assert!(err.contains("source.exclude"), "{err}");
    }
}
