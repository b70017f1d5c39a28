"""Nodes the server tests run: fast ones, a slow one, one that previews, one that fails."""

from __future__ import annotations

import io
import time

from engine.declare import Float, Int, String, node
from engine.node import NodeContext, NodeOutput, Preview


def png_bytes(color: tuple[int, int, int] = (255, 0, 0), size: tuple[int, int] = (8, 8)) -> bytes:
    from PIL import Image

    out = io.BytesIO()
    Image.new("RGB", size, color).save(out, format="PNG")
    return out.getvalue()


@node(category="test")
def Text(value: str = String("hello")) -> str:
    return value


@node(category="test")
def Upper(text: str) -> str:
    return text.upper()


@node(category="test", output_node=True)
def Show(text: str) -> None:
    return NodeOutput(ui={"text": [text]})


@node(category="test", output_node=True)
def Sleep(ctx: NodeContext, seconds: float = Float(0.5, min=0.0, max=60.0),
          tag: str = String("")) -> None:
    """Sleeps in small steps, reporting progress (and so noticing interrupts)."""
    steps = 20
    for step in range(steps):
        time.sleep(seconds / steps)
        ctx.progress(step + 1, steps)
    return NodeOutput(ui={"text": [tag]})


@node(category="test", output_node=True)
def Busy(ctx: NodeContext, seconds: float = Float(1.0, min=0.0, max=60.0)) -> None:
    """Holds the GIL in pure Python, like a CPU-bound node, checking interrupts."""
    deadline = time.perf_counter() + seconds
    spins = 0
    while time.perf_counter() < deadline:
        for _ in range(2000):
            spins += 1
        ctx.check_interrupted()
    return NodeOutput(ui={"text": [str(spins)]})


@node(category="test", output_node=True)
def Previews(ctx: NodeContext, count: int = Int(3, min=1, max=100),
             pause: float = Float(0.1, min=0.0, max=5.0)) -> None:
    for step in range(count):
        ctx.progress(step + 1, count, Preview("PNG", png_bytes((step * 40 % 256, 0, 0))))
        time.sleep(pause)
    return NodeOutput(ui={"text": ["previewed"]})


@node(category="test", output_node=True)
def Fail(message: str = String("boom")) -> None:
    raise RuntimeError(message)


@node(category="test", output_node=True)
def NonFinite() -> None:
    """Shows values JSON has no literal for."""
    return NodeOutput(ui={"values": [float("nan"), float("inf"), 1.5], "raw": [b"\x00\x01"]})


TEST_NODES = [Text, Upper, Show, Sleep, Busy, Previews, Fail, NonFinite]
