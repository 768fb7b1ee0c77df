//! The database file: one SQLite table of objects (JSON, as the API would
//! serve them) keyed by kind, namespace and name, and the last resource
//! version. Each write is one transaction, committed before it is answered.
//! Secrets are never written: only a digest of each, to keep its version
//! across restarts.

use std::path::Path;
use std::sync::Mutex;

use rusqlite::{Connection, OptionalExtension, params};

/// The SQLite database of a standalone state folder.
pub struct Db {
    conn: Mutex<Connection>,
}

/// How a state folder's database is opened.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Access {
    /// The running process: creates the schema, writes.
    ReadWrite,
    /// `kube-notify get` next to a running process.
    ReadOnly,
}

pub type DbResult<T> = Result<T, rusqlite::Error>;

/// How far a write is on disk when it is answered.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Durability {
    /// fsynced: survives a power loss (an accepted event).
    Synced,
    /// written to the WAL, fsynced with the next synced write or checkpoint:
    /// survives the process being killed, not a power loss (status writes,
    /// manifests, which are re-applied at start).
    Written,
}

impl Db {
    pub fn open(path: &Path, access: Access) -> DbResult<Db> {
        let conn = match access {
            Access::ReadWrite => Connection::open(path)?,
            Access::ReadOnly => Connection::open_with_flags(
                path,
                rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY | rusqlite::OpenFlags::SQLITE_OPEN_NO_MUTEX,
            )?,
        };
        conn.busy_timeout(std::time::Duration::from_secs(5))?;
        if access == Access::ReadWrite {
            // WAL: readers (`kube-notify get`) never block the writer. Each
            // write says how durable it must be (see [`Durability`]).
            conn.pragma_update(None, "journal_mode", "WAL")?;
            conn.pragma_update(None, "synchronous", "FULL")?;
            conn.execute_batch(
                "CREATE TABLE IF NOT EXISTS objects (
                     kind TEXT NOT NULL, namespace TEXT NOT NULL, name TEXT NOT NULL, body TEXT NOT NULL,
                     PRIMARY KEY (kind, namespace, name)) WITHOUT ROWID;
                 CREATE TABLE IF NOT EXISTS secret_versions (
                     namespace TEXT NOT NULL, name TEXT NOT NULL, digest BLOB NOT NULL, version INTEGER NOT NULL,
                     PRIMARY KEY (namespace, name)) WITHOUT ROWID;
                 CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL);",
            )?;
        }
        Ok(Db { conn: Mutex::new(conn) })
    }

    /// The last resource version handed out (0 for a new database).
    pub fn last_version(&self) -> DbResult<u64> {
        let conn = self.conn.lock().unwrap();
        let v: Option<i64> =
            conn.query_row("SELECT value FROM meta WHERE key = 'resourceVersion'", [], |r| r.get(0)).optional()?;
        Ok(v.unwrap_or(0).max(0) as u64)
    }

    /// Every stored object of `kind`, as JSON text.
    pub fn objects(&self, kind: &str) -> DbResult<Vec<String>> {
        let conn = self.conn.lock().unwrap();
        let mut stmt = conn.prepare("SELECT body FROM objects WHERE kind = ?1 ORDER BY namespace, name")?;
        let rows = stmt.query_map([kind], |r| r.get::<_, String>(0))?;
        rows.collect()
    }

    /// Store (`Some(body)`) or remove (`None`) one object, and the version
    /// this write was given, in one transaction.
    pub fn write(
        &self,
        kind: &str,
        namespace: &str,
        name: &str,
        body: Option<&str>,
        version: u64,
        durability: Durability,
    ) -> DbResult<()> {
        let mut conn = self.conn.lock().unwrap();
        let synchronous = match durability {
            Durability::Synced => "FULL",
            Durability::Written => "NORMAL",
        };
        conn.pragma_update(None, "synchronous", synchronous)?;
        let tx = conn.transaction()?;
        match body {
            Some(body) => tx.execute(
                "INSERT INTO objects (kind, namespace, name, body) VALUES (?1, ?2, ?3, ?4)
                 ON CONFLICT (kind, namespace, name) DO UPDATE SET body = excluded.body",
                params![kind, namespace, name, body],
            )?,
            None => tx.execute(
                "DELETE FROM objects WHERE kind = ?1 AND namespace = ?2 AND name = ?3",
                params![kind, namespace, name],
            )?,
        };
        set_version(&tx, version)?;
        tx.commit()
    }

    /// The version a Secret with `digest` has: the stored one when its
    /// digest is unchanged, else `next` (stored).
    pub fn secret_version(&self, namespace: &str, name: &str, digest: &[u8], next: u64) -> DbResult<u64> {
        let mut conn = self.conn.lock().unwrap();
        let tx = conn.transaction()?;
        let stored: Option<(Vec<u8>, i64)> = tx
            .query_row(
                "SELECT digest, version FROM secret_versions WHERE namespace = ?1 AND name = ?2",
                params![namespace, name],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .optional()?;
        if let Some((d, v)) = stored
            && d == digest
        {
            return Ok(v as u64);
        }
        tx.execute(
            "INSERT INTO secret_versions (namespace, name, digest, version) VALUES (?1, ?2, ?3, ?4)
             ON CONFLICT (namespace, name) DO UPDATE SET digest = excluded.digest, version = excluded.version",
            params![namespace, name, digest, next as i64],
        )?;
        set_version(&tx, next)?;
        tx.commit()?;
        Ok(next)
    }

    /// Forget the versions of Secrets no manifest holds any more.
    pub fn retain_secret_versions(&self, keep: &[(String, String)]) -> DbResult<()> {
        let mut conn = self.conn.lock().unwrap();
        let tx = conn.transaction()?;
        let stored: Vec<(String, String)> = {
            let mut stmt = tx.prepare("SELECT namespace, name FROM secret_versions")?;
            stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?.collect::<DbResult<_>>()?
        };
        for (ns, name) in stored.iter().filter(|k| !keep.contains(k)) {
            tx.execute("DELETE FROM secret_versions WHERE namespace = ?1 AND name = ?2", params![ns, name])?;
        }
        tx.commit()
    }
}

fn set_version(tx: &rusqlite::Transaction<'_>, version: u64) -> DbResult<()> {
    tx.execute(
        "INSERT INTO meta (key, value) VALUES ('resourceVersion', ?1)
         ON CONFLICT (key) DO UPDATE SET value = max(value, excluded.value)",
        [version as i64],
    )?;
    Ok(())
}
