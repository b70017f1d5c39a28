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

#: The job row for a history row, selected from ``src`` (seq, prompt_id,
#: status, completed_at, and ``j``: ``[extra_data, messages]`` cut out of the
#: entry with one parse — the entry holds the whole prompt, which can be large,
#: and is parsed once, not once per column).  Messages are the engine's
#: (compact JSON): the duration runs from the first (``execution_start``) to
#: the last (the terminal one).  A row whose entry is not valid
#: JSON (a damaged file) still gets a row, as failed, rather than failing the insert.
_ROW = """
SELECT src.seq, src.prompt_id,
    CASE WHEN src.status = 'success' THEN 'completed'
         WHEN instr(json_extract(src.j, '$[1]'), '["execution_interrupted",') > 0 THEN 'cancelled'
         ELSE 'failed' END,
    COALESCE(json_extract(src.j, '$[0].create_time'), CAST(src.completed_at * 1000 AS INTEGER)),
    json_extract(src.j, '$[0].extra_pnginfo.workflow.id'),
    CASE WHEN json_extract(src.j, '$[1][0][0]') = 'execution_start'
          AND json_extract(src.j, '$[1][#-1][0]') IN ('execution_success', 'execution_error', 'execution_interrupted')
         THEN COALESCE(json_extract(src.j, '$[1][#-1][1].timestamp') - json_extract(src.j, '$[1][0][1].timestamp'), 0)
         ELSE 0 END,
    json_extract(src.j, '$[0].loom_user'),
    json_extract(src.j, '$[0].webhook'){extra}
FROM ({source}) AS src
"""
_J = "CASE WHEN json_valid({e}) THEN json_extract({e}, '$.prompt[3]', '$.status.messages') END"
_FROM_NEW = ("SELECT NEW.seq AS seq, NEW.prompt_id AS prompt_id, NEW.status AS status,"
             " NEW.completed_at AS completed_at, " + _J.format(e="NEW.entry") + " AS j")
_FROM_HISTORY = ("SELECT seq, prompt_id, status, completed_at, " + _J.format(e="entry") + " AS j FROM history"
                 " WHERE prompt_id NOT IN (SELECT prompt_id FROM job_index)")

SCHEMA = f"""
CREATE TABLE IF NOT EXISTS job_index (
    seq         INTEGER PRIMARY KEY,
    prompt_id   TEXT NOT NULL UNIQUE,
    status      TEXT NOT NULL,
    created_at  REAL NOT NULL,
    workflow_id TEXT,
    duration    REAL NOT NULL DEFAULT 0,
    owner       TEXT,
    webhook     TEXT,
    live        INTEGER NOT NULL DEFAULT 1
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
    INSERT INTO job_index(seq, prompt_id, status, created_at, workflow_id, duration, owner, webhook)
    {_ROW.format(extra="", source=_FROM_NEW)};
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
INSERT OR IGNORE INTO job_index(seq, prompt_id, status, created_at, workflow_id, duration, owner, webhook, live)
{_ROW.format(extra=", 0", source=_FROM_HISTORY)}
"""


#: Only servers with ``--users`` filter by owner: the index (one more write per
#: finished job) is made when one starts (``server.job_service``).
OWNER_INDEX = "CREATE INDEX IF NOT EXISTS job_index_owner ON job_index(owner, created_at, prompt_id, duration)"


def migrate(conn: sqlite3.Connection) -> None:
    """Create what is missing and index history rows written before the
    index existed (never owing webhooks for them: ``live = 0``)."""
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
