//! Source positions: totally ordered within one source stream, encodable into
//! the monotonically increasing `i64` version of a Delta `txn` action.

use serde::{Deserialize, Serialize};
use std::cmp::Ordering;
use std::fmt;

/// A global transaction id as the server wrote it.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(tag = "flavor", rename_all = "snake_case")]
pub enum Gtid {
    /// MySQL `source_uuid[:tag]:transaction_id`.
    MySql { uuid: String, tag: Option<String>, transaction_id: u64 },
    /// MariaDB `domain-server-sequence`.
    MariaDb { domain: u32, server_id: u32, sequence: u64 },
}

impl fmt::Display for Gtid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Gtid::MySql { uuid, tag: Some(tag), transaction_id } => write!(f, "{uuid}:{tag}:{transaction_id}"),
            Gtid::MySql { uuid, tag: None, transaction_id } => write!(f, "{uuid}:{transaction_id}"),
            Gtid::MariaDb { domain, server_id, sequence } => write!(f, "{domain}-{server_id}-{sequence}"),
        }
    }
}

/// A MySQL / MariaDB binlog position: file + byte offset, plus the GTID of
/// the transaction when the server writes one.
///
/// Equality and order both look at the point in the binlog only, (file
/// index, offset); the GTID does not take part in either. A position is a
/// resume point, and the one read back after a restart (the Delta `txn`
/// version, `file_index << 32 | offset`) carries no GTID: it must equal, not
/// sort before or after, the same point as the live stream reports it with
/// its GTID, or an already committed transaction would look new (or a new one
/// committed). The GTID only labels the transaction at that point. So `a ==
/// b` exactly when `a.cmp(&b) == Equal`, as [`Ord`] requires; compare the
/// `gtid` fields yourself where the label matters.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct MySqlPosition {
    pub file: String,
    pub offset: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gtid: Option<Gtid>,
}

impl MySqlPosition {
    pub fn new(file: impl Into<String>, offset: u64) -> Self {
        MySqlPosition { file: file.into(), offset, gtid: None }
    }

    /// The numeric suffix of the binlog file name (`mysql-bin.000042` → 42).
    pub fn file_index(&self) -> u64 {
        let digits: String =
            self.file.rsplit('.').next().unwrap_or("").chars().filter(|c| c.is_ascii_digit()).collect();
        digits.parse().unwrap_or(0)
    }

    /// Base name of a binlog file only the index of which is known ([`SourcePosition::from_version`]).
    pub const UNKNOWN_BASE_NAME: &'static str = "?";

    /// This position in the binlog whose files are named like `file` (a file
    /// of the server), when its own base name is unknown; else unchanged.
    pub fn named_like(&self, file: &str) -> MySqlPosition {
        let Some(index) = self.file.strip_prefix(Self::UNKNOWN_BASE_NAME).and_then(|r| r.strip_prefix('.')) else {
            return self.clone();
        };
        let base = file.rsplit_once('.').map_or(file, |(base, _)| base);
        MySqlPosition { file: format!("{base}.{index}"), ..self.clone() }
    }

    fn key(&self) -> (u64, u64) {
        (self.file_index(), self.offset)
    }
}

impl PartialEq for MySqlPosition {
    /// The same point in the binlog (file index, offset), whatever the GTIDs: see [`MySqlPosition`].
    fn eq(&self, other: &Self) -> bool {
        self.key() == other.key()
    }
}

impl Eq for MySqlPosition {}

impl PartialOrd for MySqlPosition {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for MySqlPosition {
    /// Ordered by (file index, offset); the GTID does not take part (see [`MySqlPosition`]).
    fn cmp(&self, other: &Self) -> Ordering {
        self.key().cmp(&other.key())
    }
}

/// A PostgreSQL log sequence number.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Lsn(pub u64);

impl fmt::Display for Lsn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:X}/{:X}", self.0 >> 32, self.0 & 0xffff_ffff)
    }
}

/// Where in the source stream an event (or a committed batch) stands.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "source", rename_all = "snake_case")]
pub enum SourcePosition {
    MySql(MySqlPosition),
    Postgres { lsn: Lsn },
}

/// Errors turning positions into versions and back.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum PositionError {
    #[error("binlog offset {offset} in {file} does not fit the 32 bits a Delta txn version gives it")]
    OffsetTooLarge { file: String, offset: u64 },
    #[error("binlog file index {0} does not fit the 31 bits a Delta txn version gives it")]
    FileIndexTooLarge(u64),
    #[error("LSN {0} does not fit a signed 64-bit Delta txn version")]
    LsnTooLarge(Lsn),
    #[error("stored position is not valid JSON: {0}")]
    Malformed(String),
}

impl SourcePosition {
    /// The monotonic `i64` stored as the Delta `txn` version: for MySQL
    /// `file_index << 32 | offset`, for PostgreSQL the LSN itself.
    pub fn to_version(&self) -> Result<i64, PositionError> {
        match self {
            SourcePosition::MySql(p) => {
                if p.offset > u32::MAX as u64 {
                    return Err(PositionError::OffsetTooLarge { file: p.file.clone(), offset: p.offset });
                }
                let idx = p.file_index();
                if idx >= (1 << 31) {
                    return Err(PositionError::FileIndexTooLarge(idx));
                }
                Ok(((idx << 32) | p.offset) as i64)
            }
            SourcePosition::Postgres { lsn } => i64::try_from(lsn.0).map_err(|_| PositionError::LsnTooLarge(*lsn)),
        }
    }

    /// The position a txn version stands for, when only the version survived
    /// (the commit info holding the full position was cleaned from the log):
    /// PostgreSQL exactly; MySQL / MariaDB without GTID and with the binlog
    /// file's base name unknown ([`MySqlPosition::UNKNOWN_BASE_NAME`]) until
    /// the server names it ([`MySqlPosition::named_like`]).
    pub fn from_version(version: i64, mysql: bool) -> SourcePosition {
        let v = version.max(0) as u64;
        if mysql {
            let file = format!("{}.{:06}", MySqlPosition::UNKNOWN_BASE_NAME, v >> 32);
            SourcePosition::MySql(MySqlPosition::new(file, v & 0xffff_ffff))
        } else {
            SourcePosition::Postgres { lsn: Lsn(v) }
        }
    }

    /// JSON form kept in Delta commit info and table metadata.
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).expect("positions always serialize")
    }

    /// Parses what [`SourcePosition::to_json`] wrote.
    pub fn from_json(text: &str) -> Result<Self, PositionError> {
        serde_json::from_str(text).map_err(|e| PositionError::Malformed(e.to_string()))
    }

    /// The MySQL position, if this is one.
    pub fn as_mysql(&self) -> Option<&MySqlPosition> {
        match self {
            SourcePosition::MySql(p) => Some(p),
            SourcePosition::Postgres { .. } => None,
        }
    }
}

impl PartialOrd for SourcePosition {
    /// Positions of different sources are not comparable.
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        match (self, other) {
            (SourcePosition::MySql(a), SourcePosition::MySql(b)) => Some(a.cmp(b)),
            (SourcePosition::Postgres { lsn: a }, SourcePosition::Postgres { lsn: b }) => Some(a.cmp(b)),
            _ => None,
        }
    }
}

impl fmt::Display for SourcePosition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SourcePosition::MySql(p) => {
                write!(f, "{}:{}", p.file, p.offset)?;
                if let Some(g) = &p.gtid {
                    write!(f, " gtid={g}")?;
                }
                Ok(())
            }
            SourcePosition::Postgres { lsn } => write!(f, "lsn={lsn}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn my(file: &str, offset: u64) -> SourcePosition {
        SourcePosition::MySql(MySqlPosition::new(file, offset))
    }

    #[test]
    fn mysql_versions_increase_with_file_then_offset() {
        let a = my("mysql-bin.000001", 4_000_000_000).to_version().unwrap();
        let b = my("mysql-bin.000002", 4).to_version().unwrap();
        let c = my("mysql-bin.000002", 5).to_version().unwrap();
        assert!(a < b && b < c);
        assert!(my("mysql-bin.000001", 9) < my("mysql-bin.000002", 4));
    }

    #[test]
    fn equality_agrees_with_order_whatever_the_gtid() {
        let bare = MySqlPosition::new("mariadb-bin.000003", 1234);
        let mut labelled = bare.clone();
        labelled.gtid = Some(Gtid::MariaDb { domain: 0, server_id: 1, sequence: 77 });
        // The resume point read back from a txn version has no GTID: it is the same point.
        assert_eq!(bare.cmp(&labelled), Ordering::Equal);
        assert_eq!(bare, labelled);
        assert_eq!(SourcePosition::MySql(bare.clone()), SourcePosition::MySql(labelled.clone()));
        let later = MySqlPosition::new("mariadb-bin.000003", 1235);
        assert!(labelled < later && labelled != later);
        for (a, b) in [(&bare, &labelled), (&labelled, &later), (&later, &bare)] {
            assert_eq!(a == b, a.cmp(b) == Ordering::Equal, "{a:?} vs {b:?}");
        }
    }

    #[test]
    fn a_txn_version_alone_gives_the_position_back() {
        let pos = my("mariadb-bin.000012", 4567);
        let back = SourcePosition::from_version(pos.to_version().unwrap(), true);
        assert_eq!(back, pos, "same point");
        let named = back.as_mysql().unwrap().named_like("mariadb-bin.000013");
        assert_eq!(named.file, "mariadb-bin.000012");
        assert_eq!(pos.as_mysql().unwrap().named_like("x.000001").file, "mariadb-bin.000012", "a known name stays");
        let lsn = SourcePosition::Postgres { lsn: Lsn(0x1_0000_00A0) };
        assert_eq!(SourcePosition::from_version(lsn.to_version().unwrap(), false), lsn);
    }

    #[test]
    fn offsets_beyond_32_bits_are_refused() {
        assert!(matches!(my("b.000001", 1 << 33).to_version(), Err(PositionError::OffsetTooLarge { .. })));
    }

    #[test]
    fn positions_round_trip_through_json() {
        let mut p = MySqlPosition::new("mariadb-bin.000003", 1234);
        p.gtid = Some(Gtid::MariaDb { domain: 0, server_id: 1, sequence: 77 });
        let pos = SourcePosition::MySql(p);
        let back = SourcePosition::from_json(&pos.to_json()).unwrap();
        assert_eq!(back, pos);
        assert_eq!(back.as_mysql().unwrap().gtid, pos.as_mysql().unwrap().gtid, "the GTID survives too");
        assert_eq!(pos.to_string(), "mariadb-bin.000003:1234 gtid=0-1-77");
        let pg = SourcePosition::Postgres { lsn: Lsn(0x1_0000_00A0) };
        assert_eq!(pg.to_string(), "lsn=1/A0");
        assert_eq!(pg.to_version().unwrap(), 0x1_0000_00A0);
    }
}
