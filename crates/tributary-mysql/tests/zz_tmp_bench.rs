// TEMPORARY throughput probe (deleted after measuring).
use std::path::PathBuf;
use mysql_common::binlog::events::Event;
use tributary_mysql::binlog_file::BinlogFileReader;
use tributary_mysql::decoder::{BinlogDecoder, TableMapResolver};

#[test]
fn bench() {
    let p = PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../../../shared/testdata/mysql-binlogs/binlog-invisible-columns.000001"));
    let mut reader = BinlogFileReader::open(&p).unwrap();
    let mut evs = vec![];
    while let Some((_, e)) = reader.next_event().unwrap() { evs.push(e); }
    // events: FDE(0) PREV(1) GTID(2) Q(3) GTID(4) Q(5) GTID(6) BEGIN(7) TME(8) WRITE(9) XID(10)
    let tme = evs.iter().find(|e| e.header().event_type_raw() == 19).unwrap().clone();
    let write = evs.iter().find(|e| e.header().event_type_raw() == 30).unwrap();
    // Rebuild the WRITE_ROWS event with 1000 copies of its row.
    let data = write.data();
    // post-header 10 bytes + lenenc(6)=1 + bitmap 1 = 12; rest = one row
    let (head, row) = data.split_at(12);
    let mut body = head.to_vec();
    for _ in 0..1000 { body.extend_from_slice(row); }
    let size = (19 + body.len() + 4) as u32;
    let mut bytes = write.header().timestamp().to_le_bytes().to_vec();
    bytes.push(30); bytes.extend(1u32.to_le_bytes()); bytes.extend(size.to_le_bytes()); bytes.extend(5000u32.to_le_bytes()); bytes.extend(0u16.to_le_bytes());
    bytes.extend_from_slice(&body); bytes.extend_from_slice(&[0,0,0,0]);
    let big = Event::read(tme.fde(), &bytes[..]).unwrap();
    let mut dec = BinlogDecoder::new(TableMapResolver::new(), "x.000001".into());
    for e in &evs[..9] { dec.decode(e).unwrap(); }
    let mut out = Vec::with_capacity(2000);
    let t = std::time::Instant::now();
    let n = 300;
    for _ in 0..n { dec.decode_into(&tme, &mut out).unwrap(); dec.decode_into(&big, &mut out).unwrap(); assert_eq!(out.len(), 1000); out.clear(); }
    let el = t.elapsed();
    println!("rows/s = {:.0}", (n * 1000) as f64 / el.as_secs_f64());
    // mysql_common alone
    let t = std::time::Instant::now();
    let tm = match tme.read_data().unwrap().unwrap() { mysql_common::binlog::events::EventData::TableMapEvent(t) => t.into_owned(), _ => panic!() };
    let mut c = 0;
    for _ in 0..n { if let Some(mysql_common::binlog::events::EventData::RowsEvent(r)) = big.read_data().unwrap() { for row in r.rows(&tm) { row.unwrap(); c += 1; } } }
    println!("mysql_common only rows/s = {:.0} ({c})", c as f64 / t.elapsed().as_secs_f64());
}
