"""Engine overhead on chains of pure-Python nodes.

For chains of 10 / 100 / 1000 nodes prints: validate+plan, first execution,
identical re-run (all cached), re-run after changing the first node — in
milliseconds and microseconds per node — and, as the in-run baseline, the time
to call the same node functions directly in a loop (so the ratio is the
engine's cost over the work itself).

Targets: a 1000-node chain validates, plans and executes in under 100 ms of
engine overhead; a fully cached re-run of it takes under 10 ms.

    .venv/bin/python bench/engine.py
"""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Any, Callable

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from engine.declare import Int, node  # noqa: E402
from engine.executor import Executor  # noqa: E402
from engine.node import NodeOutput  # noqa: E402
from engine.registry import Registry  # noqa: E402
from engine.validation import validate_prompt  # noqa: E402


@node(category="bench")
def Add(a: int = Int(0), b: int = Int(0)) -> int:
    return a + b


@node(category="bench", output_node=True)
def Show(value: Any) -> None:
    return NodeOutput(ui={"value": [value]})


def chain(length: int, start: int = 1) -> dict:
    prompt = {"0": {"class_type": "Add", "inputs": {"a": start, "b": 0}}}
    for i in range(1, length):
        prompt[str(i)] = {"class_type": "Add", "inputs": {"a": [str(i - 1), 0], "b": 1}}
    prompt[str(length)] = {"class_type": "Show", "inputs": {"value": [str(length - 1), 0]}}
    return prompt


def best_of(fn: Callable[[], Any], repeat: int = 7) -> float:
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        fn()
        times.append(time.perf_counter() - started)
    return min(times)


def direct_calls(length: int) -> None:
    value = Add.fn(1, 0)
    for _ in range(1, length):
        value = Add.fn(value, 1)
    Show.fn(value)


def measure(length: int) -> dict[str, float]:
    registry = Registry()
    registry.add_all([Add, Show])
    prompt = chain(length)
    changed = chain(length, start=2)

    def first_run() -> None:
        Executor(registry).execute(prompt, prompt_id="first")

    warm = Executor(registry)
    warm.execute(prompt, prompt_id="warm")

    def flip_first() -> None:
        warm.execute(changed, prompt_id="a")
        warm.execute(prompt, prompt_id="b")

    return {
        "direct calls (baseline)": best_of(lambda: direct_calls(length)),
        "validate+plan": best_of(lambda: validate_prompt(registry, prompt)),
        "first execution": best_of(first_run),
        "identical re-run (cached)": best_of(lambda: warm.execute(prompt, prompt_id="again")),
        "re-run, first node changed": best_of(flip_first) / 2,
    }


def main() -> None:
    print(f"{'chain':>6}  {'measure':<28} {'ms':>9} {'µs/node':>9} {'× baseline':>11}")
    for length in (10, 100, 1000):
        results = measure(length)
        baseline = results["direct calls (baseline)"]
        for name, seconds in results.items():
            ratio = seconds / baseline if baseline else float("nan")
            print(f"{length:>6}  {name:<28} {seconds * 1000:>9.3f} {seconds * 1e6 / (length + 1):>9.2f} {ratio:>11.1f}")
    big = measure(1000)
    overhead = big["first execution"] - big["direct calls (baseline)"]
    print()
    print(f"1000-node chain: engine overhead of validate+plan+execute = {overhead * 1000:.1f} ms (target < 100 ms)")
    print(f"1000-node chain: fully cached re-run = {big['identical re-run (cached)'] * 1000:.1f} ms (target < 10 ms)")


if __name__ == "__main__":
    main()
