"""One remote worker's runtime: Loom's own host (registry with built-ins and
the same ``custom_nodes/``, env, memory manager, executor) kept alive between
prompts so models stay resident.

Plain Python: the Ray dispatcher wraps it in an actor (``ray.remote(WorkerRuntime)``),
and nothing here imports Ray.  Runs are generators: ``Accepted``, then batches
of engine events as they happen, then a ``JobResult`` — so events reach the
server in order for each prompt.
"""

from __future__ import annotations

import argparse
import logging
import os
import queue
import socket
import sys
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

from engine.interrupt import InterruptFlag

from .remote_jobs import Accepted, Job, JobResult, ShippedFile, WorkerInfo

log = logging.getLogger("loom.worker")

_DONE = object()
#: Longest a batch of events waits for more before it is sent (seconds).
BATCH_WINDOW = 0.02


@dataclass(frozen=True)
class HostSpec:
    """What builds a host: the folder and runtime options of ``loom serve``.
    Paths are absolute, so a worker on another machine finds the same layout
    (or a shared mount) at the same place."""

    base_directory: str = "."
    output_directory: str | None = None
    input_directory: str | None = None
    temp_directory: str | None = None
    user_directory: str | None = None
    models_dir: str | None = None
    extra_model_paths_config: tuple[str, ...] | None = None
    cpu: bool = False
    preview_method: str = "latent2rgb"
    cache: str = "classic"
    disable_custom_nodes: bool = False
    verbose: bool = False

    @classmethod
    def from_args(cls, args: argparse.Namespace) -> "HostSpec":
        def absolute(value: Any) -> str | None:
            return None if value is None else str(Path(value).resolve())

        extra = args.extra_model_paths_config
        return cls(
            base_directory=str(Path(args.base_directory).resolve()),
            output_directory=absolute(args.output_directory), input_directory=absolute(args.input_directory),
            temp_directory=absolute(args.temp_directory), user_directory=absolute(args.user_directory),
            models_dir=absolute(args.models_dir),
            extra_model_paths_config=tuple(str(Path(p).resolve()) for p in extra) if extra else None,
            cpu=args.cpu, preview_method=args.preview_method, cache=args.cache,
            disable_custom_nodes=args.disable_custom_nodes, verbose=args.verbose,
        )

    def namespace(self) -> argparse.Namespace:
        values = dict(self.__dict__)
        if values["extra_model_paths_config"] is not None:
            values["extra_model_paths_config"] = list(values["extra_model_paths_config"])
        return argparse.Namespace(**values)


@dataclass
class _Run:
    job: Job
    events: "queue.SimpleQueue[Any]" = field(default_factory=queue.SimpleQueue)
    result: JobResult | None = None


class WorkerRuntime:
    """A long-lived worker; its methods are the actor's methods."""

    def __init__(self, spec: HostSpec, name: str, torch_threads: int | None = None):
        if torch_threads and "torch" not in sys.modules:
            # torch reads these when it is first imported (by the first model node).
            os.environ["OMP_NUM_THREADS"] = os.environ["MKL_NUM_THREADS"] = str(torch_threads)
        from .host import build_host

        host = build_host(spec.namespace())
        self.name = name
        self.registry = host.registry
        self.env = host.env
        self.cache = spec.cache
        self.torch_threads = torch_threads
        self.interrupt_flag = InterruptFlag()
        self._lock = threading.Lock()  # one prompt at a time
        self._executor: Any = None
        self._free_request: tuple[bool, bool] | None = None
        self.current: str | None = None
        self.completed = 0
        self.loads = 0

    # ------------------------------------------------------------ queries
    def info(self) -> WorkerInfo:
        from .worker import resident_models

        return WorkerInfo(worker=self.name, host=socket.gethostname(), pid=os.getpid(),
                          device=self._device(), output_dir=str(self.env.folders.output.resolve()),
                          resident=tuple(resident_models(self.env)), current_prompt=self.current,
                          completed=self.completed, loads=self.loads)

    def _device(self) -> str:
        if self.env.models_loaded:
            return str(self.env.models.device)
        return self.env.device

    # ----------------------------------------------------------- controls
    def interrupt(self, prompt_id: str | None = None) -> bool:
        current = self.current
        if current is None or (prompt_id is not None and prompt_id != current):
            return False
        self.interrupt_flag.set()
        return True

    def free(self, unload_models: bool, free_memory: bool) -> None:
        """Applied now when idle, else right after the running prompt."""
        self._free_request = (unload_models, free_memory)
        if self._lock.acquire(blocking=False):
            try:
                self._apply_free()
            finally:
                self._lock.release()

    def _apply_free(self) -> None:
        request, self._free_request = self._free_request, None
        if request is None:
            return
        unload, free = request
        if unload and self._executor is not None:
            self._executor.close()  # its cached results hold the models
            self._executor = None
        if self.env.models_loaded:
            self.env.models.free(unload_models=unload, free_memory=free)

    # ---------------------------------------------------------------- run
    def run(self, job: Job) -> Iterator[Any]:
        with self._lock:
            self._apply_free()
            self.interrupt_flag.clear()
            self.current = job.prompt_id
            try:
                yield Accepted(job.prompt_id, self.name)
                run = _Run(job)
                thread = threading.Thread(target=self._execute, args=(run,), name="loom-remote-run", daemon=True)
                thread.start()
                done = False
                while not done:
                    batch = [run.events.get()]
                    try:
                        while True:
                            batch.append(run.events.get(timeout=BATCH_WINDOW) if len(batch) == 1
                                         else run.events.get_nowait())
                    except queue.Empty:
                        pass
                    if batch[-1] is _DONE:
                        batch.pop()
                        done = True
                    if batch:
                        yield batch
                thread.join()
                self.completed += 1
                yield run.result
            finally:
                self.current = None
                self._apply_free()

    def _execute(self, run: _Run) -> None:
        from engine.validation import validate_prompt

        from .worker import describe_invalid, error_event, resident_models

        job = run.job
        try:
            if self._executor is None:
                from engine.executor import Executor

                self._executor = Executor(self.registry, cache=self.cache)
            validation = validate_prompt(self.registry, job.prompt, job.outputs or None)
            if not validation.ok:
                error = error_event(job.prompt_id, ValueError(describe_invalid(validation)))
                run.result = JobResult(job.prompt_id, "error", {}, [], error)
                return
            before = set(resident_models(self.env))
            outcome = self._executor.execute(
                validation, prompt_id=job.prompt_id, sink=run.events.put, interrupt=self.interrupt_flag,
                extra_data=job.extra_data, outputs=job.outputs or None)
            resident = resident_models(self.env)
            self.loads += len(set(resident) - before)
            outputs = dict(outcome.outputs or {})
            files = self._ship(outputs) if job.ship_files else []
            run.result = JobResult(job.prompt_id, outcome.status, outputs, list(outcome.messages or []),
                                   outcome.error, files, tuple(resident), self.loads)
        except Exception as exc:  # a bug here fails the prompt, not the worker
            log.exception("worker %s failed running %s", self.name, job.prompt_id)
            run.result = JobResult(job.prompt_id, "error", {}, [], error_event(job.prompt_id, exc))
        finally:
            run.events.put(_DONE)

    def _ship(self, outputs: dict[str, Any]) -> list[ShippedFile]:
        """The files the outputs name, read back for the server's folders."""
        files = []
        for ui in outputs.values():
            for value in _file_refs(ui):
                root = value.get("type") or "output"
                if root not in ("output", "temp"):
                    continue
                subfolder = str(value.get("subfolder") or "")
                try:
                    data = self.env.folders.resolve(root, subfolder, value["filename"]).read_bytes()
                except (OSError, ValueError):
                    log.warning("output file %s/%s is missing", subfolder, value["filename"])
                    continue
                files.append(ShippedFile(root, subfolder, value["filename"], data))
        return files


def _file_refs(ui: Any) -> Iterator[dict[str, Any]]:
    if not isinstance(ui, dict):
        return
    for values in ui.values():
        if isinstance(values, list):
            for value in values:
                if isinstance(value, dict) and isinstance(value.get("filename"), str):
                    yield value
