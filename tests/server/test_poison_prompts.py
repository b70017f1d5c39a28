"""Poison prompts do not wedge the queue: a node that kills the process is
given up after a few starts (counted on disk), a node raising SystemExit or
KeyboardInterrupt fails its prompt only, and a node that ignores /interrupt
is left behind after the grace period while the queue moves on."""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import subprocess
import sys
import textwrap
import threading
import time
import urllib.request
from pathlib import Path

import pytest

from engine.declare import Int, String, node
from engine.node import NodeOutput
from server.config import ServerOptions
from server.records import QueueItem
from server.store import Store
from server.store_recovery import open_store

from .conftest import listen, make_registry, text_prompt
from .process import REPO

# ------------------------------------------------------------ in-process nodes

RELEASE = threading.Event()  # lets the hung nodes end when a test is over


@node(category="test", output_node=True)
def RaiseExit(code: int = Int(3, min=0, max=255)) -> None:
    raise SystemExit(code)


@node(category="test", output_node=True)
def RaiseCtrlC(tag: str = String("")) -> None:
    raise KeyboardInterrupt


@node(category="test", output_node=True)
def SleepForever(tag: str = String("")) -> None:
    """Blocks in C (a lock wait) and never checks for interrupts."""
    RELEASE.wait()
    return NodeOutput(ui={"text": ["released"]})


@node(category="test", output_node=True)
def SpinForever(tag: str = String("")) -> None:
    """A pure-Python loop that never checks for interrupts."""
    n = 0
    while not RELEASE.is_set():
        n += 1
    return NodeOutput(ui={"text": [str(n)]})


def _registry(base: Path):
    registry = make_registry(base)
    registry.add_all([RaiseExit, RaiseCtrlC, SleepForever, SpinForever], origin="tests")
    return registry


@pytest.fixture
def release():
    RELEASE.clear()
    yield RELEASE
    RELEASE.set()


def _error_message(entry: dict) -> dict:
    messages = dict((m[0], m[1]) for m in entry["status"]["messages"])
    return messages["execution_error"]


@pytest.mark.parametrize("class_type, inputs, raised", [("RaiseExit", {"code": 3}, "SystemExit"),
                                                        ("RaiseCtrlC", {"tag": ""}, "KeyboardInterrupt")])
async def test_a_node_raising_systemexit_or_ctrl_c_fails_its_prompt_and_the_next_runs(
        running, tmp_path, class_type, inputs, raised):
    run = await running(registry=_registry(tmp_path / "b"))
    listener = await listen(run)
    bad = await run.queue({"7": {"class_type": class_type, "inputs": inputs}}, listener.client_id)
    good = await run.queue(text_prompt("after"), listener.client_id)
    messages = await listener.until_done(bad)
    assert [m["type"] for m in messages if m["type"].startswith("execution_")][-1] == "execution_error"
    entry = await run.wait_history(bad)
    assert entry["status"]["status_str"] == "error"
    error = _error_message(entry)
    assert error["exception_type"] == raised
    assert error["node_id"] == "7" and error["node_type"] == class_type
    assert f"node 7 ({class_type}) raised {raised}" in error["exception_message"]
    after = await run.wait_history(good)
    assert after["status"]["status_str"] == "success"
    assert run.server.worker.running is None or run.server.worker.running.prompt_id != bad


async def _interrupt_ignored_then_queue_moves_on(run, class_type: str) -> str:
    listener = await listen(run)
    stuck = await run.queue({"1": {"class_type": class_type, "inputs": {"tag": ""}}}, listener.client_id)
    after = await run.queue(text_prompt("next"), listener.client_id)
    await run.wait_running(stuck)
    await asyncio.sleep(0.2)  # the node is in its endless wait
    started = time.monotonic()
    async with await run.post("/interrupt", {}) as response:
        assert (await response.json())["interrupted"] is True
    messages = await listener.until_done(stuck, timeout=10)
    waited = time.monotonic() - started
    kinds = [m["type"] for m in messages]
    assert "execution_interrupted" in kinds and "execution_success" not in kinds
    assert waited >= 0.5  # the grace period was honoured first
    entry = await run.wait_history(stuck)
    assert entry["status"]["status_str"] == "error"
    note = dict((m[0], m[1]) for m in entry["status"]["messages"])["execution_interrupted"]
    assert note["node_id"] == "1" and "ignored the interrupt" in note["details"]
    done = await run.wait_history(after, timeout=10)
    assert done["status"]["status_str"] == "success"
    assert done["outputs"]["3"]["text"] == ["NEXT"]
    queue = await run.get_json("/queue")
    assert queue["queue_running"] == [] and queue["queue_pending"] == []
    return stuck


async def test_a_node_that_never_returns_is_left_behind_after_the_interrupt_grace(running, tmp_path, release):
    options = ServerOptions(port=0, interrupt_grace=0.5, preview_interval=0.0)
    run = await running(options, registry=_registry(tmp_path / "b"))
    await _interrupt_ignored_then_queue_moves_on(run, "SleepForever")
    worker = run.server.worker
    assert len(worker.abandoned) == 1 and worker.abandoned[0].is_alive()  # parked in C, harmless
    # The queue keeps going on the new thread, prompt after prompt.
    ids = [await run.queue(text_prompt(f"p{n}")) for n in range(3)]
    for prompt_id in ids:
        assert (await run.wait_history(prompt_id))["status"]["status_str"] == "success"
    release.set()  # the stuck node returns at last: its result is dropped, its thread ends
    worker.abandoned[0].join(5)
    assert not worker.abandoned[0].is_alive()
    await asyncio.sleep(0.2)
    history = await run.get_json("/history")
    assert len(history) == 5


async def test_an_abandoned_pure_python_loop_is_stopped(running, tmp_path, release):
    options = ServerOptions(port=0, interrupt_grace=0.5, preview_interval=0.0)
    run = await running(options, registry=_registry(tmp_path / "b"))
    await _interrupt_ignored_then_queue_moves_on(run, "SpinForever")
    thread = run.server.worker.abandoned[0]
    thread.join(5)
    assert not thread.is_alive()  # the async exception ended the spin; it no longer burns a core


async def test_a_node_that_honours_the_interrupt_is_not_abandoned(running, tmp_path):
    options = ServerOptions(port=0, interrupt_grace=0.5, preview_interval=0.0)
    run = await running(options, registry=_registry(tmp_path / "b"))
    prompt_id = await run.queue({"1": {"class_type": "Sleep", "inputs": {"seconds": 5.0, "tag": ""}}})
    await run.wait_running(prompt_id)
    async with await run.post("/interrupt", {}) as response:
        assert response.status == 200
    await run.wait_history(prompt_id)
    await asyncio.sleep(0.8)  # past the grace: the watchdog must have stood down
    assert run.server.worker.abandoned == []


# ------------------------------------------------------------- attempt counts

def _reopen_counts(path: Path) -> list[int]:
    store, items, _ = open_store(path)
    store.close()
    return [i.attempts for i in items]


def test_a_death_while_running_is_counted_at_the_next_start_and_a_clean_stop_is_not(tmp_path):
    path = tmp_path / "q.sqlite3"
    store = Store(path)
    for n, prompt_id in enumerate(["p", "q"]):
        store.enqueue(QueueItem(number=n, prompt_id=prompt_id, prompt={}, extra_data={}, outputs=[], seq=n)).result(5)
    store.mark_running("p")
    store.close()  # as a killed process leaves it: the marker still names p
    assert _reopen_counts(path) == [1, 0]
    assert _reopen_counts(path) == [1, 0]  # counted once, not at every start
    store = Store(path)
    store.mark_running("p")
    store.clear_running()  # a clean shutdown
    store.close()
    assert _reopen_counts(path) == [1, 0]
    store = Store(path)
    store.mark_running("gone")  # died running a prompt no longer queued: nothing to count
    store.close()
    assert _reopen_counts(path) == [1, 0]


PACK = textwrap.dedent('''
    import os
    from engine.declare import String, node
    from engine.node import NodeOutput

    @node(category="test", output_node=True)
    def ExitProcess(tag: str = String("")) -> None:
        with open(os.environ["LOOM_TEST_LOG"], "a") as f:
            f.write("exit\\n")
        os._exit(57)

    @node(category="test", output_node=True)
    def Note(tag: str = String("")) -> None:
        with open(os.environ["LOOM_TEST_LOG"], "a") as f:
            f.write(f"note {tag}\\n")
        return NodeOutput(ui={"text": [tag]})

    LOOM_NODES = [ExitProcess, Note]
''')


class _Server:
    """``python -m server`` that may die on its own (os._exit in a node)."""

    def __init__(self, base: Path, log: Path):
        env = {**os.environ, "PYTHONPATH": str(REPO), "LOOM_TEST_LOG": str(log)}
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "server", "--base-directory", str(base), "--port", "0", "--cpu",
             "--web-root", str(base / "web"), "--max-prompt-attempts", "3"],
            cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        self.url = None
        self.output: list[str] = []
        for line in self.proc.stdout:
            self.output.append(line)
            found = re.search(r"ready at (http://\S+)", line)
            if found:
                self.url = found.group(1)
                break

    def call(self, path: str, body=None):
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(self.url + path, data=data, headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(request, timeout=10) as response:
            return json.loads(response.read())

    def wait_exit(self, timeout: float = 60) -> int:
        code = self.proc.wait(timeout)
        self.output.extend(self.proc.stdout.read().splitlines(True))
        self.proc.stdout.close()
        return code

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self.output.extend(self.proc.stdout.read().splitlines(True))
        self.proc.stdout.close()


@pytest.mark.slow
def test_a_node_that_kills_the_server_fails_after_three_starts_and_the_queue_moves_on(tmp_path):
    base = tmp_path / "base"
    (base / "custom_nodes" / "poison").mkdir(parents=True)
    (base / "custom_nodes" / "poison" / "__init__.py").write_text(PACK)
    log = tmp_path / "runs.log"

    first = _Server(base, log)
    assert first.url is not None, "".join(first.output)
    first.call("/queue", {"pause": True})  # queue both before the first one kills the server
    poison = first.call("/prompt", {"prompt": {"1": {"class_type": "ExitProcess", "inputs": {"tag": ""}}}})["prompt_id"]
    after = first.call("/prompt", {"prompt": {"1": {"class_type": "Note", "inputs": {"tag": "after"}}}})["prompt_id"]
    try:
        first.call("/queue", {"resume": True})
    except OSError:  # the answer may not make it out before the process dies
        pass
    assert first.wait_exit() == 57  # the node took the whole server down

    restarts = 0
    while True:
        server = _Server(base, log)
        restarts += 1
        if server.url is None:  # died again (maybe before it could say it was ready)
            assert server.wait_exit() == 57, "".join(server.output)
            assert restarts < 3, "the poison prompt ran again after its third start"
            continue
        try:
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline:
                if server.proc.poll() is not None:
                    break
                try:
                    history = server.call("/history")
                except OSError:  # it died while answering
                    server.proc.wait(10)
                    break
                if after in history:
                    break
                time.sleep(0.05)
            if server.proc.poll() is not None:  # died after saying it was ready
                assert server.wait_exit() == 57
                assert restarts < 3, "the poison prompt ran again after its third start"
                continue
            assert after in history, "".join(server.output)
            break
        finally:
            if server.proc.poll() is None:
                server.stop()

    assert restarts == 3  # three starts died (first + 2 restarts); the 3rd restart gave up on it
    assert log.read_text().splitlines() == ["exit", "exit", "exit", "note after"]
    assert history[poison]["status"]["status_str"] == "error"
    error = _error_message(history[poison])
    assert "died 3 times while running this prompt" in error["exception_message"]
    assert history[after]["status"]["status_str"] == "success"
    assert "killed the server process 3 times" in "".join(server.output)
