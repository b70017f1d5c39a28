"""The SQLite queue and history on their own."""

from __future__ import annotations

import json
import sqlite3

import pytest

from server.records import HistoryEntry, QueueItem
from server.store import Store


def _item(prompt_id: str, number: float = 0, seq: int = 0) -> QueueItem:
    return QueueItem(number=number, prompt_id=prompt_id, prompt={"1": {"class_type": "X", "inputs": {}}},
                     extra_data={"client_id": "c"}, outputs=["1"], seq=seq)


@pytest.fixture
def store(tmp_path):
    store = Store(tmp_path / "q.sqlite3", max_history=3)
    yield store
    store.close()


def test_an_enqueued_prompt_is_on_disk_when_its_future_resolves(store, tmp_path):
    store.enqueue(_item("a")).result(5)
    other = sqlite3.connect(tmp_path / "q.sqlite3")
    assert other.execute("SELECT prompt_id FROM queue").fetchall() == [("a",)]


def test_a_failing_write_fails_alone_in_its_batch(store):
    store.enqueue(_item("dup")).result(5)
    futures = [store.enqueue(_item("ok1", seq=1)), store.enqueue(_item("dup", seq=2)),
               store.enqueue(_item("ok2", seq=3))]
    futures[0].result(5)
    futures[2].result(5)
    with pytest.raises(sqlite3.IntegrityError):
        futures[1].result(5)
    assert [i.prompt_id for i in store.load_queue()] == ["dup", "ok1", "ok2"]


def test_the_queue_loads_in_number_then_arrival_order(store):
    for prompt_id, number, seq in [("b", 1, 1), ("front", -5, 2), ("a", 1, 0), ("c", 2, 3)]:
        store.enqueue(_item(prompt_id, number, seq)).result(5)
    loaded = store.load_queue()
    assert [i.prompt_id for i in loaded] == ["front", "a", "b", "c"]
    assert all(i.recovered for i in loaded)


def test_completing_moves_a_prompt_from_queue_to_history(store):
    item = _item("done")
    store.enqueue(item).result(5)
    entry = HistoryEntry(item, {"1": {"images": [{"filename": "x.png", "subfolder": "s", "type": "output"}]}},
                         "success", True, [["execution_success", {"prompt_id": "done"}]])
    store.complete(entry).result(5)
    assert store.load_queue() == []
    history = json.loads(store.history_json().result(5))
    assert history["done"]["outputs"]["1"]["images"][0]["filename"] == "x.png"
    assert store.output_files("done").result(5) == [("1", "images", "x.png", "s", "output")]


def test_an_id_in_history_cannot_be_queued_again(store):
    item = _item("finished")
    store.enqueue(item).result(5)
    store.complete(HistoryEntry(item, {}, "success", True)).result(5)
    with pytest.raises(sqlite3.IntegrityError, match="in history"):
        store.enqueue(_item("finished", seq=1)).result(5)
    assert store.load_queue() == []


def test_completing_an_id_already_in_history_replaces_its_entry_and_files(store):
    item = _item("again")
    store.enqueue(item).result(5)
    old = {"1": {"images": [{"filename": "old.png", "subfolder": "", "type": "output"}]}}
    store.complete(HistoryEntry(item, old, "error", False)).result(5)
    new = {"1": {"images": [{"filename": "new.png", "subfolder": "", "type": "output"}]}}
    store.complete(HistoryEntry(item, new, "success", True)).result(5)
    history = json.loads(store.history_json().result(5))
    assert list(history) == ["again"]
    assert history["again"]["status"]["status_str"] == "success"
    assert store.output_files("again").result(5) == [("1", "images", "new.png", "", "output")]


def test_history_keeps_the_newest_max_history_and_forgets_their_files(store):
    for n in range(5):
        item = _item(f"p{n}", n, n)
        store.enqueue(item).result(5)
        files = {"1": {"images": [{"filename": f"{n}.png", "subfolder": "", "type": "output"}]}}
        store.complete(HistoryEntry(item, files, "success", True)).result(5)
    assert list(json.loads(store.history_json().result(5))) == ["p2", "p3", "p4"]
    assert store.output_files("p0").result(5) == []


def test_numbers_continue_after_reopening(tmp_path):
    first = Store(tmp_path / "q.sqlite3")
    first.enqueue(_item("a", 7, 3)).result(5)
    first.close()
    again = Store(tmp_path / "q.sqlite3")
    try:
        assert again.counters() == (8, 4)
    finally:
        again.close()
