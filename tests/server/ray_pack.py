"""A custom-node pack the Ray tests copy into the server's custom_nodes/, so
the workers load it exactly as a user's plug-in (never imported by the tests)."""

import os
import time

from engine.declare import Float, String, node
from engine.node import NodeContext, NodeOutput


def _log(path: str, line: str) -> None:
    with open(path, "a") as f:
        f.write(line + "\n")


@node(category="test", output_node=True)
def WorkerSleep(ctx: NodeContext, seconds: float = Float(0.3, min=0.0, max=60.0),
                tag: str = String(""), log: str = String("")) -> None:
    """Sleeps in steps with progress; says which worker process ran it."""
    if log:
        _log(log, f"start {tag} {os.getpid()}")
    for step in range(10):
        time.sleep(seconds / 10)
        ctx.progress(step + 1, 10)
    if log:
        _log(log, f"done {tag} {os.getpid()}")
    return NodeOutput(ui={"text": [tag], "pid": [os.getpid()]})


@node(category="test", output_node=True)
def DieOnce(ctx: NodeContext, marker: str = String(""), tag: str = String(""),
            log: str = String("")) -> None:
    """Kills its worker process the first time it runs (no clean-up of any kind)."""
    _log(log, f"start {tag} {os.getpid()}")
    ctx.progress(1, 2)
    if not os.path.exists(marker):
        open(marker, "w").close()
        os._exit(1)
    ctx.progress(2, 2)
    _log(log, f"done {tag} {os.getpid()}")
    return NodeOutput(ui={"text": [tag]})


@node(category="test", output_node=True)
def WriteOutput(ctx: NodeContext, text: str = String("hi"), prefix: str = String("ray")) -> None:
    """Writes a text file into the output folder and names it the way SaveImage does."""
    folder = ctx.env.folders.output
    folder.mkdir(parents=True, exist_ok=True)
    name = f"{prefix}_{ctx.prompt_id[:8]}.txt"
    (folder / name).write_text(text)
    return NodeOutput(ui={"files": [{"filename": name, "subfolder": "", "type": "output"}]})


LOOM_NODES = [WorkerSleep, DieOnce, WriteOutput]
