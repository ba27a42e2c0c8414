//! Real services for tests: throwaway servers from the Debian packages `scripts/setup.sh`
//! installs. A missing binary is a test failure with the fix in the message, never a skip.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

const REDIS_SERVER: &str = "/usr/bin/redis-server";

/// A throwaway `redis-server`: no persistence, its own directory, killed on drop.
pub struct RedisServer {
    child: Child,
    port: u16,
    dir: PathBuf,
}

impl RedisServer {
    /// Starts a throwaway server on a free port (no persistence); panics when it cannot.
    pub fn start() -> Self {
        let mut last = String::new();
        for _ in 0..5 {
            let port = free_port();
            match Self::start_on(port) {
                Ok(s) => return s,
                // Another process may have taken the port between probing and binding.
                Err(e) => last = e,
            }
        }
        panic!("redis-server did not start: {last}");
    }

    /// Starts a server on `port`, or says why it could not.
    pub fn start_on(port: u16) -> Result<Self, String> {
        assert!(
            std::path::Path::new(REDIS_SERVER).exists(),
            "{REDIS_SERVER} is missing: install it with `apt-get install -y redis-server` \
             (scripts/setup.sh does)"
        );
        let dir = fresh_dir(&format!("tollgate-redis-{port}"));
        let child = Command::new(REDIS_SERVER)
            .args(["--bind", "127.0.0.1", "--port", &port.to_string()])
            .args(["--save", "", "--appendonly", "no"])
            .arg("--dir")
            .arg(&dir)
            .args(["--logfile", "redis.log"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| format!("spawn {REDIS_SERVER}: {e}"))?;
        let mut server = RedisServer { child, port, dir };
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Ok(Some(status)) = server.child.try_wait() {
                return Err(format!("redis-server exited: {status}"));
            }
            if ping(port) {
                return Ok(server);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        server.stop();
        Err("redis-server did not answer PING within 10 s".into())
    }

    /// The port it listens on.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The `redis://` URL of the server.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/", self.port)
    }

    /// Stops the server (also done on drop).
    pub fn stop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.stop();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A TCP port nothing listens on right now.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .unwrap_or_else(|e| panic!("cannot probe for a free port: {e}"))
}

fn ping(port: u16) -> bool {
    let Ok(mut s) = TcpStream::connect(("127.0.0.1", port)) else {
        return false;
    };
    let _ = s.set_read_timeout(Some(Duration::from_millis(500)));
    let mut buf = [0u8; 7];
    s.write_all(b"PING\r\n").is_ok() && s.read_exact(&mut buf).is_ok() && &buf == b"+PONG\r\n"
}

/// A new, empty directory under the temp dir. The name alone is not trusted to be unused: a
/// test process killed before its cleanup leaves its directory behind, and with thousands of
/// test processes a later one gets the same pid, so creation must fail on an existing name.
fn fresh_dir(prefix: &str) -> PathBuf {
    static N: AtomicUsize = AtomicUsize::new(0);
    let base = std::env::temp_dir();
    let mut last = None;
    for _ in 0..100 {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or(0);
        let dir = base.join(format!(
            "{prefix}-{}-{}-{nanos:x}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        match std::fs::create_dir(&dir) {
            Ok(()) => return dir,
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => last = Some(e),
            Err(e) => panic!("create {}: {e}", dir.display()),
        }
    }
    panic!("no free directory name under {}: {last:?}", base.display())
}

const PG_ROOT: &str = "/usr/lib/postgresql";

/// The newest installed PostgreSQL's `bin` directory (Debian installs each major version under
/// its own number), or the version 15 path so the missing-binary message names something.
fn pg_bin() -> String {
    let newest = std::fs::read_dir(PG_ROOT)
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let v: u32 = e.file_name().to_str()?.parse().ok()?;
            e.path().join("bin/initdb").exists().then_some(v)
        })
        .max();
    format!("{PG_ROOT}/{}/bin", newest.unwrap_or(15))
}
const PSQL: &str = "/usr/bin/psql";

fn as_postgres(cmd: &str) -> Result<(), String> {
    let out = Command::new("su")
        .args(["postgres", "-s", "/bin/sh", "-c", cmd])
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("run su: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "`{cmd}` failed: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ))
    }
}

fn pg_start(dir: &std::path::Path, port: u16) -> Result<(), String> {
    let d = dir.display();
    as_postgres(&format!(
        "{}/pg_ctl -D {d}/data -l {d}/log -w -t 20 -o '-c listen_addresses=127.0.0.1 -p {port} -k {d} -c fsync=off -c synchronous_commit=off -c full_page_writes=off' start >/dev/null",
        pg_bin()
    ))
}

/// A throwaway PostgreSQL cluster (`initdb` + `pg_ctl`, as the `postgres` user because initdb
/// refuses root), tuned for tests (no fsync), stopped and deleted on drop.
pub struct PostgresServer {
    port: u16,
    dir: PathBuf,
}

impl PostgresServer {
    /// Initialises and starts a cluster on a free port; panics with the fix when it cannot.
    pub fn start() -> Self {
        let pg_bin = pg_bin();
        let initdb = format!("{pg_bin}/initdb");
        assert!(
            std::path::Path::new(&initdb).exists(),
            "{initdb} is missing: install it with `apt-get install -y postgresql` (scripts/setup.sh does)"
        );
        let dir = fresh_dir("tollgate-pg");
        let chown = Command::new("chown")
            .args(["-R", "postgres:postgres"])
            .arg(&dir)
            .status();
        assert!(
            matches!(chown, Ok(s) if s.success()),
            "cannot chown {}",
            dir.display()
        );
        // Every parent must be traversable by the postgres user.
        let d = dir.display();
        if let Err(e) = as_postgres(&format!(
            "{pg_bin}/initdb -D {d}/data -U postgres --auth=trust -E UTF8 --no-locale >/dev/null"
        )) {
            let _ = std::fs::remove_dir_all(&dir);
            panic!("initdb: {e}");
        }
        let mut last = String::new();
        for _ in 0..5 {
            let port = free_port();
            match pg_start(&dir, port) {
                Ok(()) => return PostgresServer { port, dir },
                Err(e) => last = e,
            }
        }
        let _ = std::fs::remove_dir_all(&dir);
        panic!("postgres did not start: {last}");
    }

    /// Stops the server, closing every connection, as an outage would; [`resume`] starts it
    /// again on the same port with the same data.
    ///
    /// [`resume`]: Self::resume
    pub fn pause(&self) {
        let d = self.dir.display();
        if let Err(e) = as_postgres(&format!(
            "{}/pg_ctl -D {d}/data -m fast -w stop >/dev/null",
            pg_bin()
        )) {
            panic!("stop postgres: {e}");
        }
    }

    /// Starts the server again after [`pause`](Self::pause).
    pub fn resume(&self) {
        if let Err(e) = pg_start(&self.dir, self.port) {
            panic!("restart postgres: {e}");
        }
    }

    /// The port it listens on.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// A `postgres://` URL for database `db` (created with [`create_database`]).
    ///
    /// [`create_database`]: Self::create_database
    pub fn url(&self, db: &str) -> String {
        format!("postgres://postgres@127.0.0.1:{}/{db}", self.port)
    }

    /// Creates a database.
    pub fn create_database(&self, db: &str) {
        self.psql(&format!("CREATE DATABASE \"{db}\""));
    }

    /// Runs SQL as the `postgres` superuser in the `postgres` database; panics with psql's
    /// message when it fails.
    pub fn psql(&self, sql: &str) {
        assert!(
            std::path::Path::new(PSQL).exists(),
            "{PSQL} is missing: install it with `apt-get install -y postgresql` (scripts/setup.sh does)"
        );
        let out = Command::new(PSQL)
            .args([
                "-h",
                "127.0.0.1",
                "-p",
                &self.port.to_string(),
                "-U",
                "postgres",
                "-v",
                "ON_ERROR_STOP=1",
            ])
            .args(["-c", sql])
            .stdin(Stdio::null())
            .output();
        match out {
            Ok(o) if o.status.success() => {}
            Ok(o) => panic!("psql `{sql}`: {}", String::from_utf8_lossy(&o.stderr)),
            Err(e) => panic!("run psql: {e}"),
        }
    }
}

impl Drop for PostgresServer {
    fn drop(&mut self) {
        let d = self.dir.display();
        let _ = Command::new("su")
            .args([
                "postgres",
                "-s",
                "/bin/sh",
                "-c",
                &format!(
                    "{}/pg_ctl -D {d}/data -m immediate stop >/dev/null 2>&1",
                    pg_bin()
                ),
            ])
            .status();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
