"""A damaged queue database, or a bad row in it, gives one line naming the
file and what to do — never a traceback; ``--recover-queue`` moves the file
aside and keeps what can be read; a bad history row never makes /history
invalid JSON."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from server.records import HistoryEntry, QueueItem
from server.store import Store
from server.store_errors import DamagedStore
from server.store_recovery import open_store

from .conftest import text_prompt
from .process import REPO, ServerProcess


def _item(prompt_id: str, seq: int = 0) -> QueueItem:
    return QueueItem(number=seq, prompt_id=prompt_id, prompt=text_prompt(prompt_id), extra_data={},
                     outputs=["3"], seq=seq)


def _serve(base: Path, *extra: str, timeout: float = 60) -> subprocess.CompletedProcess:
    """``python -m server`` expected to refuse to start."""
    return subprocess.run(
        [sys.executable, "-m", "server", "--base-directory", str(base), "--port", "0", "--cpu",
         "--web-root", str(base / "web"), *extra],
        cwd=REPO, env={**os.environ, "PYTHONPATH": str(REPO)}, capture_output=True, text=True, timeout=timeout)


def _db(base: Path) -> Path:
    path = base / "user" / "loom-queue.sqlite3"
    path.parent.mkdir(parents=True, exist_ok=True)
    return path


def _with_rows(path: Path, queued: list[str], finished: list[str]) -> None:
    store = Store(path)
    for n, prompt_id in enumerate(queued + finished):
        store.enqueue(_item(prompt_id, n)).result(5)
    for prompt_id in finished:
        item = next(i for i in store.load_queue() if i.prompt_id == prompt_id)
        store.complete(HistoryEntry(item, {"3": {"text": ["ok"]}}, "success", True, [])).result(5)
    store.close()


def _one_line_error(result: subprocess.CompletedProcess, path: Path) -> str:
    assert result.returncode == 2, result.stdout + result.stderr
    assert "Traceback" not in result.stderr + result.stdout
    lines = [line for line in result.stderr.splitlines() if line.startswith("loom:")]
    assert len(lines) == 1, result.stderr
    assert str(path) in lines[0] and "--recover-queue" in lines[0]
    return lines[0]


def test_a_file_that_is_not_a_database_stops_start_up_with_one_line(tmp_path):
    base = tmp_path / "base"
    path = _db(base)
    path.write_bytes(b"this is not sqlite at all " * 200)
    line = _one_line_error(_serve(base), path)
    assert "damaged" in line and "not a database" in line
    assert path.read_bytes().startswith(b"this is not sqlite")  # nothing moved without the flag
    assert not list(path.parent.glob("*.corrupt-*"))


def test_a_queued_row_that_is_not_json_stops_start_up_with_one_line(tmp_path):
    base = tmp_path / "base"
    path = _db(base)
    _with_rows(path, ["good", "bad"], [])
    with sqlite3.connect(path) as conn:
        conn.execute("UPDATE queue SET prompt='{\"1\": {oops' WHERE prompt_id='bad'")
    line = _one_line_error(_serve(base), path)
    assert "'bad'" in line and "not valid JSON" in line


def test_recover_queue_moves_the_file_aside_and_keeps_what_reads(tmp_path):
    base = tmp_path / "base"
    path = _db(base)
    _with_rows(path, ["good", "bad"], ["old"])
    with sqlite3.connect(path) as conn:
        conn.execute("UPDATE queue SET extra_data='not json' WHERE prompt_id='bad'")
        conn.execute("INSERT INTO settings(key, value) VALUES ('paused', 'true')")
    server = ServerProcess(base, None, "--recover-queue")
    try:
        output = "".join(server.output)
        history = server.call("/history")
        # The paused setting came across too, so "good" has not run yet.
        queue = server.call("/queue")
    finally:
        server.stop()
    moved = list(path.parent.glob("loom-queue.sqlite3.corrupt-*"))
    assert [p.name for p in moved if not p.name.endswith(("-wal", "-shm"))], moved
    assert "moved it to loom-queue.sqlite3.corrupt-" in output
    assert "kept 1 queued prompt(s) and 1 history entry" in output
    assert list(history) == ["old"]
    assert [item[1] for item in queue["queue_pending"]] == ["good"]


def test_recover_queue_starts_empty_from_a_file_that_is_not_a_database(tmp_path):
    path = tmp_path / "q.sqlite3"
    path.write_bytes(b"\x00garbage" * 100)
    with pytest.raises(DamagedStore):
        open_store(path)
    store, items, note = open_store(path, recover=True)
    try:
        assert items == [] and "moved it to q.sqlite3.corrupt-" in note
        store.enqueue(_item("fresh")).result(5)
    finally:
        store.close()
    assert len(list(tmp_path.glob("q.sqlite3.corrupt-*"))) == 1


async def test_a_damaged_history_row_is_served_as_an_error_entry_in_valid_json(running, tmp_path):
    base = tmp_path / "base"
    _with_rows(_db(base), [], ["fine", "broken"])
    with sqlite3.connect(_db(base)) as conn:
        conn.execute("UPDATE history SET entry='{\"prompt\": [1, \"broken\"' WHERE prompt_id='broken'")
    run = await running(base=base)
    for path in ("/history", "/history/broken"):
        async with await run.get(path) as response:
            assert response.status == 200
            history = json.loads(await response.text())  # valid JSON, whatever the row holds
        entry = history["broken"]
        assert entry["status"]["status_str"] == "error"
        message = entry["status"]["messages"][0][1]["exception_message"]
        assert "damaged" in message and str(_db(base)) in message
    assert (await run.get_json("/history"))["fine"]["outputs"] == {"3": {"text": ["ok"]}}
