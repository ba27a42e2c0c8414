//! Local journal segments: append-only JSON-lines files.
//!
//! # Format
//! `segment-<n>.jsonl` in the journal directory, one [`JournalRecord`] per line. A torn last
//! line (a crash during `write(2)`) is skipped on replay; every complete line is a record.

use super::record::JournalRecord;
use super::sqlite::{Queued, SqliteSink, ingest_file};
use std::collections::HashSet;
use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, SyncSender, TryRecvError, TrySendError};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// Where and how the journal keeps its records.
#[derive(Debug, Clone)]
pub struct JournalConfig {
    /// Directory of the segment files.
    pub dir: PathBuf,
    /// The SQLite database holding the queryable copy.
    pub db_path: PathBuf,
    /// A segment is closed once it grows past this size.
    pub segment_max_bytes: u64,
    /// Bound of the queue to the SQLite writer. When full, the record is still safe in its
    /// segment; the writer re-reads that segment before deleting it.
    pub queue_capacity: usize,
    /// How often the writer commits what arrived to SQLite (see [`DEFAULT_COMMIT_INTERVAL`]).
    pub commit_interval: Duration,
}

impl JournalConfig {
    /// Defaults under a data directory.
    pub fn in_dir(data_dir: &Path) -> Self {
        Self {
            dir: data_dir.join("journal"),
            db_path: data_dir.join("journal.db"),
            segment_max_bytes: 64 * 1024 * 1024,
            queue_capacity: 65_536,
            commit_interval: DEFAULT_COMMIT_INTERVAL,
        }
    }
}

struct Current {
    file: File,
    seq: u64,
    size: u64,
    /// A write failed, possibly after writing part of its line.
    torn: bool,
}

/// How often a failing segment write is logged at most; the records in between are counted.
const FAILURE_LOG_INTERVAL: Duration = Duration::from_secs(10);

/// Segment writes that failed since the last log line about them.
#[derive(Default)]
struct Failures {
    logged_at: Option<Instant>,
    unlogged: u64,
}

enum Msg {
    /// Segment number and the record, serialised once (see [`Queued`]). Boxed: the queue's
    /// slots are allocated for its whole capacity, and a pointer keeps them small.
    Record(u64, Box<Queued>),
    Flush(SyncSender<()>),
}

struct Inner {
    dir: PathBuf,
    segment_max_bytes: u64,
    current: Mutex<Current>,
    tx: Mutex<Option<SyncSender<Msg>>>,
    /// Segments with at least one record that missed the queue.
    dropped_in: Arc<Mutex<HashSet<u64>>>,
    dropped: AtomicU64,
    writer: Mutex<Option<JoinHandle<()>>>,
    failures: Mutex<Failures>,
}

/// The journal handle shared by every request.
#[derive(Clone)]
pub struct Journal {
    inner: Arc<Inner>,
}

fn segment_path(dir: &Path, seq: u64) -> PathBuf {
    dir.join(format!("segment-{seq:010}.jsonl"))
}

fn existing_segments(dir: &Path) -> io::Result<Vec<(u64, PathBuf)>> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
        if let Some(n) = name
            .strip_prefix("segment-")
            .and_then(|n| n.strip_suffix(".jsonl"))
            .and_then(|n| n.parse::<u64>().ok())
        {
            out.push((n, path));
        }
    }
    out.sort();
    Ok(out)
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // Every critical section here leaves the data consistent, so poisoning carries no meaning.
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Journal {
    /// Opens the journal: replays every segment left by an earlier run into SQLite (idempotent
    /// by id), then starts a fresh segment and the background writer.
    pub fn open(cfg: &JournalConfig) -> io::Result<Journal> {
        std::fs::create_dir_all(&cfg.dir)?;
        let sink = SqliteSink::open(&cfg.db_path).map_err(io::Error::other)?;
        let mut last = 0;
        for (seq, path) in existing_segments(&cfg.dir)? {
            let n = ingest_file(&sink, &path).map_err(io::Error::other)?;
            if n > 0 {
                tracing::info!(segment = %path.display(), records = n, "journal replayed");
            }
            std::fs::remove_file(&path)?;
            last = seq;
        }
        let seq = last + 1;
        let file = open_segment(&cfg.dir, seq)?;
        let (tx, rx) = std::sync::mpsc::sync_channel(cfg.queue_capacity);
        let dropped_in = Arc::new(Mutex::new(HashSet::new()));
        let writer = {
            let dir = cfg.dir.clone();
            let tick = cfg.commit_interval;
            let dropped_in = dropped_in.clone();
            std::thread::Builder::new()
                .name("journal-writer".into())
                .spawn(move || writer_loop(sink, rx, dir, seq, dropped_in, tick))?
        };
        Ok(Journal {
            inner: Arc::new(Inner {
                dir: cfg.dir.clone(),
                segment_max_bytes: cfg.segment_max_bytes,
                current: Mutex::new(Current {
                    file,
                    seq,
                    size: 0,
                    torn: false,
                }),
                tx: Mutex::new(Some(tx)),
                dropped_in,
                dropped: AtomicU64::new(0),
                writer: Mutex::new(Some(writer)),
                failures: Mutex::new(Failures::default()),
            }),
        })
    }

    /// Appends one record: a single `write(2)` to the current segment, then a queue entry for
    /// the SQLite writer. When this returns, a `kill -9` of the process no longer loses it.
    ///
    /// A segment that cannot be written (a full disk) does not lose the record while the queue
    /// takes it: it still reaches SQLite (once that can write again), and the failure is logged
    /// at most every ten seconds instead of once per request. Only a record that neither the
    /// segment nor the queue took is an error.
    pub fn append(&self, record: JournalRecord) -> io::Result<()> {
        let queued = Box::new(Queued::new(&record).map_err(io::Error::other)?);
        drop(record);
        let line = queued.segment_line();
        let mut cur = lock(&self.inner.current);
        let written = self.write_line(&mut cur, line);
        let seq = cur.seq;
        let tx = lock(&self.inner.tx);
        let taken = match tx.as_ref().map(|tx| tx.try_send(Msg::Record(seq, queued))) {
            Some(Ok(())) => true,
            Some(Err(TrySendError::Full(_) | TrySendError::Disconnected(_))) => {
                if written.is_ok() {
                    self.inner.dropped.fetch_add(1, Ordering::Relaxed);
                    lock(&self.inner.dropped_in).insert(seq);
                }
                false
            }
            // The writer was stopped: the segment is replayed at the next start.
            None => false,
        };
        match written {
            Ok(()) => Ok(()),
            Err(e) if taken => {
                self.segment_write_failed(&e);
                Ok(())
            }
            Err(e) => Err(e),
        }
    }

    fn write_line(&self, cur: &mut Current, line: &[u8]) -> io::Result<()> {
        if cur.size > 0 && cur.size + line.len() as u64 > self.inner.segment_max_bytes {
            let seq = cur.seq + 1;
            cur.file = open_segment(&self.inner.dir, seq)?;
            cur.seq = seq;
            cur.size = 0;
            cur.torn = false;
        }
        if cur.torn {
            // The failed write may have left part of a line: end it, so this record is a line
            // of its own (replay skips the fragment).
            cur.file.write_all(b"\n")?;
            cur.torn = false;
            cur.size += 1;
        }
        cur.file.write_all(line).inspect_err(|_| cur.torn = true)?;
        cur.size += line.len() as u64;
        Ok(())
    }

    fn segment_write_failed(&self, e: &io::Error) {
        let mut f = lock(&self.inner.failures);
        f.unlogged += 1;
        if f.logged_at
            .is_none_or(|t| t.elapsed() >= FAILURE_LOG_INTERVAL)
        {
            tracing::error!(
                error = %e,
                records = f.unlogged,
                "journal segment write failed; these records go to SQLite only, so a crash before they are committed loses them"
            );
            f.logged_at = Some(Instant::now());
            f.unlogged = 0;
        }
    }

    /// Records that skipped the queue because it was full (they reach SQLite from their
    /// segment file instead).
    pub fn queue_overflows(&self) -> u64 {
        self.inner.dropped.load(Ordering::Relaxed)
    }

    /// Waits until every record appended so far is committed to SQLite.
    pub fn flush(&self) {
        let (done_tx, done_rx) = std::sync::mpsc::sync_channel(1);
        let sent = lock(&self.inner.tx)
            .as_ref()
            .map(|tx| tx.send(Msg::Flush(done_tx)).is_ok())
            .unwrap_or(false);
        if sent {
            self.wake_writer();
            let _ = done_rx.recv_timeout(Duration::from_secs(30));
        }
    }

    fn wake_writer(&self) {
        if let Some(h) = lock(&self.inner.writer).as_ref() {
            h.thread().unpark();
        }
    }

    /// Commits everything and stops the writer; later appends still reach the segment file and
    /// are replayed at the next start.
    pub fn shutdown(&self) {
        lock(&self.inner.tx).take();
        if let Some(h) = lock(&self.inner.writer).take() {
            h.thread().unpark();
            let _ = h.join();
        }
    }
}

fn open_segment(dir: &Path, seq: u64) -> io::Result<File> {
    OpenOptions::new()
        .create(true)
        .append(true)
        .open(segment_path(dir, seq))
}

/// How often the writer drains its queue by default. Polling instead of blocking means an append
/// never has to wake a sleeping thread (a futex call and a context switch per request). A tenth
/// of a second makes batches large enough that a commit's fixed cost (WAL frames, locks, the
/// checkpoint check) is shared by many records: at 1,000 requests/s the writer's share of the
/// gateway's CPU fell from about 13% (10 ms) to 5%. Readers call `flush`, which wakes it at once.
pub const DEFAULT_COMMIT_INTERVAL: Duration = Duration::from_millis(100);

fn writer_loop(
    sink: SqliteSink,
    rx: Receiver<Msg>,
    dir: PathBuf,
    first_seq: u64,
    dropped_in: Arc<Mutex<HashSet<u64>>>,
    tick: Duration,
) {
    let mut seen_seq = first_seq;
    let mut batch: Vec<Queued> = Vec::with_capacity(1024);
    let mut waiters = Vec::new();
    let mut open = true;
    while open {
        let mut newest = seen_seq;
        while batch.len() < 4096 {
            match rx.try_recv() {
                Ok(Msg::Record(seq, queued)) => {
                    newest = newest.max(seq);
                    batch.push(*queued);
                }
                Ok(Msg::Flush(w)) => waiters.push(w),
                Err(TryRecvError::Empty) => break,
                Err(TryRecvError::Disconnected) => {
                    open = false;
                    break;
                }
            }
        }
        let full = batch.len() >= 4096;
        commit(&sink, &mut batch);
        if newest > seen_seq {
            // Every record of older segments has been received and committed: retire them.
            retire_segments_before(&sink, &dir, newest, &dropped_in);
            seen_seq = newest;
        }
        for w in waiters.drain(..) {
            let _ = w.send(());
        }
        if open && !full {
            // `flush` and `shutdown` unpark the writer; appends never do.
            std::thread::park_timeout(tick);
        }
    }
    // The newest segment stays: appends racing the shutdown may still land in it, and the
    // next start replays it idempotently.
    retire_segments_before(&sink, &dir, seen_seq, &dropped_in);
}

fn commit(sink: &SqliteSink, batch: &mut Vec<Queued>) {
    if batch.is_empty() {
        return;
    }
    let mut tries = 0;
    loop {
        match sink.insert_queued(batch) {
            Ok(_) => break,
            Err(e) if tries < 5 => {
                tries += 1;
                tracing::warn!(error = %e, "journal batch commit failed; retrying");
                std::thread::sleep(Duration::from_millis(200 * tries));
            }
            Err(e) => {
                // The records remain in their segment files and are replayed at next start.
                tracing::error!(error = %e, records = batch.len(), "journal batch not committed");
                break;
            }
        }
    }
    batch.clear();
}

fn retire_segments_before(
    sink: &SqliteSink,
    dir: &Path,
    seq: u64,
    dropped_in: &Mutex<HashSet<u64>>,
) {
    let Ok(segments) = existing_segments(dir) else {
        return;
    };
    for (s, path) in segments {
        if s >= seq {
            continue;
        }
        if lock(dropped_in).contains(&s) {
            if ingest_file(sink, &path).is_err() {
                continue;
            }
            lock(dropped_in).remove(&s);
        }
        let _ = std::fs::remove_file(&path);
    }
}
