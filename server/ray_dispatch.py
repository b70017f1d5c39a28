"""Dispatching the queue to long-lived workers on a Ray cluster.

The SQLite queue stays the source of truth and Ray is only the transport: a
prompt leaves the queue table when its history row is committed, as with the
local worker.  When the worker running a prompt dies (its actor is restarted
by Ray), the prompt goes back to the head of the in-memory queue and runs
again on the next free worker; its history row is written once, by the run
that finishes.

One actor per GPU in the cluster (``num_gpus=1``); on a cluster without GPUs,
``cpu_workers`` actors of one CPU each.  Each worker takes at most
``max_in_flight`` prompts at a time, so the backlog waits here, in the queue
(where it can be reordered, cancelled and survives restarts), not in Ray.

Ray is imported only here, and only when ``--workers ray`` is used.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .affinity import Candidate, checkpoint_names, choose
from .hub import Hub
from .prompt_queue import PromptQueue
from .records import QueueItem
from .remote_jobs import Accepted, Job, JobResult, ShippedFile, WorkerInfo, WorkerStartError
from .remote_worker import HostSpec, WorkerRuntime
from .store import Store
from .worker import EventRouter, Running, describe_invalid, error_event, record_outcome

log = logging.getLogger("loom.server")


@dataclass(frozen=True)
class RayOptions:
    #: None starts a local Ray (or joins the one this process already runs);
    #: "auto" or "HOST:PORT" joins an existing cluster.
    address: str | None = None
    cpu_workers: int = 1
    max_in_flight: int = 1
    #: Every worker writes to the server's output folder (a shared mount):
    #: never send files back.
    shared_output: bool = False
    #: Workers that die running one prompt before it is recorded as failed.
    max_attempts: int = 3
    #: torch threads per CPU worker (None: Ray's default of one per CPU asked).
    torch_threads: int | None = None


def parse_workers(value: str) -> tuple[str, str | None]:
    """``local`` | ``ray`` | ``ray=ADDRESS`` → (kind, address)."""
    kind, _, address = value.partition("=")
    if kind not in ("local", "ray") or (kind == "local" and address) or (_ and not address):
        raise ValueError(f"--workers must be 'local', 'ray' or 'ray=ADDRESS', not {value!r}")
    return kind, address or None


@dataclass
class RemoteWorker:
    """The server's view of one actor."""

    name: str
    actor: Any
    up: bool = False
    in_flight: int = 0
    info: WorkerInfo | None = None
    resident: frozenset[str] = frozenset()
    running: dict[str, Running] = field(default_factory=dict)
    lost: int = 0  # times its process died


class RayDispatcher:
    def __init__(self, *, queue: PromptQueue, store: Store, hub: Hub, validate: Any, folders: Any,
                 spec: HostSpec, options: RayOptions | None = None, preview_interval: float = 0.0):
        self.queue = queue
        self.store = store
        self.hub = hub
        self.validate = validate
        self.folders = folders
        self.spec = spec
        self.options = options or RayOptions()
        self.preview_interval = preview_interval
        self.workers: list[RemoteWorker] = []
        self.completed = 0
        self._cond = threading.Condition()
        self._attempts: Counter[str] = Counter()
        self._stopping = False
        self._owns_ray = False
        self._jobs: set[threading.Thread] = set()
        self._thread = threading.Thread(target=self._loop, name="loom-dispatch", daemon=True)

    # ------------------------------------------------------------ lifecycle
    def start(self) -> None:
        """Join (or start) Ray and start the workers; they take prompts as
        soon as each has built its host."""
        ray = _ray()
        if not ray.is_initialized():
            os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
            # Loom stops on SIGTERM by itself; Ray's crash handler would dump a
            # stack trace on it first.
            os.environ.setdefault("RAY_DISABLE_FAILURE_SIGNAL_HANDLER", "1")
            # Called off the main thread on purpose (Ray would replace the
            # server's SIGTERM handler there); its warning about that is noise.
            quiet = logging.getLogger("ray._private.worker")
            level = quiet.level
            quiet.setLevel(logging.ERROR)
            try:
                ray.init(address=self.options.address, include_dashboard=False,
                         log_to_driver=self.spec.verbose, configure_logging=False)
            except Exception as exc:
                where = self.options.address or "a new local cluster"
                raise WorkerStartError(f"could not start Ray workers on {where}: {exc}") from exc
            finally:
                quiet.setLevel(level)
            self._owns_ray = True
        gpus = int(ray.cluster_resources().get("GPU", 0))
        if gpus:
            count, resources = gpus, {"num_gpus": 1, "num_cpus": 0}
        else:
            count, resources = self.options.cpu_workers, {"num_cpus": 1}
        actor_class = ray.remote(WorkerRuntime).options(
            max_restarts=-1, max_task_retries=0, max_concurrency=self.options.max_in_flight + 4, **resources)
        for index in range(count):
            name = f"{socket.gethostname()}-{'gpu' if gpus else 'cpu'}{index}"
            actor = actor_class.remote(self.spec, name, self.options.torch_threads)
            self.workers.append(RemoteWorker(name, actor))
        for worker in self.workers:
            self._watch(worker)
        self._thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        """Stop after interrupting running prompts, which stay queued."""
        self._stopping = True
        self.queue.close()
        with self._cond:
            self._cond.notify_all()
        self.request_interrupt(None)
        if self._thread.is_alive():
            self._thread.join(timeout)
        for job in list(self._jobs):
            job.join(timeout)
        ray = _ray()
        for worker in self.workers:
            try:
                ray.kill(worker.actor)
            except Exception:
                pass
        if self._owns_ray:
            ray.shutdown()

    # ----------------------------------------------- the server's controls
    @property
    def running(self) -> Running | None:
        with self._cond:
            for worker in self.workers:
                for running in worker.running.values():
                    return running
        return None

    def request_interrupt(self, prompt_id: str | None = None) -> bool:
        found = False
        with self._cond:
            for worker in self.workers:
                if prompt_id is None and worker.running or prompt_id in worker.running:
                    worker.actor.interrupt.remote(prompt_id)
                    found = True
        return found

    def request_free(self, unload_models: bool, free_memory: bool) -> None:
        for worker in self.workers:
            worker.actor.free.remote(unload_models, free_memory)

    def describe(self) -> list[dict[str, Any]]:
        """Every worker as ``/system_stats`` lists them (asked now; a worker
        that does not answer within a second is shown as last seen)."""
        ray = _ray()
        refs = [(worker, worker.actor.info.remote() if worker.up else None) for worker in self.workers]
        out = []
        for worker, ref in refs:
            info = worker.info
            if ref is not None:
                try:
                    info = ray.get(ref, timeout=1.0)
                except Exception:
                    pass
            entry = info.wire() if info else {"worker": worker.name}
            with self._cond:
                entry["state"] = "up" if worker.up else ("restarting" if worker.lost else "starting")
                entry["in_flight"] = worker.in_flight
                entry["current_prompt"] = next(iter(worker.running), None)
            entry["restarts"] = worker.lost
            out.append(entry)
        return out

    # -------------------------------------------------------------- dispatch
    def _has_room(self) -> bool:
        return any(w.up and w.in_flight < self.options.max_in_flight for w in self.workers)

    def _loop(self) -> None:
        while not self._stopping:
            with self._cond:
                if not self._cond.wait_for(lambda: self._stopping or self._has_room(), timeout=0.5):
                    continue
            item = self.queue.take(timeout=0.5)
            if item is None or self._stopping:
                continue
            validation = item.validation if item.validation is not None else self.validate(item)
            if not validation.ok:
                record_outcome(self.store, self.queue, self.hub, item, None, status="error", outputs={},
                               messages=[], error=error_event(item.prompt_id, ValueError(describe_invalid(validation))))
                continue
            with self._cond:
                candidates = [Candidate(i, w.in_flight, w.resident) for i, w in enumerate(self.workers)
                              if w.up and w.in_flight < self.options.max_in_flight]
                index = choose(candidates, checkpoint_names(item.prompt))
                if index is None:  # its worker went away meanwhile
                    self.queue.give_back(item)
                    continue
                worker = self.workers[index]
                worker.in_flight += 1
                worker.running[item.prompt_id] = Running(item.prompt_id, item.client_id)
            job = threading.Thread(target=self._run, args=(worker, item), name="loom-dispatch-job", daemon=True)
            self._jobs.add(job)
            job.start()

    def _run(self, worker: RemoteWorker, item: QueueItem) -> None:
        ray = _ray()
        try:
            router = EventRouter(self.hub, item, lambda running: self._on_node(worker, running),
                                 self.preview_interval)
            result: JobResult | None = None
            try:
                job = Job(item.prompt_id, item.prompt, item.extra_data, list(item.outputs or []),
                          ship_files=self._ship_files(worker))
                for ref in worker.actor.run.remote(job):
                    message = ray.get(ref)
                    if isinstance(message, JobResult):
                        result = message
                    elif not isinstance(message, Accepted):
                        for event in message:
                            router(event)
            except ray.exceptions.RayActorError as exc:
                self._worker_died(worker, item, exc)
                return
            except Exception as exc:  # a bug in the worker's runtime: the prompt fails
                log.exception("worker %s failed running %s", worker.name, item.prompt_id)
                result = JobResult(item.prompt_id, "error", {}, [], error_event(item.prompt_id, exc))
            if result is None:
                result = JobResult(item.prompt_id, "error", {}, [],
                                   error_event(item.prompt_id, RuntimeError("the worker sent no result")))
            try:
                if result.status == "interrupted" and self._stopping:
                    return  # shutting down: it stays queued and runs again next start
                outputs = land_files(self.folders, result.files, dict(result.outputs), item.prompt_id)
                record_outcome(self.store, self.queue, self.hub, item, router, status=result.status,
                               outputs=outputs, messages=list(result.messages), error=result.error,
                               before_release=lambda: self._forget(worker, item.prompt_id))
                self._attempts.pop(item.prompt_id, None)
                self.completed += 1
            finally:
                # Only now: the queue never shows more prompts running than
                # the workers have room for.
                self._release(worker, result)
        finally:
            self._jobs.discard(threading.current_thread())

    def _on_node(self, worker: RemoteWorker, running: Running) -> None:
        with self._cond:
            if running.prompt_id in worker.running:
                worker.running[running.prompt_id] = running

    def _forget(self, worker: RemoteWorker, prompt_id: str) -> None:
        with self._cond:
            worker.running.pop(prompt_id, None)

    def _release(self, worker: RemoteWorker, result: JobResult) -> None:
        with self._cond:
            worker.in_flight -= 1
            if result.resident or result.loads:
                worker.resident = frozenset(result.resident)
            self._cond.notify_all()

    def _worker_died(self, worker: RemoteWorker, item: QueueItem, exc: BaseException) -> None:
        self._attempts[item.prompt_id] += 1
        attempts = self._attempts[item.prompt_id]
        with self._cond:
            worker.in_flight -= 1
            worker.running.pop(item.prompt_id, None)
            first = worker.up
            worker.up = False
            worker.resident = frozenset()
            if first:
                worker.lost += 1
        if self._stopping:
            return
        if attempts >= self.options.max_attempts:
            log.error("prompt %s: its worker died %d times; recorded as failed", item.prompt_id, attempts)
            record_outcome(self.store, self.queue, self.hub, item, None, status="error", outputs={}, messages=[],
                           error=error_event(item.prompt_id, RuntimeError(
                               f"the worker running this prompt died {attempts} times ({exc})")))
            self._attempts.pop(item.prompt_id, None)
        else:
            log.warning("worker %s died running %s; the prompt goes back to the queue", worker.name, item.prompt_id)
            self.queue.give_back(item)
        if first:
            self._watch(worker)

    def _watch(self, worker: RemoteWorker) -> None:
        """Mark the worker up once it answers (after its host is built, or
        after Ray has restarted it)."""

        def wait() -> None:
            ray = _ray()
            while not self._stopping:
                try:
                    info = ray.get(worker.actor.info.remote(), timeout=5.0)
                except Exception:
                    if not self._stopping:
                        threading.Event().wait(0.2)
                    continue
                with self._cond:
                    worker.info = info
                    worker.resident = frozenset(info.resident)
                    worker.up = True
                    self._cond.notify_all()
                return

        threading.Thread(target=wait, name="loom-worker-watch", daemon=True).start()

    def _ship_files(self, worker: RemoteWorker) -> bool:
        if self.options.shared_output:
            return False
        info = worker.info
        return info is None or info.host != socket.gethostname() or \
            Path(info.output_dir) != self.folders.output.resolve()


def land_files(folders: Any, files: list[ShippedFile], outputs: dict[str, Any], prompt_id: str) -> dict[str, Any]:
    """Write files sent back by a worker into the server's folders.  A name
    already taken by a different file (another machine counted the same
    ``prefix_00001_.png``) gets the prompt id added, and the outputs say so."""
    renamed: dict[tuple[str, str, str], str] = {}
    for shipped in files:
        try:
            target = folders.resolve(shipped.root, shipped.subfolder, shipped.filename)
        except ValueError:
            log.warning("a worker sent a file with an unsafe name: %r", shipped.filename)
            continue
        if target.exists() and target.read_bytes() != shipped.data:
            stem, dot, suffix = shipped.filename.rpartition(".")
            new_name = f"{stem}_{prompt_id[:8]}.{suffix}" if dot else f"{shipped.filename}_{prompt_id[:8]}"
            target = target.with_name(new_name)
            renamed[(shipped.root, shipped.subfolder, shipped.filename)] = new_name
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(shipped.data)
    if renamed:
        for ui in outputs.values():
            for values in (ui.values() if isinstance(ui, dict) else ()):
                for value in (values if isinstance(values, list) else ()):
                    if isinstance(value, dict):
                        key = (value.get("type") or "output", str(value.get("subfolder") or ""), value.get("filename"))
                        if key in renamed:
                            value["filename"] = renamed[key]
    return outputs


def _ray() -> Any:
    try:
        import ray
    except ImportError:
        raise WorkerStartError("--workers ray needs Ray: pip install -e '.[ray]'") from None
    return ray
