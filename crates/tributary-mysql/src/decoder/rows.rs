//! Row images of a rows event, read cell by cell with `mysql_common`'s
//! [`BinlogValue`] parser. `mysql_common`'s own `BinlogRow` builds a full
//! column-definition packet (names, charset, flags) for every cell of every
//! row and re-reads the TABLE_MAP's optional metadata per row, which made it
//! two thirds of the decoder's time; this walks the same layout (shared
//! image, null bitmap, present columns) with that work done once per TABLE_MAP.

use std::io;

use mysql_common::binlog::events::TableMapEvent;
use mysql_common::binlog::misc::time_from_packed;
use mysql_common::binlog::value::BinlogValue;
use mysql_common::constants::ColumnType as BinlogType;
use mysql_common::io::ParseBuf;
use mysql_common::value::Value as MyValue;

/// `binlog_row_value_options` bit of partial JSON updates.
const PARTIAL_JSON_UPDATES: u64 = 1;

/// How one TABLE_MAP column's cells are laid out.
#[derive(Debug, Clone)]
pub(crate) struct ColumnLayout {
    /// Real type (ENUM / SET unwrapped from STRING).
    ty: BinlogType,
    meta: Vec<u8>,
    unsigned: bool,
    /// Rank among the table's JSON columns (for the partial-JSON bitmap).
    json_rank: Option<usize>,
}

/// The layout of every column of a TABLE_MAP event; `unsigned[i]` from its signedness metadata.
pub(crate) fn layout(tme: &TableMapEvent<'_>, unsigned: &[bool]) -> Result<Vec<ColumnLayout>, String> {
    let mut json_rank = 0;
    (0..tme.columns_count() as usize)
        .map(|i| {
            let ty = tme
                .get_column_type(i)
                .map_err(|e| format!("column {i}: {e}"))?
                .ok_or_else(|| format!("column {i} has no type"))?;
            let rank = (ty == BinlogType::MYSQL_TYPE_JSON).then(|| {
                json_rank += 1;
                json_rank - 1
            });
            Ok(ColumnLayout {
                ty,
                meta: tme.get_column_metadata(i).unwrap_or_default().to_vec(),
                unsigned: unsigned.get(i).copied().unwrap_or(false),
                json_rank: rank,
            })
        })
        .collect()
}

/// Reads one row image from `buf` into `out` (one value per present column,
/// in column order). `shared_image` is true for the after image of a
/// PARTIAL_UPDATE_ROWS event, which starts with the partial-JSON bitmap.
pub(crate) fn read_image<'a>(
    buf: &mut ParseBuf<'a>,
    layout: &'a [ColumnLayout],
    present: &[usize],
    shared_image: bool,
    out: &mut Vec<BinlogValue<'a>>,
) -> io::Result<()> {
    out.clear();
    let mut partial: &[u8] = &[];
    if shared_image {
        let options = buf.checked_eat_lenenc_int().ok_or_else(eof)?;
        if options & PARTIAL_JSON_UPDATES != 0 {
            let json_columns = layout.iter().filter(|c| c.json_rank.is_some()).count();
            partial = buf.checked_eat(json_columns.div_ceil(8)).ok_or_else(eof)?;
        }
    }
    let nulls = buf.checked_eat(present.len().div_ceil(8)).ok_or_else(eof)?;
    for (k, &i) in present.iter().enumerate() {
        let column = layout.get(i).ok_or_else(|| bad(format!("column {i} is not in the TABLE_MAP")))?;
        if bit(nulls, k) {
            out.push(BinlogValue::Value(MyValue::NULL));
            continue;
        }
        if column.ty == BinlogType::MYSQL_TYPE_TIME2 && matches!(column.meta.first(), Some(1 | 2)) {
            out.push(BinlogValue::Value(time2_hundredths(buf)?));
            continue;
        }
        let is_partial = column.json_rank.is_some_and(|r| bit(partial, r));
        out.push(buf.parse((column.ty, &column.meta[..], column.unsigned, is_partial))?);
    }
    Ok(())
}

/// TIME(1) / TIME(2). `mysql_common` 0.37.3 computes a negative value with a
/// fraction in a `u32` that underflows (a panic in debug builds, a wrong value
/// in release builds); this is the server's arithmetic in `i64`.
fn time2_hundredths(buf: &mut ParseBuf<'_>) -> io::Result<MyValue> {
    let b = buf.checked_eat(4).ok_or_else(eof)?;
    let mut int = ((i64::from(b[0]) << 16) | (i64::from(b[1]) << 8) | i64::from(b[2])) - 0x80_0000;
    let mut frac = i64::from(b[3]);
    if int < 0 && frac > 0 {
        int += 1;
        frac -= 0x100;
    }
    Ok(time_from_packed((int << 24) + frac * 10_000))
}

/// Bit `i` of a little-endian bitmap (false beyond its end).
fn bit(bitmap: &[u8], i: usize) -> bool {
    bitmap.get(i / 8).is_some_and(|b| b & (1 << (i % 8)) != 0)
}

fn eof() -> io::Error {
    io::Error::new(io::ErrorKind::UnexpectedEof, "row image ends early")
}

fn bad(msg: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, msg)
}

#[cfg(test)]
mod tests {
    //! Differential test: every row of every test binlog reads the same as
    //! with `mysql_common`'s `BinlogRow`.

    use super::*;
    use crate::binlog_file::BinlogFileReader;
    use mysql_common::binlog::events::{EventData, OptionalMetaExtractor, RowsEventData};
    use mysql_common::binlog::row::BinlogRow;
    use std::collections::HashMap;
    use std::path::PathBuf;

    fn unsigned_flags(tme: &TableMapEvent<'_>) -> Vec<bool> {
        let extractor = OptionalMetaExtractor::new(tme.iter_optional_meta()).unwrap();
        let mut signedness = extractor.iter_signedness();
        (0..tme.columns_count() as usize)
            .map(|i| {
                let ty = tme.get_column_type(i).unwrap().unwrap();
                ty.is_numeric_type() && signedness.next().unwrap_or(false)
            })
            .collect()
    }

    fn values(row: Option<BinlogRow>) -> Vec<BinlogValue<'static>> {
        row.map(BinlogRow::unwrap).unwrap_or_default()
    }

    fn compare(rows: &RowsEventData<'_>, tme: &TableMapEvent<'static>) -> usize {
        let layout = layout(tme, &unsigned_flags(tme)).unwrap();
        let before_cols: Vec<usize> = rows.columns_before_image().map(|b| b.iter_ones().collect()).unwrap_or_default();
        let after_cols: Vec<usize> = rows.columns_after_image().map(|b| b.iter_ones().collect()).unwrap_or_default();
        let partial = matches!(rows, RowsEventData::PartialUpdateRowsEvent(_));
        let mut buf = ParseBuf(rows.rows_data());
        let (mut before, mut after) = (Vec::new(), Vec::new());
        let mut n = 0;
        for expected in rows.rows(tme) {
            let (b, a) = expected.unwrap();
            if rows.columns_before_image().is_some() {
                read_image(&mut buf, &layout, &before_cols, false, &mut before).unwrap();
                assert_eq!(before, values(b));
            }
            if rows.columns_after_image().is_some() {
                read_image(&mut buf, &layout, &after_cols, partial, &mut after).unwrap();
                assert_eq!(after, values(a));
            }
            n += 1;
        }
        assert!(buf.is_empty());
        n
    }

    /// One TIME(fsp) cell as the binlog stores it, read through `read_image`.
    fn time_cell(fsp: u8, bytes: &[u8]) -> MyValue {
        let layout =
            [ColumnLayout { ty: BinlogType::MYSQL_TYPE_TIME2, meta: vec![fsp], unsigned: false, json_rank: None }];
        let mut image = vec![0u8]; // null bitmap: not NULL
        image.extend_from_slice(bytes);
        let mut out = Vec::new();
        read_image(&mut ParseBuf(&image), &layout, &[0], false, &mut out).unwrap();
        match out.pop() {
            Some(BinlogValue::Value(v)) => v,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn negative_time_with_hundredths_does_not_underflow() {
        // -00:00:01.50 as TIME(2): int part -2 (+ 0x800000), fraction byte -50.
        assert_eq!(time_cell(2, &[0x7f, 0xff, 0xfe, 0xce]), MyValue::Time(true, 0, 0, 0, 1, 500_000));
        // 12:34:56.78 and -838:59:59.9 (TIME(1)).
        let hms = |h: i64, m: i64, s: i64| (h << 12) | (m << 6) | s;
        let enc = |int: i64, frac: u8| {
            let v = (int + 0x80_0000) as u32;
            [(v >> 16) as u8, (v >> 8) as u8, v as u8, frac]
        };
        assert_eq!(time_cell(2, &enc(hms(12, 34, 56), 78)), MyValue::Time(false, 0, 12, 34, 56, 780_000));
        let neg = -(hms(838, 59, 59) + 1);
        assert_eq!(time_cell(1, &enc(neg, (-90i8) as u8)), MyValue::Time(true, 34, 22, 59, 59, 900_000));
    }

    #[test]
    fn reads_every_row_of_the_test_binlogs_like_mysql_common() {
        let dir = PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data"));
        let mut total = 0;
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            let Ok(mut reader) = BinlogFileReader::open(&path) else { continue };
            let mut maps: HashMap<u64, TableMapEvent<'static>> = HashMap::new();
            while let Ok(Some((_, event))) = reader.next_event() {
                match event.read_data() {
                    Ok(Some(EventData::TableMapEvent(t))) => {
                        maps.insert(t.table_id(), t.into_owned());
                    }
                    Ok(Some(EventData::RowsEvent(rows))) => total += compare(&rows, &maps[&rows.table_id()]),
                    _ => {}
                }
            }
        }
        assert!(total >= 40, "only {total} rows compared");
    }
}
