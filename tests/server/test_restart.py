"""Nothing is lost: kill -9 the server mid-queue, start it again, every prompt
completes exactly once and history is intact."""

from __future__ import annotations

import textwrap
import time
from pathlib import Path

import pytest

from .process import ServerProcess

PACK = textwrap.dedent('''
    import os, time
    from engine.declare import Float, String, node
    from engine.node import NodeContext, NodeOutput

    @node(category="test", output_node=True)
    def RecordedSleep(ctx: NodeContext, seconds: float = Float(0.5, min=0.0, max=60.0),
                      tag: str = String("")) -> None:
        log = os.environ["LOOM_TEST_LOG"]
        with open(log, "a") as f:
            f.write(f"start {tag}\\n")
        for step in range(10):
            time.sleep(seconds / 10)
            ctx.progress(step + 1, 10)
        with open(log, "a") as f:
            f.write(f"done {tag}\\n")
        return NodeOutput(ui={"text": [tag]})

    LOOM_NODES = [RecordedSleep]
''')


def _wait_for(predicate, timeout=30.0, what="condition"):
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.02)


def _lines(log: Path) -> list[str]:
    return log.read_text().splitlines() if log.exists() else []


@pytest.mark.slow
def test_a_killed_server_resumes_its_queue_and_keeps_history(tmp_path):
    base = tmp_path / "base"
    (base / "custom_nodes" / "recorded").mkdir(parents=True)
    (base / "custom_nodes" / "recorded" / "__init__.py").write_text(PACK)
    log = tmp_path / "runs.log"
    tags = [f"t{n}" for n in range(5)]

    first = ServerProcess(base, log)
    try:
        ids = [first.call("/prompt", {"prompt": {"1": {"class_type": "RecordedSleep",
                                                       "inputs": {"seconds": 0.6, "tag": tag}}}})["prompt_id"]
               for tag in tags]
        _wait_for(lambda: "start t1" in _lines(log), what="the second prompt to start")
        before = first.call("/history")
        assert list(before) == ids[:1]
    finally:
        first.kill()  # SIGKILL mid-prompt: no chance to clean up

    second = ServerProcess(base, log)
    try:
        assert "5 queued" not in "".join(second.output)  # t0 is done: 4 remain
        _wait_for(lambda: len(second.call("/history")) == 5, what="every prompt to finish")
        history = second.call("/history")
    finally:
        second.stop()

    done = [line for line in _lines(log) if line.startswith("done")]
    assert done == [f"done {tag}" for tag in tags]  # each exactly once, in queue order
    assert _lines(log).count("start t1") == 2  # the one killed mid-run ran again
    assert list(history) == ids
    assert history[ids[0]] == before[ids[0]]
    assert all(entry["status"]["status_str"] == "success" for entry in history.values())
