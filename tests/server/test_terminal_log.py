"""The server's terminal says what ComfyUI's says: "got prompt" when one is posted,
"Prompt executed in N.NN seconds" when it ends, and a failed node's error with its
traceback."""

from __future__ import annotations

import logging
import re

from .conftest import listen, text_prompt


async def test_a_prompt_logs_got_prompt_and_its_execution_time(server, caplog):
    listener = await listen(server)
    with caplog.at_level(logging.INFO, logger="loom.server"):
        prompt_id = await server.queue(text_prompt("log me"), listener.client_id)
        await listener.until_done(prompt_id)
        await server.wait_history(prompt_id)
    lines = [r.getMessage() for r in caplog.records if r.name == "loom.server"]
    assert "got prompt" in lines
    assert any(re.fullmatch(r"Prompt executed in \d+\.\d\d seconds", line) for line in lines), lines
    assert lines.index("got prompt") < next(i for i, l in enumerate(lines) if l.startswith("Prompt executed"))


async def test_a_failed_node_logs_its_error_and_traceback(server, caplog):
    listener = await listen(server)
    with caplog.at_level(logging.INFO, logger="loom.server"):
        prompt_id = await server.queue({"1": {"class_type": "Fail", "inputs": {"message": "boom in the node"}}},
                                       listener.client_id)
        await listener.until_done(prompt_id)
        await server.wait_history(prompt_id)
    errors = [r.getMessage() for r in caplog.records if r.levelno == logging.ERROR and r.name == "loom.server"]
    assert "!!! Exception during processing !!! boom in the node" in errors
    assert any("Traceback" in e or "RuntimeError: boom in the node" in e for e in errors), errors
