//! MariaDB-only binlog events (types 0xa0–0xab), which `mysql_common` hands
//! over untyped: GTID (0xa2), GTID list (0xa3), annotate rows (0xa0) and
//! binlog checkpoint (0xa1) are parsed from their raw bytes here.

use tributary_core::Gtid;

/// ANNOTATE_ROWS_EVENT: the SQL text of the statement whose rows follow.
pub const ANNOTATE_ROWS_EVENT: u8 = 0xa0;
/// BINLOG_CHECKPOINT_EVENT: the oldest binlog file crash recovery needs.
pub const BINLOG_CHECKPOINT_EVENT: u8 = 0xa1;
/// GTID_EVENT: starts an event group (transaction or DDL).
pub const GTID_EVENT: u8 = 0xa2;
/// GTID_LIST_EVENT: the GTID state at the start of a binlog file.
pub const GTID_LIST_EVENT: u8 = 0xa3;
/// START_ENCRYPTION_EVENT: the rest of the file is encrypted.
pub const START_ENCRYPTION_EVENT: u8 = 0xa4;
/// QUERY_COMPRESSED_EVENT (log_bin_compress=ON).
pub const QUERY_COMPRESSED_EVENT: u8 = 0xa5;
/// First and last compressed rows event types (log_bin_compress=ON).
pub const FIRST_COMPRESSED_ROWS_EVENT: u8 = 0xa6;
pub const LAST_COMPRESSED_ROWS_EVENT: u8 = 0xab;

/// GTID flag: the group is a single statement without BEGIN / COMMIT (DDL).
pub const FL_STANDALONE: u8 = 0x01;
/// GTID flag: a commit id follows the flags.
pub const FL_GROUP_COMMIT_ID: u8 = 0x02;
/// GTID flag: the group is a prepared XA transaction (not committed yet).
pub const FL_PREPARED_XA: u8 = 0x40;
/// GTID flag: the group commits or rolls back a prepared XA transaction.
pub const FL_COMPLETED_XA: u8 = 0x80;

/// A parsed MariaDB GTID event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MariaDbGtid {
    pub domain: u32,
    pub server_id: u32,
    pub sequence: u64,
    /// `flags2` of the event (`FL_*`).
    pub flags: u8,
}

impl MariaDbGtid {
    /// Parses the event data (after the common header, checksum stripped);
    /// the server id comes from the event header.
    pub fn parse(data: &[u8], server_id: u32) -> Result<Self, String> {
        let sequence = read_u64(data, 0).ok_or_else(|| too_short("GTID", data.len(), 13))?;
        let domain = read_u32(data, 8).ok_or_else(|| too_short("GTID", data.len(), 13))?;
        let flags = *data.get(12).ok_or_else(|| too_short("GTID", data.len(), 13))?;
        Ok(MariaDbGtid { domain, server_id, sequence, flags })
    }

    /// True when the group is one statement without BEGIN / COMMIT (DDL).
    pub fn is_standalone(&self) -> bool {
        self.flags & FL_STANDALONE != 0
    }

    /// True when the group prepares or completes an XA transaction.
    pub fn is_xa(&self) -> bool {
        self.flags & (FL_PREPARED_XA | FL_COMPLETED_XA) != 0
    }

    /// The core GTID (`domain-server-sequence`).
    pub fn gtid(&self) -> Gtid {
        Gtid::MariaDb { domain: self.domain, server_id: self.server_id, sequence: self.sequence }
    }
}

/// Parses a GTID_LIST event: the last GTID of each (domain, server) pair.
pub fn parse_gtid_list(data: &[u8]) -> Result<Vec<Gtid>, String> {
    let count = read_u32(data, 0).ok_or_else(|| too_short("GTID_LIST", data.len(), 4))? & 0x0fff_ffff;
    let needed = 4 + 16 * count as usize;
    if data.len() < needed {
        return Err(too_short("GTID_LIST", data.len(), needed));
    }
    Ok((0..count as usize)
        .map(|i| {
            let at = 4 + 16 * i;
            Gtid::MariaDb {
                domain: read_u32(data, at).unwrap_or_default(),
                server_id: read_u32(data, at + 4).unwrap_or_default(),
                sequence: read_u64(data, at + 8).unwrap_or_default(),
            }
        })
        .collect())
}

/// Parses a BINLOG_CHECKPOINT event: the binlog file name it names.
pub fn parse_binlog_checkpoint(data: &[u8]) -> Result<String, String> {
    let len = read_u32(data, 0).ok_or_else(|| too_short("BINLOG_CHECKPOINT", data.len(), 4))? as usize;
    let name = data.get(4..4 + len).ok_or_else(|| too_short("BINLOG_CHECKPOINT", data.len(), 4 + len))?;
    Ok(String::from_utf8_lossy(name).into_owned())
}

/// The SQL text of an ANNOTATE_ROWS event.
pub fn parse_annotate_rows(data: &[u8]) -> String {
    String::from_utf8_lossy(data).into_owned()
}

/// True for the MariaDB compressed event types (log_bin_compress=ON).
pub fn is_compressed_event(event_type: u8) -> bool {
    event_type == QUERY_COMPRESSED_EVENT
        || (FIRST_COMPRESSED_ROWS_EVENT..=LAST_COMPRESSED_ROWS_EVENT).contains(&event_type)
}

fn read_u32(data: &[u8], at: usize) -> Option<u32> {
    data.get(at..at + 4).map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
}

fn read_u64(data: &[u8], at: usize) -> Option<u64> {
    data.get(at..at + 8).map(|b| u64::from_le_bytes([b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7]]))
}

fn too_short(event: &str, len: usize, needed: usize) -> String {
    format!("MariaDB {event} event has {len} data bytes, at least {needed} expected")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gtid_event_gives_domain_server_and_sequence() {
        // Event 4 of mariadb-bin.000001: seq 1, domain 0, flags 0x0c, 6 padding bytes.
        let data = [1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x0c, 0, 0, 0, 0, 0, 0];
        let g = MariaDbGtid::parse(&data, 1).unwrap();
        assert_eq!(g, MariaDbGtid { domain: 0, server_id: 1, sequence: 1, flags: 0x0c });
        assert!(!g.is_standalone() && !g.is_xa());
        assert_eq!(g.gtid().to_string(), "0-1-1");
    }

    #[test]
    fn gtid_event_reads_a_nonzero_domain_and_standalone_flag() {
        let mut data = vec![0u8; 19];
        data[..8].copy_from_slice(&77u64.to_le_bytes());
        data[8..12].copy_from_slice(&3u32.to_le_bytes());
        data[12] = FL_STANDALONE;
        let g = MariaDbGtid::parse(&data, 9).unwrap();
        assert_eq!(g.gtid().to_string(), "3-9-77");
        assert!(g.is_standalone());
    }

    #[test]
    fn short_gtid_event_is_an_error_not_a_panic() {
        assert!(MariaDbGtid::parse(&[1, 2, 3], 1).unwrap_err().contains("13"));
    }

    #[test]
    fn gtid_list_gives_every_entry() {
        let mut data = 2u32.to_le_bytes().to_vec();
        for (d, s, q) in [(0u32, 1u32, 10u64), (1, 2, 20)] {
            data.extend_from_slice(&d.to_le_bytes());
            data.extend_from_slice(&s.to_le_bytes());
            data.extend_from_slice(&q.to_le_bytes());
        }
        let list = parse_gtid_list(&data).unwrap();
        assert_eq!(list.iter().map(|g| g.to_string()).collect::<Vec<_>>(), ["0-1-10", "1-2-20"]);
        assert_eq!(parse_gtid_list(&[0, 0, 0, 0, 0, 0]).unwrap(), vec![]);
        assert!(parse_gtid_list(&data[..20]).is_err());
    }

    #[test]
    fn binlog_checkpoint_names_its_file() {
        let mut data = 18u32.to_le_bytes().to_vec();
        data.extend_from_slice(b"mariadb-bin.000001");
        assert_eq!(parse_binlog_checkpoint(&data).unwrap(), "mariadb-bin.000001");
        assert!(parse_binlog_checkpoint(&data[..10]).is_err());
    }

    #[test]
    fn compressed_event_types_are_recognised() {
        assert!(is_compressed_event(0xa5) && is_compressed_event(0xa9) && is_compressed_event(0xab));
        assert!(!is_compressed_event(GTID_EVENT) && !is_compressed_event(0xac));
    }
}
