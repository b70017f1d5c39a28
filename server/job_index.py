"""The jobs index and the webhook outbox: tables beside the history in the
queue database, kept by SQLite triggers.

``job_index`` holds, per history row, what ``GET /api/jobs`` filters and sorts
on (status, creation time, duration, workflow id, owner) with indexes, so a
page of a 100,000-entry history is an index range scan, not a parse of every
entry.  Triggers on ``history`` fill and empty it in the same transaction as
the history row itself: nothing in the store's write path changes, and the
index can never disagree with the history.

``webhook_outbox`` holds deliveries still owed: a trigger on ``job_index``
adds one when a job ends with ``extra_data.webhook`` set, or while the server
has ``--webhook`` (the ``webhook_url`` setting).  Being written in the history
row's own transaction, a delivery cannot be lost between "the job ended" and
"remember to tell someone": it is delivered at least once, across restarts.
Its ``delivery_id`` (the ``Idempotency-Key``) is the prompt id and the target
(``<id>.job`` / ``<id>.server``): prompt ids are never reused, so the key is
the same for every retry, and also if a salvaged database (``--recover-queue``)
owes a delivery again.

:func:`migrate` brings any existing database up to date (tables, indexes,
triggers, rows for history written before the index existed) and is safe to
run on every open.
"""

from __future__ import annotations

import sqlite3
from typing import Any

from .jobs import JobQuery

#: What a job row needs from its history entry, cut out with one parse of the
#: entry (which holds the whole prompt and, from the editor, the whole UI
#: workflow: often the largest part): a small JSON array
#: ``[create_time, workflow id, owner, webhook, first message type, its
#: timestamp, last message type, its timestamp]``.  The row's columns are
#: computed from it (generated columns), so the entry is never parsed again.
#: Messages are the engine's: ``execution_start`` first, the terminal one last.
#: An entry that is not valid JSON (a damaged file) gives NULL: the row is
#: still made, as failed, rather than failing the insert.
_META = ("CASE WHEN json_valid({e}) THEN json_extract({e}, '$.prompt[3].create_time',"
         " '$.prompt[3].extra_pnginfo.workflow.id', '$.prompt[3].loom_user', '$.prompt[3].webhook',"
         " '$.status.messages[0][0]', '$.status.messages[0][1].timestamp', '$.status.messages[#-1][0]',"
         " '$.status.messages[#-1][1].timestamp') END")

SCHEMA = f"""
CREATE TABLE IF NOT EXISTS job_index (
    seq          INTEGER PRIMARY KEY,
    prompt_id    TEXT NOT NULL UNIQUE,
    result       TEXT NOT NULL,
    completed_at REAL NOT NULL,
    meta         TEXT,
    live         INTEGER NOT NULL DEFAULT 1,
    status       TEXT GENERATED ALWAYS AS (
        CASE WHEN result = 'success' THEN 'completed'
             WHEN json_extract(meta, '$[6]') = 'execution_interrupted' THEN 'cancelled'
             ELSE 'failed' END) STORED,
    created_at   REAL GENERATED ALWAYS AS (
        COALESCE(json_extract(meta, '$[0]'), CAST(completed_at * 1000 AS INTEGER))) STORED,
    workflow_id  TEXT GENERATED ALWAYS AS (json_extract(meta, '$[1]')) STORED,
    owner        TEXT GENERATED ALWAYS AS (json_extract(meta, '$[2]')) STORED,
    webhook      TEXT GENERATED ALWAYS AS (json_extract(meta, '$[3]')) STORED,
    duration     REAL GENERATED ALWAYS AS (
        CASE WHEN json_extract(meta, '$[4]') = 'execution_start'
              AND json_extract(meta, '$[6]') IN ('execution_success', 'execution_error', 'execution_interrupted')
             THEN COALESCE(json_extract(meta, '$[7]') - json_extract(meta, '$[5]'), 0)
             ELSE 0 END) STORED
);
-- Covering indexes: a page deep in the history skips rows in the index
-- alone, never visiting the table for each skipped row.
CREATE INDEX IF NOT EXISTS job_index_created ON job_index(created_at, prompt_id, duration);
CREATE INDEX IF NOT EXISTS job_index_status ON job_index(status, created_at, prompt_id, duration);
CREATE INDEX IF NOT EXISTS job_index_duration ON job_index(duration, created_at, prompt_id);
CREATE INDEX IF NOT EXISTS job_index_workflow ON job_index(workflow_id, created_at, prompt_id, duration);
-- Jobs per (status, owner): totals without counting the index on each request.
CREATE TABLE IF NOT EXISTS job_counts (
    status TEXT NOT NULL,
    owner  TEXT NOT NULL,
    n      INTEGER NOT NULL,
    PRIMARY KEY (status, owner)
);
CREATE TRIGGER IF NOT EXISTS job_counts_add AFTER INSERT ON job_index BEGIN
    INSERT INTO job_counts(status, owner, n) VALUES (NEW.status, COALESCE(NEW.owner, ''), 1)
    ON CONFLICT(status, owner) DO UPDATE SET n = n + 1;
END;
CREATE TRIGGER IF NOT EXISTS job_counts_drop AFTER DELETE ON job_index BEGIN
    UPDATE job_counts SET n = n - 1 WHERE status = OLD.status AND owner = COALESCE(OLD.owner, '');
END;
CREATE TRIGGER IF NOT EXISTS job_index_add AFTER INSERT ON history BEGIN
    -- A plain DELETE, not INSERT OR REPLACE: REPLACE's deletion fires no trigger, and the counts must see it.
    DELETE FROM job_index WHERE prompt_id = NEW.prompt_id;
    INSERT INTO job_index(seq, prompt_id, result, completed_at, meta)
    VALUES (NEW.seq, NEW.prompt_id, NEW.status, NEW.completed_at, {_META.format(e="NEW.entry")});
END;
CREATE TRIGGER IF NOT EXISTS job_index_forget AFTER DELETE ON history BEGIN
    DELETE FROM job_index WHERE prompt_id = OLD.prompt_id;
END;
CREATE TABLE IF NOT EXISTS webhook_outbox (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    delivery_id TEXT NOT NULL,
    prompt_id   TEXT NOT NULL,
    url         TEXT NOT NULL,
    status      TEXT NOT NULL,
    state       TEXT NOT NULL DEFAULT 'pending',
    attempts    INTEGER NOT NULL DEFAULT 0,
    next_at     REAL NOT NULL DEFAULT 0,
    created_at  REAL NOT NULL,
    last_error  TEXT
);
CREATE INDEX IF NOT EXISTS webhook_outbox_due ON webhook_outbox(state, next_at);
CREATE TRIGGER IF NOT EXISTS webhook_for_job AFTER INSERT ON job_index
WHEN NEW.live = 1 AND NEW.webhook IS NOT NULL BEGIN
    INSERT INTO webhook_outbox(delivery_id, prompt_id, url, status, created_at)
    VALUES (NEW.prompt_id || '.job', NEW.prompt_id, NEW.webhook, NEW.status, (julianday('now') - 2440587.5) * 86400.0);
END;
CREATE TRIGGER IF NOT EXISTS webhook_for_server AFTER INSERT ON job_index
WHEN NEW.live = 1 AND (SELECT json_extract(value, '$') FROM settings WHERE key = 'webhook_url') IS NOT NULL BEGIN
    INSERT INTO webhook_outbox(delivery_id, prompt_id, url, status, created_at)
    SELECT NEW.prompt_id || '.server', NEW.prompt_id, json_extract(value, '$'), NEW.status, (julianday('now') - 2440587.5) * 86400.0
    FROM settings WHERE key = 'webhook_url';
END;
"""

_TRIGGERS = ("job_index_add", "job_index_forget", "job_counts_add", "job_counts_drop", "webhook_for_job",
             "webhook_for_server")

_BACKFILL = f"""
INSERT OR IGNORE INTO job_index(seq, prompt_id, result, completed_at, meta, live)
SELECT seq, prompt_id, status, completed_at, {_META.format(e="entry")}, 0 FROM history
WHERE prompt_id NOT IN (SELECT prompt_id FROM job_index)
"""


#: Only servers with ``--users`` filter by owner: the index (one more write per
#: finished job) is made when one starts (``server.job_service``).
OWNER_INDEX = "CREATE INDEX IF NOT EXISTS job_index_owner ON job_index(owner, created_at, prompt_id, duration)"


def migrate(conn: sqlite3.Connection) -> None:
    """Create what is missing and index history rows written before the
    index existed (never owing webhooks for them: ``live = 0``)."""
    columns = {row[1] for row in conn.execute("PRAGMA table_info(job_index)")}
    if columns and "meta" not in columns:
        # Made by an earlier version of this module: derived data, rebuilt below.
        conn.execute("DROP TABLE job_index")
    # Triggers are code: replaced on every open, so a database always runs
    # this version's (dropping and re-creating them is instant).
    conn.executescript("".join(f"DROP TRIGGER IF EXISTS {name};" for name in _TRIGGERS) + SCHEMA)
    history = conn.execute("SELECT COUNT(*) FROM history").fetchone()[0]
    indexed = conn.execute("SELECT COUNT(*) FROM job_index").fetchone()[0]
    counted = conn.execute("SELECT COALESCE(SUM(n), 0) FROM job_counts").fetchone()[0]
    if history != indexed or counted != history:
        conn.execute("BEGIN IMMEDIATE")
        try:
            conn.execute(_BACKFILL)
            conn.execute("DELETE FROM job_counts")
            conn.execute("INSERT INTO job_counts(status, owner, n)"
                         " SELECT status, COALESCE(owner, ''), COUNT(*) FROM job_index GROUP BY 1, 2")
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise


# ------------------------------------------------------------------- reads
def _where(query: JobQuery) -> tuple[str, list[Any]]:
    clauses: list[str] = []
    args: list[Any] = []
    stored = sorted(query.statuses & {"completed", "failed", "cancelled"})
    if len(stored) < 3:
        clauses.append(f"status IN ({','.join('?' * len(stored))})" if stored else "0")
        args.extend(stored)
    if query.workflow_id is not None:
        clauses.append("workflow_id = ?")
        args.append(query.workflow_id)
    if query.owner is not None:
        clauses.append("owner = ?")
        args.append(query.owner)
    return (" WHERE " + " AND ".join(clauses)) if clauses else "", args


def count(conn: sqlite3.Connection, query: JobQuery) -> int:
    if query.workflow_id is None:  # kept by triggers: no scan
        stored = sorted(query.statuses & {"completed", "failed", "cancelled"})
        if not stored:
            return 0
        sql = f"SELECT COALESCE(SUM(n), 0) FROM job_counts WHERE status IN ({','.join('?' * len(stored))})"
        args: list[Any] = list(stored)
        if query.owner is not None:
            sql += " AND owner = ?"
            args.append(query.owner)
        return conn.execute(sql, args).fetchone()[0]
    where, args = _where(query)
    return conn.execute(f"SELECT COUNT(*) FROM job_index{where}", args).fetchone()[0]


def window(conn: sqlite3.Connection, query: JobQuery, offset: int, limit: int | None, total: int | None = None
           ) -> list[tuple[tuple[Any, ...], str]]:
    """Stored jobs ``[offset, offset + limit)`` in listing order, as (sort key,
    prompt id).  With ``total`` known, a window in the far half is read from
    the other end, so no page skips more than half the rows."""
    where, args = _where(query)
    descending = query.descending
    reverse = (limit is not None and total is not None and offset > total // 2)
    if reverse:  # the same rows, counted from the end
        end = min(offset + limit, total)
        offset, limit = total - end, max(end - offset, 0)
        descending = not descending
    direction = "DESC" if descending else "ASC"
    if query.sort_by == "execution_duration":
        order = f"duration {direction}, created_at {direction}, prompt_id {direction}"
    else:
        order = f"created_at {direction}, prompt_id {direction}"
    rows = conn.execute(f"SELECT duration, created_at, prompt_id FROM job_index{where} ORDER BY {order}"
                        " LIMIT ? OFFSET ?", [*args, -1 if limit is None else limit, offset]).fetchall()
    if reverse:
        rows.reverse()
    if query.sort_by == "execution_duration":
        return [((d, c, p), p) for d, c, p in rows]
    return [((c, p), p) for _, c, p in rows]


def entries(conn: sqlite3.Connection, prompt_ids: list[str]) -> dict[str, str]:
    """History entries' JSON text by prompt id."""
    out: dict[str, str] = {}
    for start in range(0, len(prompt_ids), 500):
        chunk = prompt_ids[start:start + 500]
        rows = conn.execute(f"SELECT prompt_id, entry FROM history WHERE prompt_id IN ({','.join('?' * len(chunk))})",
                            chunk).fetchall()
        out.update(rows)
    return out


def job_row(conn: sqlite3.Connection, prompt_id: str) -> tuple[str, str | None] | None:
    """(entry JSON, owner) of a finished job, or None."""
    row = conn.execute("SELECT h.entry, j.owner FROM history h LEFT JOIN job_index j ON j.prompt_id = h.prompt_id"
                       " WHERE h.prompt_id = ?", (prompt_id,)).fetchone()
    return None if row is None else (row[0], row[1])


def owners(conn: sqlite3.Connection, prompt_ids: list[str]) -> dict[str, str | None]:
    out: dict[str, str | None] = {}
    for start in range(0, len(prompt_ids), 500):
        chunk = prompt_ids[start:start + 500]
        out.update(conn.execute(f"SELECT prompt_id, owner FROM job_index WHERE prompt_id IN"
                                f" ({','.join('?' * len(chunk))})", chunk).fetchall())
    return out
