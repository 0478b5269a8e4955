//! The tables a DDL statement of a QUERY event touches, and how: enough of
//! MySQL / MariaDB DDL syntax to tell `ALTER TABLE`, `CREATE TABLE` (also
//! `... LIKE` and `... SELECT`), `RENAME TABLE`, `DROP TABLE`, `TRUNCATE` and
//! `DROP DATABASE` apart and name their tables. Column definitions are never
//! parsed: the schema after a change is read from the live catalog.

use tributary_core::TableId;

/// What one DDL statement does to one table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TableDdl {
    /// `CREATE [OR REPLACE] TABLE [IF NOT EXISTS]` (plain, `LIKE` or `SELECT`).
    Create { table: TableId, if_not_exists: bool, or_replace: bool },
    /// `ALTER TABLE` without a rename.
    Alter { table: TableId },
    /// `RENAME TABLE a TO b` or `ALTER TABLE a RENAME TO b`.
    Rename { from: TableId, to: TableId },
    /// `DROP TABLE`.
    Drop { table: TableId },
    /// `TRUNCATE [TABLE]`.
    Truncate { table: TableId },
    /// `DROP DATABASE` / `DROP SCHEMA`.
    DropDatabase { database: String },
    /// `ALTER TABLE ... TRUNCATE | DROP | EXCHANGE PARTITION`: rows removed or
    /// swapped in without row events (`operation` names it).
    PartitionRows { table: TableId, operation: String },
}

/// The table changes of `sql`, run with default database `default_db`;
/// empty for statements that change no table (DML, grants, views, indexes,
/// temporary tables, ...).
pub fn parse(sql: &str, default_db: &str) -> Vec<TableDdl> {
    let tokens = tokenize(sql);
    let mut p = Parser { tokens: &tokens, at: 0, default_db };
    p.statement().unwrap_or_default()
}

/// The columns an `ALTER TABLE` statement renames, `(from, to)`:
/// `RENAME COLUMN a TO b` and `CHANGE [COLUMN] a b <definition>` with a new name.
pub fn renamed_columns(sql: &str) -> Vec<(String, String)> {
    let tokens = tokenize(sql);
    let ident = |t: Option<&Token>| match t {
        Some(Token::Word(w)) | Some(Token::Quoted(w)) => Some(w.clone()),
        _ => None,
    };
    let is = |t: Option<&Token>, word: &str| matches!(t, Some(Token::Word(w)) if w.eq_ignore_ascii_case(word));
    let mut out = Vec::new();
    let mut i = 0;
    while i < tokens.len() {
        if is(tokens.get(i), "RENAME") && is(tokens.get(i + 1), "COLUMN") && is(tokens.get(i + 3), "TO") {
            if let (Some(from), Some(to)) = (ident(tokens.get(i + 2)), ident(tokens.get(i + 4))) {
                out.push((from, to));
                i += 5;
                continue;
            }
        }
        if is(tokens.get(i), "CHANGE") {
            let at = if is(tokens.get(i + 1), "COLUMN") { i + 2 } else { i + 1 };
            if let (Some(from), Some(to)) = (ident(tokens.get(at)), ident(tokens.get(at + 1))) {
                if !from.eq_ignore_ascii_case(&to) {
                    out.push((from, to));
                }
                i = at + 2;
                continue;
            }
        }
        i += 1;
    }
    out
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Token {
    /// An unquoted word (keyword or identifier).
    Word(String),
    /// A backtick- or double-quoted identifier.
    Quoted(String),
    /// A string literal.
    Str,
    Punct(char),
}

/// Splits `sql` into tokens; comments are skipped, executable comments
/// (`/*! ... */`, `/*M!100100 ... */`) are read as code.
fn tokenize(sql: &str) -> Vec<Token> {
    let chars: Vec<char> = sql.chars().collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        let next = chars.get(i + 1).copied();
        if c.is_whitespace() {
            i += 1;
        } else if c == '/' && next == Some('*') {
            let executable = matches!(chars.get(i + 2), Some('!'))
                || (chars.get(i + 2) == Some(&'M') && chars.get(i + 3) == Some(&'!'));
            if executable {
                i += if chars[i + 2] == 'M' { 4 } else { 3 };
                while i < chars.len() && chars[i].is_ascii_digit() {
                    i += 1;
                }
            } else {
                i += 2;
                while i + 1 < chars.len() && !(chars[i] == '*' && chars[i + 1] == '/') {
                    i += 1;
                }
                i += 2;
            }
        } else if c == '*' && next == Some('/') {
            // End of an executable comment.
            i += 2;
        } else if c == '#' || (c == '-' && next == Some('-') && chars.get(i + 2).is_none_or(|c| c.is_whitespace())) {
            while i < chars.len() && chars[i] != '\n' {
                i += 1;
            }
        } else if c == '`' || c == '"' {
            let (text, end) = quoted(&chars, i, c);
            out.push(Token::Quoted(text));
            i = end;
        } else if c == '\'' {
            let (_, end) = quoted(&chars, i, c);
            out.push(Token::Str);
            i = end;
        } else if c.is_alphanumeric() || c == '_' || c == '$' || !c.is_ascii() {
            let start = i;
            while i < chars.len()
                && (chars[i].is_alphanumeric() || chars[i] == '_' || chars[i] == '$' || !chars[i].is_ascii())
            {
                i += 1;
            }
            out.push(Token::Word(chars[start..i].iter().collect()));
        } else {
            out.push(Token::Punct(c));
            i += 1;
        }
    }
    out
}

/// A quoted run starting at `start` (the quote): its text with doubled quotes
/// (and, in strings, backslash escapes) resolved, and the index after it.
fn quoted(chars: &[char], start: usize, quote: char) -> (String, usize) {
    let mut text = String::new();
    let mut i = start + 1;
    while i < chars.len() {
        let c = chars[i];
        if c == '\\' && quote == '\'' {
            if let Some(n) = chars.get(i + 1) {
                text.push(*n);
            }
            i += 2;
        } else if c == quote {
            if chars.get(i + 1) == Some(&quote) {
                text.push(quote);
                i += 2;
            } else {
                return (text, i + 1);
            }
        } else {
            text.push(c);
            i += 1;
        }
    }
    (text, i)
}

struct Parser<'a> {
    tokens: &'a [Token],
    at: usize,
    default_db: &'a str,
}

impl Parser<'_> {
    fn peek(&self) -> Option<&Token> {
        self.tokens.get(self.at)
    }

    /// True (and consumed) when the next token is the keyword `word`.
    fn keyword(&mut self, word: &str) -> bool {
        match self.peek() {
            Some(Token::Word(w)) if w.eq_ignore_ascii_case(word) => {
                self.at += 1;
                true
            }
            _ => false,
        }
    }

    /// True (and consumed) when the next tokens are the keywords `words`.
    fn keywords(&mut self, words: &[&str]) -> bool {
        let start = self.at;
        if words.iter().all(|w| self.keyword(w)) {
            return true;
        }
        self.at = start;
        false
    }

    fn punct(&mut self, c: char) -> bool {
        if self.peek() == Some(&Token::Punct(c)) {
            self.at += 1;
            return true;
        }
        false
    }

    fn identifier(&mut self) -> Option<String> {
        let name = match self.peek()? {
            Token::Word(w) | Token::Quoted(w) => w.clone(),
            _ => return None,
        };
        self.at += 1;
        Some(name)
    }

    /// `name` or `db.name`.
    fn table_name(&mut self) -> Option<TableId> {
        let first = self.identifier()?;
        if self.punct('.') {
            let name = self.identifier()?;
            return Some(TableId::new(first, name));
        }
        Some(TableId::new(self.default_db, first))
    }

    fn statement(&mut self) -> Option<Vec<TableDdl>> {
        let first = match self.peek()? {
            Token::Word(w) => w.to_ascii_uppercase(),
            _ => return None,
        };
        self.at += 1;
        match first.as_str() {
            "ALTER" => self.alter(),
            "CREATE" => self.create(),
            "RENAME" => self.rename(),
            "DROP" => self.drop(),
            "TRUNCATE" => {
                self.keyword("TABLE");
                Some(vec![TableDdl::Truncate { table: self.table_name()? }])
            }
            _ => None,
        }
    }

    /// `ALTER [ONLINE | OFFLINE] [IGNORE] TABLE [IF EXISTS] t ... [RENAME [TO | AS] t2] ...`
    fn alter(&mut self) -> Option<Vec<TableDdl>> {
        while self.keyword("ONLINE") || self.keyword("OFFLINE") || self.keyword("IGNORE") {}
        if !self.keyword("TABLE") {
            return None;
        }
        self.keywords(&["IF", "EXISTS"]);
        let table = self.table_name()?;
        // A table rename anywhere among the alterations (not RENAME COLUMN / INDEX / KEY),
        // and partition operations that change rows without row events.
        let mut depth = 0usize;
        let mut partition_rows = None;
        while let Some(token) = self.peek().cloned() {
            self.at += 1;
            match token {
                Token::Punct('(') => depth += 1,
                Token::Punct(')') => depth = depth.saturating_sub(1),
                Token::Word(w)
                    if depth == 0
                        && ["TRUNCATE", "DROP", "EXCHANGE"].iter().any(|k| w.eq_ignore_ascii_case(k))
                        && self.keyword("PARTITION") =>
                {
                    partition_rows = Some(format!("{} PARTITION", w.to_ascii_uppercase()));
                }
                Token::Word(w) if depth == 0 && w.eq_ignore_ascii_case("RENAME") => {
                    if self.keyword("COLUMN") || self.keyword("INDEX") || self.keyword("KEY") {
                        continue;
                    }
                    let _ = self.keyword("TO") || self.keyword("AS");
                    let to = self.table_name()?;
                    return Some(vec![TableDdl::Rename { from: table, to }]);
                }
                _ => {}
            }
        }
        let mut out = vec![TableDdl::Alter { table: table.clone() }];
        if let Some(operation) = partition_rows {
            out.push(TableDdl::PartitionRows { table, operation });
        }
        Some(out)
    }

    /// `CREATE [OR REPLACE] [TEMPORARY] TABLE [IF NOT EXISTS] t ...`; temporary tables are not captured.
    fn create(&mut self) -> Option<Vec<TableDdl>> {
        let or_replace = self.keywords(&["OR", "REPLACE"]);
        if self.keyword("TEMPORARY") || !self.keyword("TABLE") {
            return None;
        }
        let if_not_exists = self.keywords(&["IF", "NOT", "EXISTS"]);
        let table = self.table_name()?;
        Some(vec![TableDdl::Create { table, if_not_exists, or_replace }])
    }

    /// `RENAME TABLE [IF EXISTS] a [WAIT n | NOWAIT] TO b [, c TO d] ...`
    fn rename(&mut self) -> Option<Vec<TableDdl>> {
        if !self.keyword("TABLE") && !self.keyword("TABLES") {
            return None;
        }
        let mut out = Vec::new();
        loop {
            self.keywords(&["IF", "EXISTS"]);
            let from = self.table_name()?;
            if self.keyword("WAIT") {
                self.at += 1;
            }
            self.keyword("NOWAIT");
            if !self.keyword("TO") {
                return None;
            }
            let to = self.table_name()?;
            out.push(TableDdl::Rename { from, to });
            if !self.punct(',') {
                return Some(out);
            }
        }
    }

    /// `DROP [TEMPORARY] TABLE [IF EXISTS] a [, b] ...` and `DROP DATABASE | SCHEMA [IF EXISTS] db`.
    fn drop(&mut self) -> Option<Vec<TableDdl>> {
        if self.keyword("DATABASE") || self.keyword("SCHEMA") {
            self.keywords(&["IF", "EXISTS"]);
            return Some(vec![TableDdl::DropDatabase { database: self.identifier()? }]);
        }
        if self.keyword("TEMPORARY") || !(self.keyword("TABLE") || self.keyword("TABLES")) {
            return None;
        }
        self.keywords(&["IF", "EXISTS"]);
        let mut out = vec![TableDdl::Drop { table: self.table_name()? }];
        while self.punct(',') {
            out.push(TableDdl::Drop { table: self.table_name()? });
        }
        Some(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(db: &str, name: &str) -> TableId {
        TableId::new(db, name)
    }

    #[test]
    fn alter_table_names_its_table_in_every_spelling() {
        let alter = |table| vec![TableDdl::Alter { table }];
        assert_eq!(parse("ALTER TABLE t ADD COLUMN b INT", "d"), alter(t("d", "t")));
        assert_eq!(parse("alter online ignore table `x``y`.`t 1` add b int", "d"), alter(t("x`y", "t 1")));
        assert_eq!(parse("/* app */ ALTER TABLE IF EXISTS db2.t DROP COLUMN a", "d"), alter(t("db2", "t")));
        assert_eq!(parse("ALTER TABLE t RENAME COLUMN a TO b", "d"), alter(t("d", "t")));
        assert_eq!(parse("ALTER TABLE t RENAME INDEX i TO j, ADD c INT", "d"), alter(t("d", "t")));
        assert_eq!(parse("ALTER TABLE \"t\" MODIFY c VARCHAR(200) COMMENT 'rename to x'", "d"), alter(t("d", "t")));
    }

    #[test]
    fn partition_operations_that_change_rows_are_named() {
        let t = t("d", "t");
        assert_eq!(
            parse("ALTER TABLE t TRUNCATE PARTITION p0", "d"),
            vec![
                TableDdl::Alter { table: t.clone() },
                TableDdl::PartitionRows { table: t.clone(), operation: "TRUNCATE PARTITION".into() }
            ]
        );
        assert_eq!(
            parse("alter table t drop partition p2020", "d")[1],
            TableDdl::PartitionRows { table: t.clone(), operation: "DROP PARTITION".into() }
        );
        assert_eq!(parse("ALTER TABLE t ADD PARTITION (PARTITION p3 VALUES LESS THAN (10))", "d").len(), 1);
        assert_eq!(parse("ALTER TABLE t DROP COLUMN partition_key", "d").len(), 1);
    }

    #[test]
    fn alter_table_rename_is_a_rename() {
        assert_eq!(
            parse("ALTER TABLE t ADD x INT, RENAME TO other.t2", "d"),
            vec![TableDdl::Rename { from: t("d", "t"), to: t("other", "t2") }]
        );
        assert_eq!(
            parse("alter table t rename as t2", "d"),
            vec![TableDdl::Rename { from: t("d", "t"), to: t("d", "t2") }]
        );
    }

    #[test]
    fn create_table_in_its_forms() {
        let create = |table, if_not_exists, or_replace| vec![TableDdl::Create { table, if_not_exists, or_replace }];
        assert_eq!(parse("CREATE TABLE t (id INT PRIMARY KEY)", "d"), create(t("d", "t"), false, false));
        assert_eq!(parse("create table if not exists `d2`.t like t0", "d"), create(t("d2", "t"), true, false));
        assert_eq!(parse("CREATE OR REPLACE TABLE t SELECT 1", "d"), create(t("d", "t"), false, true));
        assert_eq!(parse("CREATE TABLE `t2` (\n  `id` int(11) NOT NULL\n)", "d"), create(t("d", "t2"), false, false));
        assert!(parse("CREATE TEMPORARY TABLE t (id INT)", "d").is_empty());
        assert!(parse("CREATE INDEX i ON t (a)", "d").is_empty());
        assert!(parse("CREATE DEFINER=`root`@`%` VIEW v AS SELECT 1", "d").is_empty());
    }

    #[test]
    fn rename_drop_truncate_and_drop_database() {
        assert_eq!(
            parse("RENAME TABLE a TO b, x.c TO y.d", "d"),
            vec![
                TableDdl::Rename { from: t("d", "a"), to: t("d", "b") },
                TableDdl::Rename { from: t("x", "c"), to: t("y", "d") }
            ]
        );
        assert_eq!(
            parse("RENAME TABLE IF EXISTS a WAIT 5 TO b", "d"),
            vec![TableDdl::Rename { from: t("d", "a"), to: t("d", "b") }]
        );
        assert_eq!(
            parse("DROP TABLE IF EXISTS `t1`,`x`.`t2` /* generated by server */", "d"),
            vec![TableDdl::Drop { table: t("d", "t1") }, TableDdl::Drop { table: t("x", "t2") }]
        );
        assert!(parse("DROP TEMPORARY TABLE IF EXISTS t", "d").is_empty());
        assert_eq!(parse("truncate t", "d"), vec![TableDdl::Truncate { table: t("d", "t") }]);
        assert_eq!(parse("TRUNCATE TABLE x.t", "d"), vec![TableDdl::Truncate { table: t("x", "t") }]);
        assert_eq!(
            parse("DROP DATABASE IF EXISTS `shop`", "d"),
            vec![TableDdl::DropDatabase { database: "shop".into() }]
        );
    }

    #[test]
    fn executable_comments_are_code_and_other_statements_touch_nothing() {
        assert_eq!(
            parse("/*!40000 ALTER TABLE `t` DISABLE KEYS */", "d"),
            vec![TableDdl::Alter { table: t("d", "t") }]
        );
        assert_eq!(parse("/*M!100100 TRUNCATE TABLE t */", "d"), vec![TableDdl::Truncate { table: t("d", "t") }]);
        for sql in [
            "INSERT INTO t VALUES (1)",
            "GRANT SELECT ON *.* TO x",
            "DROP INDEX i ON t",
            "",
            "-- x\n",
            "CREATE DATABASE d",
        ] {
            assert!(parse(sql, "d").is_empty(), "{sql}");
        }
    }

    #[test]
    fn renamed_columns_are_read_from_rename_column_and_change() {
        assert_eq!(renamed_columns("ALTER TABLE t RENAME COLUMN a TO b"), [("a".into(), "b".into())]);
        assert_eq!(
            renamed_columns("alter table `t` change column `x y` z INT, CHANGE q q BIGINT, rename column c to `d`"),
            [("x y".to_string(), "z".to_string()), ("c".into(), "d".into())]
        );
        assert!(renamed_columns("ALTER TABLE t ADD COLUMN b INT, DROP COLUMN a").is_empty());
    }
}
