//! The queryable journal in SQLite, and the reads behind `logs` and `spend`.

use super::record::JournalRecord;
use rusqlite::types::{ToSqlOutput, ValueRef};
use rusqlite::{Connection, params_from_iter};
use serde::{Deserialize, Serialize};
use std::borrow::Cow;
use std::io::BufRead;
use std::path::Path;
use std::sync::Mutex;

const SCHEMA: &str = r#"
CREATE TABLE IF NOT EXISTS requests (
    id TEXT PRIMARY KEY,
    started_unix_ms INTEGER NOT NULL,
    started_at TEXT NOT NULL,
    status INTEGER NOT NULL,
    key_id TEXT, user TEXT, team TEXT, project TEXT,
    session_id TEXT, agent_id TEXT, model TEXT, provider TEXT,
    input_tokens INTEGER NOT NULL, output_tokens INTEGER NOT NULL,
    cache_creation_input_tokens INTEGER NOT NULL, cache_read_input_tokens INTEGER NOT NULL,
    cost_nanos INTEGER, cost_unknown INTEGER NOT NULL,
    record TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS requests_time ON requests (started_unix_ms);
CREATE INDEX IF NOT EXISTS requests_session ON requests (session_id);
"#;

fn open_conn(path: &Path) -> rusqlite::Result<Connection> {
    let conn = Connection::open(path)?;
    // Records are about 1 KB, written thousands a second: 16 KiB pages mean a quarter of the WAL
    // frames, checksums and b-tree splits of the default 4 KiB (about 10% of the writer's CPU
    // per record, `cargo bench -p tollgate-ledger --bench journal`). It applies to a new
    // database only; an existing one keeps its page size.
    conn.pragma_update(None, "page_size", 16384)?;
    conn.pragma_update(None, "journal_mode", "WAL")?;
    conn.pragma_update(None, "synchronous", "NORMAL")?;
    conn.busy_timeout(std::time::Duration::from_secs(5))?;
    conn.execute_batch(SCHEMA)?;
    Ok(conn)
}

/// The writing side, owned by the journal's background thread.
pub(super) struct SqliteSink {
    conn: Mutex<Connection>,
}

impl SqliteSink {
    pub(super) fn open(path: &Path) -> rusqlite::Result<SqliteSink> {
        Ok(SqliteSink {
            conn: Mutex::new(open_conn(path)?),
        })
    }

    /// Inserts records from their JSON lines; ids already present are left alone, so replays
    /// are harmless. A line that is not a record (a torn final line after a crash) is skipped.
    /// Returns how many lines were records.
    pub(super) fn insert_lines(&self, lines: &[Vec<u8>]) -> rusqlite::Result<usize> {
        // Parsing validates the line's UTF-8, so it can be bound as text as it is.
        self.insert_rows(
            lines
                .iter()
                .filter_map(|line| Some((Row::parse(line).ok()?, line.as_slice()))),
        )
    }

    /// Inserts records queued by this process, idempotent by id like [`Self::insert_lines`].
    pub(super) fn insert_queued(&self, queued: &[Queued]) -> rusqlite::Result<usize> {
        self.insert_rows(queued.iter().map(|q| (q.row(), q.line())))
    }

    fn insert_rows<'a>(
        &self,
        rows: impl Iterator<Item = (Row<'a>, &'a [u8])>,
    ) -> rusqlite::Result<usize> {
        let mut conn = self.conn.lock().unwrap_or_else(|e| e.into_inner());
        let tx = conn.transaction()?;
        let mut records = 0;
        {
            let mut chunk = Vec::with_capacity(ROWS_PER_INSERT);
            let mut many = tx.prepare_cached(&insert_sql(ROWS_PER_INSERT))?;
            for row in rows {
                records += 1;
                chunk.push(row);
                if chunk.len() == ROWS_PER_INSERT {
                    bind_rows(&mut many, &chunk)?;
                    many.raw_execute()?;
                    chunk.clear();
                }
            }
            let mut one = tx.prepare_cached(&insert_sql(1))?;
            for row in chunk.chunks(1) {
                bind_rows(&mut one, row)?;
                one.raw_execute()?;
            }
        }
        tx.commit()?;
        Ok(records)
    }
}

/// Rows per `INSERT` statement. One statement per row opened and closed a cursor on the table
/// and each index, and ended a statement, for every record: about a third of the writer's
/// instructions. The last few rows of a batch go one by one, so that only two statements are
/// ever prepared.
const ROWS_PER_INSERT: usize = 32;

const COLUMNS: usize = 19;

fn insert_sql(rows: usize) -> String {
    let row = format!("({})", vec!["?"; COLUMNS].join(","));
    format!(
        "INSERT OR IGNORE INTO requests (id, started_unix_ms, started_at, status, key_id, user,
         team, project, session_id, agent_id, model, provider, input_tokens, output_tokens,
         cache_creation_input_tokens, cache_read_input_tokens, cost_nanos, cost_unknown, record)
         VALUES {}",
        vec![row; rows].join(",")
    )
}

fn bind_rows(st: &mut rusqlite::Statement<'_>, rows: &[(Row<'_>, &[u8])]) -> rusqlite::Result<()> {
    for (i, (r, line)) in rows.iter().enumerate() {
        let at = i * COLUMNS;
        // The line is valid UTF-8: parsed on replay, serialised from strings when queued.
        let json = ToSqlOutput::Borrowed(ValueRef::Text(line));
        let values: [&dyn rusqlite::ToSql; COLUMNS] = [
            &r.id,
            &r.started_unix_ms,
            &r.started_at,
            &r.status,
            &r.key_id,
            &r.user,
            &r.team,
            &r.project,
            &r.session_id,
            &r.agent_id,
            &r.model,
            &r.provider,
            &(r.input_tokens as i64),
            &(r.output_tokens as i64),
            &(r.cache_creation_input_tokens as i64),
            &(r.cache_read_input_tokens as i64),
            &r.cost_nanos,
            &r.cost_unknown,
            &json,
        ];
        for (j, v) in values.into_iter().enumerate() {
            st.raw_bind_parameter(at + j + 1, v)?;
        }
    }
    Ok(())
}

/// The indexed columns of a record: read from its JSON line on replay (without copying strings
/// that need no unescaping), or from a [`Queued`] record; the rest of the line is stored whole.
#[derive(Deserialize, Debug, PartialEq)]
struct Row<'a> {
    #[serde(borrow)]
    id: Cow<'a, str>,
    started_unix_ms: i64,
    #[serde(borrow)]
    started_at: Cow<'a, str>,
    status: u16,
    #[serde(borrow, default)]
    key_id: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    user: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    team: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    project: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    session_id: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    agent_id: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    model: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    provider: Option<Cow<'a, str>>,
    #[serde(default)]
    input_tokens: u64,
    #[serde(default)]
    output_tokens: u64,
    #[serde(default)]
    cache_creation_input_tokens: u64,
    #[serde(default)]
    cache_read_input_tokens: u64,
    #[serde(default)]
    cost_nanos: Option<i64>,
    #[serde(default)]
    cost_unknown: bool,
}

impl<'a> Row<'a> {
    fn parse(line: &'a [u8]) -> sonic_rs::Result<Row<'a>> {
        sonic_rs::from_slice(line)
    }
}

/// A record on its way to the writer thread: its JSON line, then the text of its indexed
/// columns, in one buffer. The writer binds the columns from their spans instead of parsing the
/// line back (a tenth of the gateway's instructions per request went to that parse), and none
/// of the record's own strings is freed on the writer's thread, the allocator's slow path.
pub(super) struct Queued {
    buf: Vec<u8>,
    line_len: usize,
    text: [Span; 10],
    started_unix_ms: i64,
    status: u16,
    tokens: [u64; 4],
    cost_nanos: Option<i64>,
    cost_unknown: bool,
}

/// Where a text column lies in [`Queued::buf`]; `None` for SQL NULL.
type Span = Option<(u32, u32)>;

impl Queued {
    /// Serialises `record` as its journal line followed by a newline; [`Self::segment_line`]
    /// is what the segment file gets.
    pub(super) fn new(record: &JournalRecord) -> sonic_rs::Result<Queued> {
        // A Claude Code turn's line is about 900 bytes and its column copies about 200 more;
        // starting there spares the four reallocations (and copies) of growing from 128.
        let mut buf = Vec::with_capacity(1536);
        sonic_rs::to_writer(&mut buf, record)?;
        let line_len = buf.len();
        buf.push(b'\n');
        let mut span = |s: Option<&str>| -> Span {
            let s = s?;
            let start = buf.len();
            buf.extend_from_slice(s.as_bytes());
            Some((u32::try_from(start).ok()?, u32::try_from(buf.len()).ok()?))
        };
        let r = record;
        let text = [
            span(Some(&r.id)),
            span(Some(&r.started_at)),
            span(r.key_id.as_deref()),
            span(r.user.as_deref()),
            span(r.team.as_deref()),
            span(r.project.as_deref()),
            span(r.session_id.as_deref()),
            span(r.agent_id.as_deref()),
            span(r.model.as_deref()),
            span(r.provider.as_deref()),
        ];
        Ok(Queued {
            buf,
            line_len,
            text,
            started_unix_ms: r.started_unix_ms,
            status: r.status,
            tokens: [
                r.input_tokens,
                r.output_tokens,
                r.cache_creation_input_tokens,
                r.cache_read_input_tokens,
            ],
            cost_nanos: r.cost_nanos,
            cost_unknown: r.cost_unknown,
        })
    }

    /// The JSON line with its newline, as the segment file stores it.
    pub(super) fn segment_line(&self) -> &[u8] {
        &self.buf[..=self.line_len]
    }

    /// The JSON line, serialised from Rust strings and therefore valid UTF-8.
    fn line(&self) -> &[u8] {
        &self.buf[..self.line_len]
    }

    fn row(&self) -> Row<'_> {
        let [
            id,
            started_at,
            key_id,
            user,
            team,
            project,
            session_id,
            agent_id,
            model,
            provider,
        ] = self.text.map(|span| -> Option<Cow<'_, str>> {
            let (start, end) = span?;
            std::str::from_utf8(self.buf.get(start as usize..end as usize)?)
                .ok()
                .map(Cow::Borrowed)
        });
        let [
            input_tokens,
            output_tokens,
            cache_creation_input_tokens,
            cache_read_input_tokens,
        ] = self.tokens;
        Row {
            id: id.unwrap_or_default(),
            started_unix_ms: self.started_unix_ms,
            started_at: started_at.unwrap_or_default(),
            status: self.status,
            key_id,
            user,
            team,
            project,
            session_id,
            agent_id,
            model,
            provider,
            input_tokens,
            output_tokens,
            cache_creation_input_tokens,
            cache_read_input_tokens,
            cost_nanos: self.cost_nanos,
            cost_unknown: self.cost_unknown,
        }
    }
}

/// Loads every complete line of a segment file into SQLite; returns the number of records read.
pub(super) fn ingest_file(sink: &SqliteSink, path: &Path) -> std::io::Result<usize> {
    let file = std::fs::File::open(path)?;
    let mut batch = Vec::new();
    let mut total = 0;
    for line in std::io::BufReader::new(file).split(b'\n') {
        // A torn final line from a crash mid-write is not a record; the insert skips it.
        batch.push(line?);
        if batch.len() >= 2048 {
            total += sink.insert_lines(&batch).map_err(std::io::Error::other)?;
            batch.clear();
        }
    }
    total += sink.insert_lines(&batch).map_err(std::io::Error::other)?;
    Ok(total)
}

/// Filters of a journal listing; every field is optional.
#[derive(Debug, Clone, Default)]
pub struct JournalQuery {
    pub limit: u32,
    pub user: Option<String>,
    pub team: Option<String>,
    pub session: Option<String>,
    pub status: Option<u16>,
    pub since_unix_ms: Option<i64>,
    /// Only requests started before this time.
    pub until_unix_ms: Option<i64>,
    /// Only requests of these teams (`None` inside: requests without a team); what a team or
    /// workspace admin may see.
    pub only_teams: Option<Vec<Option<String>>>,
}

/// A spend report: grouping, period and the same visibility filters as a listing.
#[derive(Debug, Clone)]
pub struct SpendQuery {
    pub by: SpendBy,
    pub since_unix_ms: Option<i64>,
    /// Exclusive end of the period.
    pub until_unix_ms: Option<i64>,
    /// Only requests of these teams (`None` inside: requests without a team).
    pub only_teams: Option<Vec<Option<String>>>,
    /// Only requests of this user.
    pub user: Option<String>,
}

impl SpendQuery {
    /// Everything, grouped by `by`.
    pub fn new(by: SpendBy) -> SpendQuery {
        SpendQuery {
            by,
            since_unix_ms: None,
            until_unix_ms: None,
            only_teams: None,
            user: None,
        }
    }
}

/// Appends ` AND (team IN (…) OR team IS NULL)` for a team allow-list.
fn push_team_filter(
    sql: &mut String,
    args: &mut Vec<rusqlite::types::Value>,
    teams: &[Option<String>],
) {
    let mut alternatives = Vec::new();
    let named: Vec<&String> = teams.iter().flatten().collect();
    if !named.is_empty() {
        let marks: Vec<String> = named
            .iter()
            .map(|t| {
                args.push((*t).clone().into());
                format!("?{}", args.len())
            })
            .collect();
        alternatives.push(format!("team IN ({})", marks.join(",")));
    }
    if teams.iter().any(Option::is_none) {
        alternatives.push("team IS NULL".into());
    }
    if alternatives.is_empty() {
        sql.push_str(" AND 0");
    } else {
        sql.push_str(&format!(" AND ({})", alternatives.join(" OR ")));
    }
}

/// How spend is grouped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SpendBy {
    User,
    Team,
    Model,
    Provider,
    Project,
    Session,
    Day,
}

impl std::str::FromStr for SpendBy {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(match s {
            "user" => SpendBy::User,
            "team" => SpendBy::Team,
            "model" => SpendBy::Model,
            "provider" => SpendBy::Provider,
            "project" => SpendBy::Project,
            "session" => SpendBy::Session,
            "day" => SpendBy::Day,
            other => {
                return Err(format!(
                    "unknown grouping '{other}' (user, team, model, provider, project, session, day)"
                ));
            }
        })
    }
}

impl SpendBy {
    fn column(self) -> &'static str {
        match self {
            SpendBy::User => "user",
            SpendBy::Team => "team",
            SpendBy::Model => "model",
            SpendBy::Provider => "provider",
            SpendBy::Project => "project",
            SpendBy::Session => "session_id",
            SpendBy::Day => "substr(started_at, 1, 10)",
        }
    }
}

/// One line of a spend report.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct SpendRow {
    pub group: Option<String>,
    pub requests: u64,
    pub input_tokens: u64,
    pub output_tokens: u64,
    pub cache_creation_input_tokens: u64,
    pub cache_read_input_tokens: u64,
    pub cost_nanos: i64,
    pub cost_usd: String,
    /// Requests whose cost is unknown and therefore not in `cost_nanos`.
    pub unknown_cost_requests: u64,
}

/// Read access to the journal for listings and reports.
pub struct JournalReader {
    conn: Mutex<Connection>,
}

impl JournalReader {
    /// Opens the journal database read-side (WAL lets it read while the writer commits).
    pub fn open(path: &Path) -> rusqlite::Result<JournalReader> {
        Ok(JournalReader {
            conn: Mutex::new(open_conn(path)?),
        })
    }

    /// Records matching `q`, newest first.
    pub fn list(&self, q: &JournalQuery) -> rusqlite::Result<Vec<JournalRecord>> {
        let mut sql = String::from("SELECT record FROM requests WHERE 1=1");
        let mut args: Vec<rusqlite::types::Value> = Vec::new();
        let mut add = |clause: &str, v: rusqlite::types::Value| {
            args.push(v);
            sql.push_str(&format!(" AND {clause} ?{}", args.len()));
        };
        if let Some(u) = &q.user {
            add("user =", u.clone().into());
        }
        if let Some(t) = &q.team {
            add("team =", t.clone().into());
        }
        if let Some(s) = &q.session {
            add("session_id =", s.clone().into());
        }
        if let Some(s) = q.status {
            add("status =", i64::from(s).into());
        }
        if let Some(t) = q.since_unix_ms {
            add("started_unix_ms >=", t.into());
        }
        if let Some(t) = q.until_unix_ms {
            add("started_unix_ms <", t.into());
        }
        if let Some(teams) = &q.only_teams {
            push_team_filter(&mut sql, &mut args, teams);
        }
        let limit = if q.limit == 0 {
            100
        } else {
            q.limit.min(10_000)
        };
        sql.push_str(&format!(
            " ORDER BY started_unix_ms DESC, id DESC LIMIT {limit}"
        ));
        let conn = self.conn.lock().unwrap_or_else(|e| e.into_inner());
        let mut st = conn.prepare(&sql)?;
        let rows = st.query_map(params_from_iter(args), |r| r.get::<_, String>(0))?;
        let mut out = Vec::new();
        for row in rows {
            if let Ok(rec) = serde_json::from_str(&row?) {
                out.push(rec);
            }
        }
        Ok(out)
    }

    /// Spend grouped by `by` since a time, largest cost first.
    pub fn spend(
        &self,
        by: SpendBy,
        since_unix_ms: Option<i64>,
    ) -> rusqlite::Result<Vec<SpendRow>> {
        self.spend_report(&SpendQuery {
            since_unix_ms,
            ..SpendQuery::new(by)
        })
    }

    /// Spend for a period and visibility, grouped, largest cost first.
    pub fn spend_report(&self, q: &SpendQuery) -> rusqlite::Result<Vec<SpendRow>> {
        let col = q.by.column();
        let mut args: Vec<rusqlite::types::Value> = vec![
            q.since_unix_ms.unwrap_or(i64::MIN).into(),
            q.until_unix_ms.unwrap_or(i64::MAX).into(),
        ];
        let mut filter = String::new();
        if let Some(u) = &q.user {
            args.push(u.clone().into());
            filter.push_str(&format!(" AND user = ?{}", args.len()));
        }
        if let Some(teams) = &q.only_teams {
            push_team_filter(&mut filter, &mut args, teams);
        }
        let sql = format!(
            "SELECT {col} AS g, COUNT(*), SUM(input_tokens), SUM(output_tokens),
                    SUM(cache_creation_input_tokens), SUM(cache_read_input_tokens),
                    COALESCE(SUM(cost_nanos), 0), SUM(cost_unknown)
             FROM requests WHERE started_unix_ms >= ?1 AND started_unix_ms < ?2{filter}
             GROUP BY g ORDER BY COALESCE(SUM(cost_nanos), 0) DESC, g"
        );
        let conn = self.conn.lock().unwrap_or_else(|e| e.into_inner());
        let mut st = conn.prepare(&sql)?;
        let rows = st.query_map(params_from_iter(args), |r| {
            let cost: i64 = r.get(6)?;
            Ok(SpendRow {
                group: r.get(0)?,
                requests: r.get::<_, i64>(1)? as u64,
                input_tokens: r.get::<_, i64>(2)? as u64,
                output_tokens: r.get::<_, i64>(3)? as u64,
                cache_creation_input_tokens: r.get::<_, i64>(4)? as u64,
                cache_read_input_tokens: r.get::<_, i64>(5)? as u64,
                cost_nanos: cost,
                cost_usd: crate::money::Nanos(cost).usd_string(),
                unknown_cost_requests: r.get::<_, i64>(7)? as u64,
            })
        })?;
        rows.collect()
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::super::{Journal, JournalConfig};
    use super::*;

    #[test]
    fn a_queued_record_binds_the_columns_its_line_holds() {
        let full = JournalRecord {
            id: "req_1".into(),
            started_at: "2026-11-25T10:00:00Z".into(),
            started_unix_ms: 1_764_064_800_000,
            status: 529,
            key_id: Some("key_1".into()),
            user: Some("zoë \"quoted\"\n\u{1F600}".into()),
            team: Some("платформа".into()),
            project: Some("p\\q".into()),
            session_id: Some("6f1c2a9e".into()),
            agent_id: Some("agent_7".into()),
            model: Some("claude-sonnet-4-5".into()),
            provider: Some("anthropic".into()),
            input_tokens: u64::MAX,
            output_tokens: 2,
            cache_creation_input_tokens: 3,
            cache_read_input_tokens: 4,
            cost_nanos: Some(-5),
            cost_unknown: true,
            tags: vec!["a".into()],
            ..Default::default()
        };
        for record in [full, JournalRecord::default()] {
            let q = Queued::new(&record).unwrap();
            assert_eq!(q.segment_line().last(), Some(&b'\n'));
            assert_eq!(q.row(), Row::parse(q.line()).unwrap());
        }
    }

    fn rec(id: &str, user: &str, cost: Option<i64>) -> JournalRecord {
        JournalRecord {
            id: id.into(),
            started_at: "2026-11-25T10:00:00Z".into(),
            started_unix_ms: 1_000,
            status: 200,
            user: Some(user.into()),
            input_tokens: 10,
            cost_nanos: cost,
            cost_unknown: cost.is_none(),
            ..Default::default()
        }
    }

    fn tmp() -> std::path::PathBuf {
        let d = std::env::temp_dir().join(format!(
            "tg-journal-{}-{}",
            std::process::id(),
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_nanos()
        ));
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    #[test]
    fn a_batch_of_many_records_is_stored_once_each_in_full_and_partial_statements() {
        let dir = tmp();
        let sink = SqliteSink::open(&dir.join("j.db")).unwrap();
        // Two full statements and a remainder, with ids repeated inside a statement, across
        // statements and across batches.
        let batch: Vec<Queued> = (0..ROWS_PER_INSERT * 2 + 5)
            .map(|i| Queued::new(&rec(&format!("r{}", i % 50), &format!("u{i}"), Some(1))).unwrap())
            .collect();
        assert_eq!(sink.insert_queued(&batch).unwrap(), batch.len());
        assert_eq!(sink.insert_queued(&batch[..3]).unwrap(), 3);
        let reader = JournalReader::open(&dir.join("j.db")).unwrap();
        let all = reader
            .list(&JournalQuery {
                limit: 1_000,
                ..Default::default()
            })
            .unwrap();
        assert_eq!(all.len(), 50);
        // The first occurrence of an id is the one kept.
        let r7 = all.iter().find(|r| r.id == "r7").unwrap();
        assert_eq!(r7.user.as_deref(), Some("u7"));
        let spend = reader.spend(SpendBy::User, None).unwrap();
        assert_eq!(spend.len(), 50);
    }

    #[test]
    fn a_segment_that_cannot_be_written_loses_no_record_that_sqlite_can_take() {
        let dir = tmp();
        let cfg = JournalConfig {
            // Every record after the first starts a new segment.
            segment_max_bytes: 1,
            ..JournalConfig::in_dir(&dir)
        };
        let j = Journal::open(&cfg).unwrap();
        j.append(rec("a", "alice", Some(1))).unwrap();
        // The next segment is a full disk: `/dev/full` fails every write with ENOSPC.
        std::os::unix::fs::symlink("/dev/full", cfg.dir.join("segment-0000000002.jsonl")).unwrap();
        j.append(rec("b", "bob", Some(2))).unwrap();
        j.append(rec("c", "carol", Some(3))).unwrap();
        j.flush();
        let reader = JournalReader::open(&cfg.db_path).unwrap();
        let mut ids: Vec<_> = reader
            .list(&JournalQuery::default())
            .unwrap()
            .into_iter()
            .map(|r| r.id)
            .collect();
        ids.sort();
        assert_eq!(ids, vec!["a", "b", "c"]);
    }

    #[test]
    fn records_reach_sqlite_once_and_survive_an_unclean_stop() {
        let dir = tmp();
        let cfg = JournalConfig::in_dir(&dir);
        let j = Journal::open(&cfg).unwrap();
        j.append(rec("a", "alice", Some(5))).unwrap();
        j.append(rec("b", "bob", None)).unwrap();
        j.flush();
        // Simulate a crash: the same segment is replayed into a database that already has
        // its records, and a torn line is at the end.
        let seg = std::fs::read_dir(&cfg.dir)
            .unwrap()
            .next()
            .unwrap()
            .unwrap()
            .path();
        std::fs::OpenOptions::new()
            .append(true)
            .open(&seg)
            .unwrap()
            .write_all(b"{\"id\":\"torn")
            .unwrap();
        drop(j);
        let j2 = Journal::open(&cfg).unwrap();
        j2.append(rec("c", "alice", Some(7))).unwrap();
        j2.flush();
        let reader = JournalReader::open(&cfg.db_path).unwrap();
        let all = reader.list(&JournalQuery::default()).unwrap();
        let mut ids: Vec<_> = all.iter().map(|r| r.id.clone()).collect();
        ids.sort();
        assert_eq!(ids, vec!["a", "b", "c"]);
        let spend = reader.spend(SpendBy::User, None).unwrap();
        assert_eq!(spend[0].group.as_deref(), Some("alice"));
        assert_eq!(spend[0].cost_nanos, 12);
        assert_eq!(spend[1].unknown_cost_requests, 1);
        let only_bob = reader
            .list(&JournalQuery {
                user: Some("bob".into()),
                ..Default::default()
            })
            .unwrap();
        assert_eq!(only_bob.len(), 1);
        let none = reader
            .list(&JournalQuery {
                only_teams: Some(vec![Some("nobody".into())]),
                ..Default::default()
            })
            .unwrap();
        assert!(none.is_empty());
        let teamless = reader
            .spend_report(&SpendQuery {
                only_teams: Some(vec![None]),
                user: Some("alice".into()),
                until_unix_ms: Some(1_001),
                ..SpendQuery::new(SpendBy::User)
            })
            .unwrap();
        assert_eq!(teamless.len(), 1);
        assert_eq!(teamless[0].cost_nanos, 12);
        let before = reader
            .spend_report(&SpendQuery {
                until_unix_ms: Some(1_000),
                ..SpendQuery::new(SpendBy::User)
            })
            .unwrap();
        assert!(before.is_empty());
        j2.shutdown();
        std::fs::remove_dir_all(&dir).ok();
    }

    use std::io::Write;

    /// The record column is bound as text without a second UTF-8 check, because parsing the
    /// row already refuses invalid UTF-8 anywhere in the line, even in fields it skips.
    #[test]
    fn row_parse_refuses_invalid_utf8_in_skipped_fields() {
        let mut line =
            br#"{"id":"a","started_at":"x","started_unix_ms":1,"status":200,"error_message":"ZZ"}"#
                .to_vec();
        let n = line.len();
        line[n - 3] = 0xff;
        assert!(super::Row::parse(&line).is_err());
        line[n - 3] = b'Z';
        assert!(super::Row::parse(&line).is_ok());
    }
}
