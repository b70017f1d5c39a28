"""``loom run WORKFLOW``: validate and execute one workflow in this process.

Accepts an API-format prompt (also wrapped as ``{"prompt": ...}``), a UI-format
workflow (converted with ``engine.workflow_format``) or a PNG carrying either
in its text chunks — or AUTOMATIC1111's ``parameters`` text, run as the
equivalent txt2img graph.  Exit status: 0 success, 1 execution error, 2 unusable
input or invalid prompt, 130 interrupted.
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

from engine.events import (
    Event,
    Executed,
    Executing,
    ExecutionCached,
    ExecutionError,
    Progress,
)
from engine.interrupt import InterruptFlag

from .host import build_host, plugin_summary

EXIT_OK, EXIT_FAILED, EXIT_INVALID, EXIT_INTERRUPTED = 0, 1, 2, 130


class InputError(ValueError):
    """The file given to ``loom run`` can't be turned into a prompt."""


@dataclass(frozen=True)
class A1111Parameters:
    """The ``parameters`` text AUTOMATIC1111 writes into its PNGs."""

    text: str


def read_workflow(path: Path) -> tuple[Any, Any]:
    """(API prompt or UI workflow, the UI workflow to embed in outputs or None)."""
    if not path.is_file():
        raise InputError(f"no such file: {path}")
    if path.suffix.lower() == ".png":
        from PIL import Image, UnidentifiedImageError

        try:
            with Image.open(path) as image:
                text = dict(getattr(image, "text", {}) or {})
        except (UnidentifiedImageError, OSError) as exc:
            raise InputError(f"{path} is not a readable PNG: {exc}") from None
        for key in ("prompt", "workflow"):
            if key in text:
                try:
                    data = json.loads(text[key])
                except ValueError as exc:
                    raise InputError(f"{path}: its '{key}' text chunk is not JSON: {exc}") from None
                workflow = json.loads(text["workflow"]) if "workflow" in text and key == "prompt" else None
                return data, (workflow if key == "prompt" else data)
        if "parameters" in text:
            return A1111Parameters(text["parameters"]), None
        raise InputError(f"{path} carries no workflow (no 'prompt', 'workflow' or A1111 'parameters' text chunk)")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except UnicodeDecodeError:
        raise InputError(f"{path} is not a text file; give a workflow .json or a .png") from None
    except ValueError as exc:
        raise InputError(f"{path} is not valid JSON: {exc}") from None
    if isinstance(data, dict) and isinstance(data.get("prompt"), dict):
        workflow = (data.get("extra_data") or {}).get("extra_pnginfo", {}).get("workflow")
        return data["prompt"], workflow
    return data, None


def to_prompt(data: Any, registry: Any) -> tuple[dict[str, Any], Any]:
    """The API prompt, converting a UI-format workflow."""
    from engine.workflow_format import WorkflowConversionError, is_ui_workflow, ui_to_api
    from nodes.a1111_parameters import a1111_to_api

    if isinstance(data, A1111Parameters):
        folders = getattr(registry.env, "folders", None)
        checkpoints = folders.list_models("checkpoints") if folders is not None else []
        try:
            return a1111_to_api(data.text, checkpoints), None
        except WorkflowConversionError as exc:
            raise InputError(f"could not read the A1111 parameters: {exc}") from None
    if is_ui_workflow(data):
        try:
            return ui_to_api(data, registry.schema), data
        except WorkflowConversionError as exc:
            raise InputError(f"could not convert the UI workflow: {exc}") from None
    if not isinstance(data, dict):
        raise InputError("expected a prompt object ({node id: {class_type, inputs}}) or a UI workflow")
    return data, None


def format_validation(response: dict[str, Any], prompt: dict[str, Any] | None = None, *,
                      one_line: bool = False) -> str:
    """Validation errors as a person reads them: ``loom run`` prints the lines, the
    worker puts them on one line in a prompt's execution_error."""
    lines = []  # (line, whether it continues the line before)
    error = response.get("error") or {}
    if error:
        lines.append((f"error: {error.get('message', 'invalid prompt')}", False))
        if error.get("details"):
            lines.append((f"  {error['details']}", True))
    for node_id, info in (response.get("node_errors") or {}).items():
        class_type = info.get("class_type") or ((prompt or {}).get(node_id) or {}).get("class_type", "?")
        lines.append((f"node {node_id} ({class_type}):", False))
        for problem in info.get("errors", []):
            name = (problem.get("extra_info") or {}).get("input_name")
            where = f" [{name}]" if name else ""
            detail = f": {problem['details']}" if problem.get("details") else ""
            lines.append((f"  - {problem.get('message', 'error')}{where}{detail}", True))
    if not one_line:
        return "\n".join(line for line, _ in lines)
    text = ""
    for line, continues in lines:
        line = line.strip().removeprefix("- ")
        text += (": " if continues and not text.endswith(":") else " " if continues else "; " if text else "") + line
    return text.removeprefix("error: ")


class ProgressPrinter:
    """An event sink: one progress bar per node, outputs remembered."""

    def __init__(self, prompt: dict[str, Any], quiet: bool, stream: TextIO):
        self.prompt = prompt
        self.quiet = quiet
        self.stream = stream
        self.bar = None
        self.node: str | None = None
        self.started = 0.0
        self.outputs: dict[str, Any] = {}
        self.error: ExecutionError | None = None

    def _label(self, node_id: str) -> str:
        return f"#{node_id} {(self.prompt.get(node_id) or {}).get('class_type', '')}".strip()

    def _close(self) -> None:
        """End the current node's line: its bar if it reported progress,
        else one line with its time."""
        if self.node is None:
            return
        if self.bar is not None:
            if self.bar.total:
                self.bar.n = self.bar.total
            self.bar.close()
            self.bar = None
        elif not self.quiet:
            elapsed = time.perf_counter() - self.started
            print(f"{self._label(self.node)}: done in {elapsed * 1000:.0f} ms", file=self.stream)
        self.node = None

    def __call__(self, event: Event) -> None:
        if isinstance(event, Executing):
            self._close()
            self.node = event.node
            self.started = time.perf_counter()
        elif isinstance(event, Progress):
            if self.quiet:
                return
            if self.bar is None:
                from tqdm import tqdm

                self.bar = tqdm(total=event.max, desc=self._label(event.node or self.node or ""),
                                file=self.stream, leave=True, dynamic_ncols=True)
            self.bar.total = event.max
            self.bar.n = event.value
            self.bar.refresh()
        elif isinstance(event, ExecutionCached):
            if event.nodes and not self.quiet:
                print(f"cached: {', '.join(self._label(n) for n in event.nodes)}", file=self.stream)
        elif isinstance(event, Executed):
            if event.output:
                self.outputs[event.node] = dict(event.output)
        elif isinstance(event, ExecutionError):
            self.error = event

    def finish(self) -> None:
        self._close()


def describe_outputs(outputs: dict[str, Any], folders: Any, prompt: dict[str, Any]) -> list[str]:
    lines = []
    for node_id, ui in outputs.items():
        label = f"#{node_id} {(prompt.get(node_id) or {}).get('class_type', '')}".strip()
        for kind, values in (ui or {}).items():
            if not isinstance(values, list):
                continue
            for value in values:
                if isinstance(value, dict) and isinstance(value.get("filename"), str):
                    try:
                        path = folders.resolve(value.get("type", "output"), value.get("subfolder", ""), value["filename"])
                    except ValueError:
                        path = value["filename"]
                    lines.append(f"{label}: {path}")
                elif kind == "text":
                    lines.append(f"{label}: {value}")
    return lines


def run_workflow(args: argparse.Namespace, out: TextIO | None = None, err: TextIO | None = None) -> int:
    from engine.executor import Executor
    from engine.validation import validate_prompt

    out = out or sys.stdout
    err = err or sys.stderr
    try:
        data, workflow = read_workflow(args.workflow)
        host = build_host(args)
        prompt, converted_from = to_prompt(data, host.registry)
    except (InputError, ValueError, OSError) as exc:
        print(f"loom run: {exc}", file=err)
        return EXIT_INVALID
    workflow = workflow or converted_from
    if args.verbose:
        print(plugin_summary(host), file=err)
    validation = validate_prompt(host.registry, prompt)
    if not validation.ok:
        print(f"loom run: {args.workflow} is not a valid prompt\n{format_validation(validation.response(), prompt)}",
              file=err)
        return EXIT_INVALID

    interrupt = InterruptFlag()

    def on_sigint(signum, frame):
        if interrupt.is_set():
            raise KeyboardInterrupt
        print("\ninterrupting (Ctrl-C again to abort)...", file=err)
        interrupt.set()

    previous = signal.signal(signal.SIGINT, on_sigint)
    printer = ProgressPrinter(validation.prompt, quiet=args.quiet, stream=err)
    extra_data = {"extra_pnginfo": {"workflow": workflow}} if workflow is not None else {}
    executor = Executor(host.registry, cache="none")
    try:
        outcome = executor.execute(validation, prompt_id=str(uuid.uuid4()), sink=printer,
                                   interrupt=interrupt, extra_data=extra_data)
    finally:
        printer.finish()
        signal.signal(signal.SIGINT, previous)
        executor.close()
    if outcome.status == "interrupted":
        print("loom run: interrupted", file=err)
        return EXIT_INTERRUPTED
    if outcome.status != "success":
        failure = outcome.error or printer.error
        if failure is not None:
            print(f"loom run: node {failure.node_id} ({failure.node_type}) failed: "
                  f"{failure.exception_type}: {failure.exception_message}", file=err)
        else:
            print("loom run: the workflow failed", file=err)
        return EXIT_FAILED
    outputs = dict(outcome.outputs or {}) or printer.outputs
    lines = describe_outputs(outputs, host.folders, validation.prompt)
    print("\n".join(lines) if lines else "done (no output files)", file=out)
    return EXIT_OK
