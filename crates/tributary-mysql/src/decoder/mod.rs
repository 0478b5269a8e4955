//! Binlog events (from a file or the live stream) to [`ChangeEvent`]s: the
//! [`BinlogDecoder`] tracks the current file and position, the GTID and
//! boundaries of each transaction, the TABLE_MAP of each table id and
//! compressed transaction payloads, and turns rows events into typed rows.
//!
//! Modules: [`error`] (the error type), [`values`] (one cell to a typed
//! value), [`table_map`] (schemas from TABLE_MAP events for offline files),
//! [`mariadb`] (MariaDB's own events), [`ddl`] (the tables a DDL statement
//! touches), `json` (binary JSON and JSON diffs), `rows` (row images of rows
//! events).
//!
//! DDL: the decoder asks its [`SchemaResolver`] what a statement on a table
//! means ([`SchemaResolver::table_ddl`]). `TRUNCATE` becomes Begin /
//! Truncate / Commit at once; a change that needs the table's new schema is
//! left as a [`PendingDdl`] for the caller, who reads the schema from the
//! live catalog and hands it back ([`BinlogDecoder::finish_ddl`]), which emits
//! the `SchemaChange` at the statement's position. Before rows are decoded,
//! the TABLE_MAP is checked against the schema ([`table_map::check_columns`]):
//! a TABLE_MAP the schema does not describe is never decoded with it.

pub mod ddl;
mod error;
mod json;
pub mod mariadb;
mod rows;
pub mod table_map;
pub mod values;

pub use ddl::TableDdl;
pub use error::DecodeError;
pub use table_map::TableMapResolver;
pub use values::decode_cell;

use std::collections::{HashMap, HashSet};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::Arc;

use mysql_common::binlog::consts::{EventFlags, EventType};
use mysql_common::binlog::events::{
    Event, EventData, GtidEvent, QueryEvent, RotateEvent, RowsEventData, TableMapEvent, TransactionPayloadEvent,
};
use mysql_common::binlog::value::BinlogValue;
use mysql_common::io::ParseBuf;
use mysql_common::value::Value as MyValue;
use tributary_core::{ChangeEvent, Gtid, MySqlPosition, Row, SourcePosition, TableId, TableSchema, Value};

use crate::binlog_file::{read_event, ReadError};
use table_map::TablePlan;

/// Rows events for this table id are dummies that only end a statement.
const DUMMY_TABLE_ID: u64 = 0x00ff_ffff;
/// MySQL's HEARTBEAT_LOG_EVENT_V2, which `mysql_common` does not know.
const HEARTBEAT_V2: u8 = 0x29;

/// Gives the schema of each table a TABLE_MAP event names, and says what DDL
/// statements mean for the tables it serves.
pub trait SchemaResolver: Send {
    /// Schema for the table named in this TABLE_MAP event; Ok(None) = table not selected, skip its rows.
    /// Called for every TABLE_MAP event (cache inside if you like).
    fn resolve(&mut self, tme: &TableMapEvent<'_>) -> Result<Option<Arc<TableSchema>>, DecodeError>;

    /// Like [`SchemaResolver::resolve`], told where the TABLE_MAP event ends
    /// (e.g. to skip rows a sink already holds). The decoder calls this one.
    fn resolve_at(
        &mut self,
        tme: &TableMapEvent<'_>,
        _position: &MySqlPosition,
    ) -> Result<Option<Arc<TableSchema>>, DecodeError> {
        self.resolve(tme)
    }

    /// Schemas that changed while resolving (a TABLE_MAP that the loaded
    /// schema did not describe); the decoder emits a `SchemaChange` for each.
    fn take_schema_changes(&mut self) -> Vec<Arc<TableSchema>> {
        Vec::new()
    }

    /// What the DDL statement ending at `position` means for a table. The
    /// default knows nothing beyond TABLE_MAP events (offline files).
    fn table_ddl(&mut self, _ddl: &TableDdl, _position: &MySqlPosition) -> Result<DdlAction, DecodeError> {
        Ok(DdlAction::Nothing)
    }

    /// The schema read from the catalog for a [`DdlAction::Reload`] (`None`:
    /// the table is not in the catalog). Returns the schema to announce in
    /// a `SchemaChange`, if it differs from the one served so far.
    fn schema_loaded(
        &mut self,
        _table: &TableId,
        _schema: Option<Arc<TableSchema>>,
        _position: &MySqlPosition,
    ) -> Option<Arc<TableSchema>> {
        None
    }
}

impl<R: SchemaResolver + ?Sized> SchemaResolver for Box<R> {
    fn resolve(&mut self, tme: &TableMapEvent<'_>) -> Result<Option<Arc<TableSchema>>, DecodeError> {
        (**self).resolve(tme)
    }

    fn resolve_at(
        &mut self,
        tme: &TableMapEvent<'_>,
        position: &MySqlPosition,
    ) -> Result<Option<Arc<TableSchema>>, DecodeError> {
        (**self).resolve_at(tme, position)
    }

    fn take_schema_changes(&mut self) -> Vec<Arc<TableSchema>> {
        (**self).take_schema_changes()
    }

    fn table_ddl(&mut self, ddl: &TableDdl, position: &MySqlPosition) -> Result<DdlAction, DecodeError> {
        (**self).table_ddl(ddl, position)
    }

    fn schema_loaded(
        &mut self,
        table: &TableId,
        schema: Option<Arc<TableSchema>>,
        position: &MySqlPosition,
    ) -> Option<Arc<TableSchema>> {
        (**self).schema_loaded(table, schema, position)
    }
}

/// What a DDL statement means for one table ([`SchemaResolver::table_ddl`]).
#[derive(Debug, Clone, PartialEq)]
pub enum DdlAction {
    /// Nothing to emit (table not captured, already held downstream, dropped, ...).
    Nothing,
    /// The table's schema changed: read it from the catalog. With
    /// `truncate`, the table's earlier rows are gone too (a table created
    /// again under a name that was captured before).
    Reload { table: TableId, truncate: bool },
    /// Every row of the table was deleted (`TRUNCATE`).
    Truncate(Arc<TableSchema>),
}

/// A DDL statement whose tables need their schema from the live catalog
/// before decoding goes on ([`BinlogDecoder::take_pending_ddl`]).
#[derive(Debug, Clone, PartialEq)]
pub struct PendingDdl {
    /// The tables to read, in statement order, and whether each one's earlier rows are gone.
    pub tables: Vec<(TableId, bool)>,
    /// Where the statement ends: the position of its `SchemaChange`s.
    pub position: MySqlPosition,
    pub commit_ts: i64,
    /// The statement.
    pub ddl: String,
    /// Inside a transaction (MariaDB's `CREATE TABLE ... SELECT`, whose rows follow).
    in_tx: bool,
}

/// A TABLE_MAP seen for a table id, with the plan to decode its rows
/// (`None`: the resolver did not select the table).
struct TableEntry {
    tme: TableMapEvent<'static>,
    plan: Option<TablePlan>,
}

/// Where one event sits: `start` names it in errors, `end` (the header's
/// log_pos) is the position its change events carry.
#[derive(Debug, Clone, Copy)]
struct EventCtx {
    start: u64,
    end: u64,
    /// False for events without a position of their own (artificial events,
    /// events inside a transaction payload).
    track: bool,
    /// Header timestamp, seconds.
    timestamp: u32,
}

/// Which row images a rows event carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum RowKind {
    Insert,
    Update,
    Delete,
}

/// Turns binlog events into change events, one event at a time.
pub struct BinlogDecoder<R: SchemaResolver> {
    resolver: R,
    file: String,
    offset: u64,
    gtid: Option<Gtid>,
    tables: HashMap<u64, TableEntry>,
    in_tx: bool,
    /// Rows emitted in the open transaction.
    tx_rows: usize,
    /// Commit timestamp announced by the last GTID event (micros), for the next transaction.
    next_commit_ts: Option<i64>,
    commit_ts: i64,
    /// File named in errors instead of the current binlog (set by the file reader).
    error_file: Option<String>,
    /// Tables already warned about for rows lacking after-image columns.
    warned_partial: HashSet<u64>,
    /// DDL statements waiting for their tables' schemas.
    pending: Vec<PendingDdl>,
}

impl<R: SchemaResolver> BinlogDecoder<R> {
    /// `file` = name of the binlog file the first event comes from (Rotate events update it).
    pub fn new(resolver: R, file: String) -> Self {
        BinlogDecoder {
            resolver,
            file,
            offset: 4,
            gtid: None,
            tables: HashMap::new(),
            in_tx: false,
            tx_rows: 0,
            next_commit_ts: None,
            commit_ts: 0,
            error_file: None,
            warned_partial: HashSet::new(),
            pending: Vec::new(),
        }
    }

    /// Starts with `gtid` as the last transaction before the first event (the
    /// resume position's label), so positions read before the next
    /// transaction keep it.
    pub fn with_gtid(mut self, gtid: Option<Gtid>) -> Self {
        self.gtid = gtid;
        self
    }

    /// The DDL statement the last event fed was, if its tables need their
    /// schema read from the catalog: read them (`None` for a table not in
    /// the catalog) and pass them to [`Self::finish_ddl`] before feeding the
    /// next event.
    pub fn take_pending_ddl(&mut self) -> Option<PendingDdl> {
        if self.pending.is_empty() {
            return None;
        }
        Some(self.pending.remove(0))
    }

    /// Completes a [`PendingDdl`] with the schemas read for its tables: the
    /// resolver serves them from now on, and each one that changed is a
    /// `SchemaChange` at the statement's position (its own transaction, or
    /// inside the open one), followed by a `Truncate` for a table whose
    /// earlier rows are gone.
    pub fn finish_ddl(
        &mut self,
        pending: PendingDdl,
        mut loaded: HashMap<TableId, Option<Arc<TableSchema>>>,
    ) -> Vec<ChangeEvent> {
        let mut out = Vec::new();
        let position = SourcePosition::MySql(pending.position.clone());
        for (table, truncate) in &pending.tables {
            let schema = loaded.remove(table).flatten();
            let present = schema.clone();
            if let Some(changed) = self.resolver.schema_loaded(table, schema, &pending.position) {
                tracing::info!(table = %table, position = %position, ddl = %excerpt(&pending.ddl), "schema change");
                out.push(ChangeEvent::SchemaChange {
                    table: changed,
                    position: position.clone(),
                    commit_ts: pending.commit_ts,
                    ddl: pending.ddl.clone(),
                    renamed: ddl::renamed_columns(&pending.ddl),
                });
            }
            if let (true, Some(schema)) = (*truncate, present) {
                tracing::info!(table = %table, position = %position, "table created again: its earlier rows are gone");
                push_truncate(&mut out, schema, &position, pending.commit_ts, pending.in_tx);
            }
        }
        out
    }

    /// Feeds one event (as read from a file or the live stream); returns the ChangeEvents it completes (maybe none).
    pub fn decode(&mut self, event: &Event) -> Result<Vec<ChangeEvent>, DecodeError> {
        let mut out = Vec::new();
        self.decode_into(event, &mut out)?;
        Ok(out)
    }

    /// Like [`BinlogDecoder::decode`], appending to `out` (lets a caller reuse one buffer).
    pub fn decode_into(&mut self, event: &Event, out: &mut Vec<ChangeEvent>) -> Result<(), DecodeError> {
        let header = event.header();
        let end = u64::from(header.log_pos());
        let size = u64::from(header.event_size());
        let start = if end >= size && end != 0 { end - size } else { self.offset };
        self.guarded(event, EventCtx { start, end, track: end != 0, timestamp: header.timestamp() }, out)
    }

    /// Decodes an event read from a file at byte offset `start` (named in errors).
    pub(crate) fn decode_file_event(
        &mut self,
        event: &Event,
        start: u64,
        out: &mut Vec<ChangeEvent>,
    ) -> Result<(), DecodeError> {
        let header = event.header();
        let end = u64::from(header.log_pos());
        self.guarded(event, EventCtx { start, end, track: end != 0, timestamp: header.timestamp() }, out)
    }

    /// Names `file` instead of the current binlog in errors (a file reader's own file).
    pub(crate) fn set_error_file(&mut self, file: String) {
        self.error_file = Some(file);
    }

    /// Position after the last event fed (file + end offset of that event, from the event header's log_pos)
    /// with the current transaction's GTID.
    pub fn position(&self) -> MySqlPosition {
        MySqlPosition { file: self.file.clone(), offset: self.offset, gtid: self.gtid.clone() }
    }

    /// True between a transaction's Begin and its Commit.
    pub fn in_transaction(&self) -> bool {
        self.in_tx
    }

    /// The schema resolver, e.g. to change what it serves.
    pub fn resolver_mut(&mut self) -> &mut R {
        &mut self.resolver
    }

    /// Runs [`Self::process`], turning a panic inside the binlog parser
    /// (malformed input reaching an unchecked index) into an error.
    fn guarded(&mut self, event: &Event, ctx: EventCtx, out: &mut Vec<ChangeEvent>) -> Result<(), DecodeError> {
        match catch_unwind(AssertUnwindSafe(|| self.process(event, ctx, out))) {
            Ok(result) => result,
            Err(panic) => {
                let reason = panic
                    .downcast_ref::<&str>()
                    .map(|s| s.to_string())
                    .or_else(|| panic.downcast_ref::<String>().cloned())
                    .unwrap_or_else(|| "unknown panic".into());
                Err(self.corrupt(event, &ctx, format!("the binlog parser failed on it ({reason})")))
            }
        }
    }

    fn process(&mut self, event: &Event, ctx: EventCtx, out: &mut Vec<ChangeEvent>) -> Result<(), DecodeError> {
        if ctx.track {
            self.offset = ctx.end;
        }
        let data = match event.read_data() {
            Ok(Some(data)) => data,
            Ok(None) => return self.untyped(event, ctx, out),
            Err(e) => return Err(self.corrupt(event, &ctx, e.to_string())),
        };
        match data {
            EventData::FormatDescriptionEvent(fde) => {
                tracing::debug!(server = %fde.server_version().trim_end_matches('\0'), "binlog format description");
            }
            EventData::RotateEvent(r) => self.rotate(&r),
            EventData::GtidEvent(g) => self.mysql_gtid(&g, false, &ctx),
            EventData::AnonymousGtidEvent(g) => self.mysql_gtid(&g.0, true, &ctx),
            EventData::QueryEvent(q) => self.query(&q, &ctx, out)?,
            EventData::XidEvent(_) => self.commit(&ctx, out),
            EventData::TableMapEvent(tme) => self.table_map(tme, &ctx, out)?,
            EventData::RowsEvent(rows) => self.rows(&rows, &ctx, out)?,
            EventData::TransactionPayloadEvent(p) => self.payload(&p, event, &ctx, out)?,
            EventData::XaPrepareLogEvent(_) => return Err(self.xa(&ctx)),
            EventData::IncidentEvent(i) => {
                return Err(self.unsupported(
                    &ctx,
                    format!("an INCIDENT event ({:?}: {})", i.incident_type(), i.message()),
                    "the source lost changes (e.g. a failed statement on a non-transactional table); re-snapshot the affected tables",
                ))
            }
            EventData::PreGaWriteRowsEvent(_) | EventData::PreGaUpdateRowsEvent(_) | EventData::PreGaDeleteRowsEvent(_) => {
                return Err(self.unsupported(&ctx, "a pre-GA rows event (MySQL 5.1.0 - 5.1.15)", "upgrade the source server"))
            }
            EventData::StartEventV3(_) => {
                return Err(self.unsupported(&ctx, "a binlog of format version 1-3 (MySQL < 5.0)", "upgrade the source server"))
            }
            EventData::LoadEvent(_)
            | EventData::NewLoadEvent(_)
            | EventData::ExecLoadEvent(_)
            | EventData::CreateFileEvent(_)
            | EventData::ExecuteLoadQueryEvent(_) => {
                return Err(self.statement_based(&ctx, "LOAD DATA"));
            }
            EventData::RowsQueryEvent(q) => tracing::trace!(query = %q.query(), "rows query"),
            // Statement-based auxiliaries, file chunks of LOAD DATA (refused at its execute event),
            // GTID bookkeeping, group replication, heartbeats and padding: nothing to emit.
            EventData::IntvarEvent(_)
            | EventData::RandEvent(_)
            | EventData::UserVarEvent(_)
            | EventData::BeginLoadQueryEvent(_)
            | EventData::AppendBlockEvent(_)
            | EventData::DeleteFileEvent(_)
            | EventData::PreviousGtidsEvent(_)
            | EventData::TransactionContextEvent(_)
            | EventData::ViewChangeEvent(_)
            | EventData::HeartbeatEvent
            | EventData::IgnorableEvent(_)
            | EventData::StopEvent
            | EventData::SlaveEvent
            | EventData::UnknownEvent => {}
        }
        Ok(())
    }

    /// Events `mysql_common` does not type: MariaDB's own, and newer MySQL ones.
    fn untyped(&mut self, event: &Event, ctx: EventCtx, out: &mut Vec<ChangeEvent>) -> Result<(), DecodeError> {
        let header = event.header();
        let raw = header.event_type_raw();
        match raw {
            mariadb::GTID_EVENT => {
                let g = mariadb::MariaDbGtid::parse(event.data(), header.server_id())
                    .map_err(|reason| self.corrupt(event, &ctx, reason))?;
                if g.is_xa() {
                    return Err(self.xa(&ctx));
                }
                self.gtid = Some(g.gtid());
                self.next_commit_ts = Some(i64::from(header.timestamp()) * 1_000_000);
                if !g.is_standalone() {
                    self.begin(&ctx, out);
                }
            }
            mariadb::ANNOTATE_ROWS_EVENT => {
                tracing::trace!(query = %mariadb::parse_annotate_rows(event.data()), "annotate rows");
            }
            mariadb::GTID_LIST_EVENT => {
                let list =
                    mariadb::parse_gtid_list(event.data()).map_err(|reason| self.corrupt(event, &ctx, reason))?;
                tracing::debug!(gtids = ?list, "MariaDB GTID list");
            }
            mariadb::BINLOG_CHECKPOINT_EVENT => {
                let file = mariadb::parse_binlog_checkpoint(event.data()).map_err(|r| self.corrupt(event, &ctx, r))?;
                tracing::debug!(%file, "MariaDB binlog checkpoint");
            }
            mariadb::START_ENCRYPTION_EVENT => {
                return Err(self.unsupported(
                    &ctx,
                    "an encrypted binlog (MariaDB START_ENCRYPTION event)",
                    "read it through the server's replication stream, which decrypts it",
                ))
            }
            t if mariadb::is_compressed_event(t) => {
                return Err(self.unsupported(
                    &ctx,
                    format!("a MariaDB compressed event (type {t:#04x})"),
                    "run SET GLOBAL log_bin_compress=OFF on the source",
                ))
            }
            HEARTBEAT_V2 => {}
            _ if header.flags().contains(EventFlags::LOG_EVENT_IGNORABLE_F) => {
                tracing::debug!(event_type = raw, "ignorable binlog event skipped");
            }
            _ => {
                return Err(self.unsupported(
                    &ctx,
                    format!("binlog event type {raw}"),
                    "this server version writes events Tributary does not know; report it with the server version",
                ))
            }
        }
        Ok(())
    }

    fn rotate(&mut self, r: &RotateEvent<'_>) {
        // The server's first (artificial) ROTATE names the file we asked for and comes before
        // the format description, so its 4-byte checksum is still attached to the name.
        let raw = r.name_raw();
        if raw.len() == self.file.len() + 4 && raw.starts_with(self.file.as_bytes()) {
            self.offset = r.position();
            return;
        }
        let name = r.name();
        let name = name.trim_end_matches('\0');
        if name != self.file {
            // Table ids are re-announced by every transaction; do not let the map grow forever.
            self.tables.clear();
            self.file = name.to_string();
        }
        self.offset = r.position();
    }

    fn mysql_gtid(&mut self, g: &GtidEvent, anonymous: bool, ctx: &EventCtx) {
        self.gtid = if anonymous {
            None
        } else {
            Some(Gtid::MySql {
                uuid: format_uuid(&g.sid()),
                tag: g.tag().map(|t| t.as_str().to_string()),
                transaction_id: g.gno(),
            })
        };
        let immediate = g.immediate_commit_timestamp();
        self.next_commit_ts = Some(match i64::try_from(immediate) {
            Ok(micros) if micros > 0 => micros,
            _ => i64::from(ctx.timestamp) * 1_000_000,
        });
    }

    fn query(&mut self, q: &QueryEvent<'_>, ctx: &EventCtx, out: &mut Vec<ChangeEvent>) -> Result<(), DecodeError> {
        let sql = q.query();
        match classify(&sql) {
            Statement::Begin => self.begin(ctx, out),
            Statement::Commit => self.commit(ctx, out),
            Statement::Rollback if self.tx_rows > 0 => {
                return Err(self.unsupported(
                    ctx,
                    "a transaction ending in ROLLBACK after row changes (it touched non-transactional tables)",
                    "convert the tables to InnoDB so failed transactions are not written to the binlog",
                ))
            }
            Statement::Rollback => self.commit(ctx, out),
            Statement::Savepoint => {}
            Statement::Xa => return Err(self.xa(ctx)),
            Statement::Dml => return Err(self.statement_based(ctx, &sql)),
            Statement::Other => {
                let changes = ddl::parse(&sql, &q.schema());
                if changes.is_empty() {
                    tracing::debug!(schema = %q.schema(), query = %sql, in_tx = self.in_tx, "statement without table changes");
                }
                let commit_ts = if self.in_tx {
                    self.commit_ts
                } else {
                    let ts = self.next_commit_ts.take();
                    ts.unwrap_or(i64::from(ctx.timestamp) * 1_000_000)
                };
                if !changes.is_empty() {
                    self.ddl(&changes, &sql, commit_ts, ctx, out)?;
                }
            }
        }
        Ok(())
    }

    /// A DDL statement: what each table change means, from the resolver.
    fn ddl(
        &mut self,
        changes: &[TableDdl],
        sql: &str,
        commit_ts: i64,
        ctx: &EventCtx,
        out: &mut Vec<ChangeEvent>,
    ) -> Result<(), DecodeError> {
        let position = self.mysql_pos(ctx.end);
        let (file, offset) = self.location(ctx);
        let mut reload = Vec::new();
        for change in changes {
            match self.resolver.table_ddl(change, &position).map_err(|e| e.in_event(&file, offset))? {
                DdlAction::Nothing => {}
                DdlAction::Reload { table, truncate } => reload.push((table, truncate)),
                DdlAction::Truncate(schema) => {
                    tracing::info!(table = %schema.id, position = %SourcePosition::MySql(position.clone()), "TRUNCATE");
                    push_truncate(out, schema, &SourcePosition::MySql(position.clone()), commit_ts, self.in_tx);
                }
            }
        }
        if !reload.is_empty() {
            let in_tx = self.in_tx;
            self.pending.push(PendingDdl { tables: reload, position, commit_ts, ddl: sql.to_string(), in_tx });
        }
        Ok(())
    }

    fn begin(&mut self, ctx: &EventCtx, out: &mut Vec<ChangeEvent>) {
        if self.in_tx {
            return;
        }
        self.in_tx = true;
        self.tx_rows = 0;
        self.commit_ts = self.next_commit_ts.take().unwrap_or(i64::from(ctx.timestamp) * 1_000_000);
        out.push(ChangeEvent::Begin { position: self.pos(ctx.end), commit_ts: self.commit_ts });
    }

    fn commit(&mut self, ctx: &EventCtx, out: &mut Vec<ChangeEvent>) {
        if !self.in_tx {
            tracing::debug!(offset = ctx.end, "commit without an open transaction ignored");
            return;
        }
        self.in_tx = false;
        out.push(ChangeEvent::Commit { position: self.pos(ctx.end), commit_ts: self.commit_ts });
    }

    fn pos(&self, end: u64) -> SourcePosition {
        SourcePosition::MySql(self.mysql_pos(end))
    }

    fn mysql_pos(&self, end: u64) -> MySqlPosition {
        let offset = if end == 0 { self.offset } else { end };
        MySqlPosition { file: self.file.clone(), offset, gtid: self.gtid.clone() }
    }

    fn table_map(
        &mut self,
        tme: TableMapEvent<'_>,
        ctx: &EventCtx,
        out: &mut Vec<ChangeEvent>,
    ) -> Result<(), DecodeError> {
        let id = tme.table_id();
        let (file, offset) = self.location(ctx);
        let position = self.mysql_pos(ctx.end);
        let schema = self.resolver.resolve_at(&tme, &position).map_err(|e| e.in_event(&file, offset))?;
        for changed in self.resolver.take_schema_changes() {
            out.push(ChangeEvent::SchemaChange {
                table: changed,
                position: SourcePosition::MySql(position.clone()),
                commit_ts: self.commit_ts,
                ddl: String::new(),
                renamed: Vec::new(),
            });
        }
        if let Some(entry) = self.tables.get(&id) {
            let same = match (&entry.plan, &schema) {
                (Some(plan), Some(schema)) => Arc::ptr_eq(&plan.schema, schema),
                (None, None) => true,
                _ => false,
            };
            if same && entry.tme == tme {
                return Ok(());
            }
        }
        let plan = match schema {
            Some(schema) => {
                let table = schema.id.to_string();
                let plan = TablePlan::new(schema, &tme).map_err(|detail| DecodeError::SchemaMismatch {
                    table,
                    file,
                    offset,
                    detail,
                })?;
                Some(plan)
            }
            None => None,
        };
        self.warned_partial.remove(&id);
        self.tables.insert(id, TableEntry { tme: tme.into_owned(), plan });
        Ok(())
    }

    fn rows(&mut self, ev: &RowsEventData<'_>, ctx: &EventCtx, out: &mut Vec<ChangeEvent>) -> Result<(), DecodeError> {
        let table_id = ev.table_id();
        let Some(entry) = self.tables.get(&table_id) else {
            if table_id == DUMMY_TABLE_ID {
                return Ok(());
            }
            let (file, offset) = self.location(ctx);
            return Err(DecodeError::UnknownTable { file, offset, table_id });
        };
        if entry.plan.is_none() {
            return Ok(());
        }
        if !self.in_tx {
            tracing::warn!(offset = ctx.end, "rows event outside a transaction; opening one");
            self.begin(ctx, out);
        }
        let first = out.len();
        self.emit_rows(ev, ctx, out)?;
        self.tx_rows += out.len() - first;
        Ok(())
    }

    fn emit_rows(
        &mut self,
        ev: &RowsEventData<'_>,
        ctx: &EventCtx,
        out: &mut Vec<ChangeEvent>,
    ) -> Result<(), DecodeError> {
        let (file, offset) = self.location(ctx);
        let Some(plan) = &self.tables[&ev.table_id()].plan else { return Ok(()) };
        let kind = match ev {
            RowsEventData::WriteRowsEventV1(_) | RowsEventData::WriteRowsEvent(_) => RowKind::Insert,
            RowsEventData::DeleteRowsEventV1(_) | RowsEventData::DeleteRowsEvent(_) => RowKind::Delete,
            _ => RowKind::Update,
        };
        let partial = matches!(ev, RowsEventData::PartialUpdateRowsEvent(_));
        let before_cols: Option<Vec<usize>> = ev.columns_before_image().map(|b| b.iter_ones().collect());
        let after_cols: Option<Vec<usize>> = ev.columns_after_image().map(|b| b.iter_ones().collect());
        let loc = Loc { file: &file, offset };
        let position = self.pos(ctx.end);
        let commit_ts = self.commit_ts;
        let mut buf = ParseBuf(ev.rows_data());
        // Cell buffers reused by every row of the event.
        let (mut before, mut after) = (Vec::new(), Vec::new());
        let mut lacks_after = false;
        while !buf.is_empty() {
            let corrupt = |e: std::io::Error| loc.corrupt(&event_kind(kind), e.to_string());
            if let Some(cols) = &before_cols {
                rows::read_image(&mut buf, &plan.layout, cols, false, &mut before).map_err(corrupt)?;
            }
            if let Some(cols) = &after_cols {
                rows::read_image(&mut buf, &plan.layout, cols, partial, &mut after).map_err(corrupt)?;
            }
            let (table, position) = (Arc::clone(&plan.schema), position.clone());
            let change = match kind {
                RowKind::Insert => {
                    let (after, lacks) = image_row(plan, after.drain(..), after_cols.as_deref(), Image::After, &loc)?;
                    lacks_after |= lacks;
                    ChangeEvent::Insert { table, position, commit_ts, after }
                }
                RowKind::Delete => {
                    let (before, _) = image_row(plan, before.drain(..), before_cols.as_deref(), Image::Before, &loc)?;
                    ChangeEvent::Delete { table, position, commit_ts, before }
                }
                RowKind::Update => {
                    if partial {
                        apply_json_diffs(
                            plan,
                            &before,
                            before_cols.as_deref(),
                            &mut after,
                            after_cols.as_deref(),
                            &loc,
                        )?;
                    }
                    let (before, _) = image_row(plan, before.drain(..), before_cols.as_deref(), Image::Before, &loc)?;
                    let (after, lacks) = image_row(plan, after.drain(..), after_cols.as_deref(), Image::After, &loc)?;
                    lacks_after |= lacks;
                    ChangeEvent::Update { table, position, commit_ts, before, after }
                }
            };
            out.push(change);
        }
        if lacks_after && self.warned_partial.insert(ev.table_id()) {
            tracing::warn!(
                table = %plan.schema.id,
                "row after images lack columns (binlog_row_image is not FULL, or hidden generated columns); \
                 those cells are Unchanged"
            );
        }
        Ok(())
    }

    fn payload(
        &mut self,
        p: &TransactionPayloadEvent<'_>,
        outer: &Event,
        ctx: &EventCtx,
        out: &mut Vec<ChangeEvent>,
    ) -> Result<(), DecodeError> {
        let mut reader = p.decompressed().map_err(|e| self.corrupt(outer, ctx, e.to_string()))?;
        let mut footer = outer.fde().footer();
        footer.set_checksum_enabled(false);
        let fde = outer.fde().clone().with_footer(footer);
        // Inner events share the payload's place: errors name it, positions are its end.
        let inner = EventCtx { track: false, ..*ctx };
        let mut remaining = p.uncompressed_size();
        loop {
            let event = match read_event(&fde, &mut reader, Some(remaining)) {
                Ok(Some(event)) => event,
                Ok(None) => return Ok(()),
                Err(ReadError::Truncated(reason) | ReadError::Invalid(reason)) => {
                    return Err(self.corrupt(outer, ctx, format!("inside the compressed payload: {reason}")))
                }
                Err(ReadError::Io(e)) => {
                    return Err(self.corrupt(outer, ctx, format!("decompressing the payload: {e}")))
                }
            };
            remaining = remaining.saturating_sub(u64::from(event.header().event_size()));
            if event.header().event_type_raw() == EventType::TRANSACTION_PAYLOAD_EVENT as u8 {
                return Err(self.corrupt(outer, ctx, "a transaction payload nested in another".into()));
            }
            self.process(&event, EventCtx { timestamp: event.header().timestamp(), ..inner }, out)?;
        }
    }

    /// File and byte offset that errors about this event name.
    fn location(&self, ctx: &EventCtx) -> (String, u64) {
        (self.error_file.clone().unwrap_or_else(|| self.file.clone()), ctx.start)
    }

    fn corrupt(&self, event: &Event, ctx: &EventCtx, reason: String) -> DecodeError {
        let (file, offset) = self.location(ctx);
        DecodeError::Corrupt { file, offset, event: event_name(event), reason }
    }

    fn unsupported(&self, ctx: &EventCtx, what: impl Into<String>, fix: &str) -> DecodeError {
        let (file, offset) = self.location(ctx);
        DecodeError::Unsupported { what: what.into(), file, offset, fix: fix.to_string() }
    }

    fn statement_based(&self, ctx: &EventCtx, sql: &str) -> DecodeError {
        let (file, offset) = self.location(ctx);
        DecodeError::StatementBased { file, offset, query: excerpt(sql) }
    }

    fn xa(&self, ctx: &EventCtx) -> DecodeError {
        self.unsupported(
            ctx,
            "an XA transaction",
            "XA transactions are binlogged at PREPARE, before they commit or roll back; stop using XA on captured tables",
        )
    }
}

/// Begin / Truncate / Commit at `position`, or just the Truncate inside an open transaction.
fn push_truncate(
    out: &mut Vec<ChangeEvent>,
    table: Arc<TableSchema>,
    position: &SourcePosition,
    commit_ts: i64,
    in_tx: bool,
) {
    if !in_tx {
        out.push(ChangeEvent::Begin { position: position.clone(), commit_ts });
    }
    out.push(ChangeEvent::Truncate { table, position: position.clone(), commit_ts });
    if !in_tx {
        out.push(ChangeEvent::Commit { position: position.clone(), commit_ts });
    }
}

/// File and offset of the event being decoded, for errors.
struct Loc<'a> {
    file: &'a str,
    offset: u64,
}

impl Loc<'_> {
    fn corrupt(&self, event: &str, reason: String) -> DecodeError {
        DecodeError::Corrupt { file: self.file.to_string(), offset: self.offset, event: event.to_string(), reason }
    }
}

/// The event type name of a rows event kind, for messages.
fn event_kind(kind: RowKind) -> String {
    match kind {
        RowKind::Insert => "WRITE_ROWS",
        RowKind::Update => "UPDATE_ROWS",
        RowKind::Delete => "DELETE_ROWS",
    }
    .to_string()
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Image {
    Before,
    After,
}

/// One row image in schema column order; the flag says whether after-image cells were missing.
fn image_row<'a>(
    plan: &TablePlan,
    values: impl Iterator<Item = BinlogValue<'a>>,
    present: Option<&[usize]>,
    image: Image,
    loc: &Loc<'_>,
) -> Result<(Row, bool), DecodeError> {
    let present = present.ok_or_else(|| loc.corrupt("rows", format!("the {image:?} image is missing")))?;
    let columns = &plan.schema.columns;
    let mut row: Row = vec![Value::Unchanged; columns.len()];
    let mut filled = 0;
    for (binlog_idx, value) in present.iter().zip(values) {
        let Some(i) = plan.to_schema.get(*binlog_idx).copied().flatten() else { continue };
        row[i] =
            plan.cells[i].decode(value, &columns[i], &plan.schema.id).map_err(|e| e.in_event(loc.file, loc.offset))?;
        filled += 1;
    }
    if filled == columns.len() {
        return Ok((row, false));
    }
    if image == Image::Before {
        let missing = row.iter().position(|v| *v == Value::Unchanged).unwrap_or(0);
        return Err(DecodeError::MissingColumns {
            table: plan.schema.id.to_string(),
            column: columns[missing].name.clone(),
            image: "before",
            file: loc.file.to_string(),
            offset: loc.offset,
        });
    }
    Ok((row, true))
}

/// Replaces each partial JSON update of the after image with the full document:
/// the before image's document with the diffs applied.
fn apply_json_diffs(
    plan: &TablePlan,
    before: &[BinlogValue<'_>],
    before_cols: Option<&[usize]>,
    after: &mut [BinlogValue<'_>],
    after_cols: Option<&[usize]>,
    loc: &Loc<'_>,
) -> Result<(), DecodeError> {
    let (before_cols, after_cols) = (before_cols.unwrap_or_default(), after_cols.unwrap_or_default());
    for (k, binlog_idx) in after_cols.iter().enumerate() {
        let Some(BinlogValue::JsonDiff(diffs)) = after.get(k) else { continue };
        let doc = before_cols.iter().position(|b| b == binlog_idx).and_then(|p| before.get(p));
        let text = match doc {
            Some(BinlogValue::Jsonb(doc)) => json::from_jsonb(doc).and_then(|mut doc| {
                diffs.iter().try_for_each(|d| json::apply_diff(&mut doc, d))?;
                Ok(json::to_text(&doc))
            }),
            Some(BinlogValue::Value(MyValue::NULL)) => Err("the before image holds NULL, not a document".into()),
            _ => Err("the before image does not hold the document (binlog_row_image is not FULL)".into()),
        };
        let text = text.map_err(|reason| {
            let column = plan.to_schema.get(*binlog_idx).copied().flatten();
            DecodeError::PartialJson {
                table: plan.schema.id.to_string(),
                column: column.map_or_else(|| format!("#{binlog_idx}"), |i| plan.schema.columns[i].name.clone()),
                file: loc.file.to_string(),
                offset: loc.offset,
                reason,
            }
        })?;
        after[k] = BinlogValue::Value(MyValue::Bytes(text.into_bytes()));
    }
    Ok(())
}

/// What a Query event means for the decoder.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Statement {
    Begin,
    Commit,
    Rollback,
    Savepoint,
    Xa,
    /// A data change logged as a statement.
    Dml,
    /// DDL and everything else.
    Other,
}

fn classify(sql: &str) -> Statement {
    let mut words =
        strip_comments(sql).split(|c: char| c.is_whitespace() || c == ';' || c == '(').filter(|w| !w.is_empty());
    let first = words.next().unwrap_or("").to_ascii_uppercase();
    match first.as_str() {
        "BEGIN" => Statement::Begin,
        "COMMIT" => Statement::Commit,
        "ROLLBACK" if words.next().is_some_and(|w| w.eq_ignore_ascii_case("TO")) => Statement::Savepoint,
        "ROLLBACK" => Statement::Rollback,
        "SAVEPOINT" | "RELEASE" => Statement::Savepoint,
        "XA" => Statement::Xa,
        "INSERT" | "UPDATE" | "DELETE" | "REPLACE" | "LOAD" => Statement::Dml,
        _ => Statement::Other,
    }
}

/// The statement without leading whitespace and `/* ... */` comments (keeps `/*!` version comments' body).
fn strip_comments(sql: &str) -> &str {
    let mut s = sql.trim_start();
    while let Some(rest) = s.strip_prefix("/*") {
        if let Some(body) = rest.strip_prefix('!') {
            // `/*!80000 CREATE ... */`: executable comment; skip the version digits.
            return body.trim_start_matches(|c: char| c.is_ascii_digit()).trim_start();
        }
        match rest.find("*/") {
            Some(end) => s = rest[end + 2..].trim_start(),
            None => return "",
        }
    }
    s
}

/// The first 80 characters of a statement, on one line.
fn excerpt(sql: &str) -> String {
    let one_line: String = sql.split_whitespace().collect::<Vec<_>>().join(" ");
    match one_line.char_indices().nth(80) {
        Some((i, _)) => format!("{}...", &one_line[..i]),
        None => one_line,
    }
}

/// `xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx`, lower-case.
fn format_uuid(sid: &[u8; 16]) -> String {
    let hex: String = sid.iter().map(|b| format!("{b:02x}")).collect();
    format!("{}-{}-{}-{}-{}", &hex[..8], &hex[8..12], &hex[12..16], &hex[16..20], &hex[20..])
}

/// The event's type, for messages.
fn event_name(event: &Event) -> String {
    let header = event.header();
    match header.event_type() {
        Ok(t) => format!("{t:?}"),
        Err(_) => format!("type {}", header.event_type_raw()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statements_are_classified_by_their_first_keyword() {
        assert_eq!(classify("BEGIN"), Statement::Begin);
        assert_eq!(classify("  commit"), Statement::Commit);
        assert_eq!(classify("ROLLBACK"), Statement::Rollback);
        assert_eq!(classify("ROLLBACK TO sp1"), Statement::Savepoint);
        assert_eq!(classify("SAVEPOINT sp1"), Statement::Savepoint);
        assert_eq!(classify("XA START 'x'"), Statement::Xa);
        assert_eq!(classify("INSERT INTO t2 VALUES (1)"), Statement::Dml);
        assert_eq!(classify("/* app */ update t set a=1"), Statement::Dml);
        assert_eq!(classify("CREATE TABLE t(id INT)"), Statement::Other);
        assert_eq!(classify("/*!40000 ALTER TABLE t DISABLE KEYS */"), Statement::Other);
        assert_eq!(classify("TRUNCATE TABLE t"), Statement::Other);
        assert_eq!(classify(""), Statement::Other);
    }

    #[test]
    fn uuids_print_in_the_canonical_form() {
        let sid = [0x55, 0x77, 0x89, 0x04, 0x02, 0x99, 0x11, 0xf1, 0xb1, 0xb8, 0x4e, 0xf0, 0xc4, 0x95, 0x6f, 0xeb];
        assert_eq!(format_uuid(&sid), "55778904-0299-11f1-b1b8-4ef0c4956feb");
    }

    #[test]
    fn excerpts_are_one_short_line() {
        assert_eq!(excerpt("INSERT INTO t\n  VALUES (1)"), "INSERT INTO t VALUES (1)");
        let long = "x".repeat(200);
        assert_eq!(excerpt(&long).len(), 83);
    }
}
