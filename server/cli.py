"""``loom``: ``loom serve [options]`` starts the server, ``loom run WORKFLOW`` runs
one workflow headless, ``loom models download URL --kind KIND`` fetches a model
file into its folder."""

from __future__ import annotations

import argparse
import asyncio
import gc
import logging
import os
import signal
import sys
import time
from typing import Any
from pathlib import Path

from nodes.image_bounds import DEFAULT_MAX_IMAGE_PIXELS

from .cli_jobs import add_models_list, add_serve_options, add_users_parser, list_models, run_users, serve_options, version
from .config import DEFAULT_WEB_ROOT, ServerOptions, is_loopback
from .host import add_folder_options, build_host, plugin_summary
from .precision_options import add_precision_options

WARNING = """
********************************************************************************
  WARNING: Loom is listening on {listen} without --auth-token.
  Anyone who can reach this machine can run workflows and read your files.
  Add --auth-token <secret> (or LOOM_AUTH_TOKEN) or listen on 127.0.0.1.
********************************************************************************
"""


def _serve_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("serve", help="start the server and editor")
    p.add_argument("--listen", nargs="?", const="0.0.0.0", default="127.0.0.1", metavar="ADDRESS",
                   help="address to listen on (default 127.0.0.1; --listen alone: 0.0.0.0)")
    p.add_argument("--port", type=int, default=8188, help="port to listen on (default 8188; 0: any free port)")
    add_folder_options(p)
    p.add_argument("--max-upload-size", type=float, default=100.0, metavar="MiB",
                   help="largest upload and request body, in MiB (default 100)")
    p.add_argument("--max-history", type=int, default=10000, metavar="N",
                   help="finished prompts kept in history (default 10000)")
    p.add_argument("--auth-token", default=os.environ.get("LOOM_AUTH_TOKEN"), metavar="TOKEN",
                   help="require this token on every request (default: $LOOM_AUTH_TOKEN)")
    p.add_argument("--enable-cors-header", nargs="?", const="*", default=None, metavar="ORIGIN",
                   help="allow cross-origin requests from ORIGIN (alone: any origin)")
    p.add_argument("--max-image-pixels", type=int, default=DEFAULT_MAX_IMAGE_PIXELS, metavar="PIXELS",
                   help="largest image (width x height, all frames) decoded from a file: uploads, /view"
                        f" conversions, LoadImage (default {DEFAULT_MAX_IMAGE_PIXELS} = 8192x8192; 0: no limit)")
    p.add_argument("--keepalive-timeout", type=float, default=60.0, metavar="SECONDS",
                   help="close a connection that is idle, or has not sent a whole request head,"
                        " this long after it opened or after its last response (default 60)")
    p.add_argument("--allow-private-downloads", action="store_true",
                   help="let POST /models/download fetch from loopback and private-network addresses")
    add_serve_options(p)
    p.add_argument("--web-root", type=Path, default=DEFAULT_WEB_ROOT, help=argparse.SUPPRESS)
    queue = p.add_argument_group("queue")
    queue.add_argument("--max-prompt-attempts", type=int, default=3, metavar="N",
                       help="starts of one prompt that end with the server process dying (a node that calls"
                            " os._exit or crashes) before it is recorded as failed (default 3)")
    queue.add_argument("--interrupt-grace", type=float, default=30.0, metavar="SECONDS",
                       help="after /interrupt, seconds a node may keep running before its prompt is ended as"
                            " interrupted and the worker moves on without it (default 30)")
    queue.add_argument("--recover-queue", action="store_true",
                       help="if the queue database is damaged, move it aside to *.corrupt-<time> and start"
                            " with what can still be read from it")
    add_precision_options(p)
    workers = p.add_argument_group("workers")
    workers.add_argument("--workers", default="local", metavar="local|ray[=ADDRESS]",
                         help="who runs the queue: this process (local, default) or one worker per GPU"
                              " on a Ray cluster (ray: start or join a local one; ray=HOST:PORT: join)")
    workers.add_argument("--ray-cpu-workers", type=int, default=1, metavar="N",
                         help="workers to start when the Ray cluster has no GPUs (default 1)")
    workers.add_argument("--ray-max-in-flight", type=int, default=1, metavar="N",
                         help="prompts handed to one worker at a time; the rest wait in the queue (default 1)")
    workers.add_argument("--ray-torch-threads", type=int, default=None, metavar="N",
                         help="torch threads in each CPU worker (default: Ray's, one per CPU it asks for)")
    workers.add_argument("--shared-output", action="store_true",
                         help="every Ray worker writes to this server's output folder (a shared mount):"
                              " do not send output files back")


def _run_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("run", help="run one workflow without a server")
    p.add_argument("workflow", type=Path, help="API-format prompt JSON, UI-format workflow JSON, or a PNG made by Loom/ComfyUI")
    add_folder_options(p)
    add_precision_options(p)
    p.add_argument("--quiet", action="store_true", help="no progress bars")


def _models_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("models", help="manage model files")
    models = p.add_subparsers(dest="models_command", required=True)
    d = models.add_parser("download", help="download a model file into its folder (resumes, checks size and sha256)",
                          description="Download URL into models/KIND/. The file is written as NAME.part and renamed"
                                      " when complete and checked; running the same command again after a"
                                      " dropped connection resumes it. Ctrl-C cancels the download and removes"
                                      " NAME.part.")
    d.add_argument("url", help="http:// or https:// URL of the file")
    d.add_argument("--kind", required=True, metavar="KIND",
                   help="the model folder: checkpoints, loras, vae, controlnet, upscale_models, embeddings, ...")
    d.add_argument("--name", metavar="FILE", help="file name in the folder (default: the end of the URL's path)")
    d.add_argument("--sha256", metavar="HEX", help="expected sha256; a mismatch discards the download")
    d.add_argument("--size", type=int, metavar="BYTES", help="expected size in bytes")
    d.add_argument("--retries", type=int, default=3, metavar="N",
                   help="times to resume after a dropped connection (default 3)")
    group = d.add_argument_group("folders")
    group.add_argument("--base-directory", default=".", metavar="DIR",
                       help="the folder holding models/ (default: .)")
    group.add_argument("--models-dir", metavar="DIR", help="the models folder (default: BASE/models)")
    d.add_argument("--quiet", action="store_true", help="no progress bar")
    d.add_argument("--verbose", action="store_true", help="log debug messages")
    add_models_list(models)


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="loom", description="Loom: a node-graph app for Stable Diffusion")
    p.add_argument("--version", action="version", version=f"loom {version()}", help="print Loom's version and exit")
    sub = p.add_subparsers(dest="command", metavar="serve|run|models|users")
    _serve_parser(sub)
    _run_parser(sub)
    _models_parser(sub)
    add_users_parser(sub)
    return p


def main(argv: list[str] | None = None) -> int:
    started = time.perf_counter()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    args = parser().parse_args(argv)
    if args.command is None:  # bare `loom`: what it can do
        parser().print_help()
        return 0
    handlers = None
    if args.command == "serve":  # two lines per prompt under load: written in batches
        from .log_output import BatchedStreamHandler

        handlers = [BatchedStreamHandler()]
    logging.basicConfig(level=logging.DEBUG if getattr(args, "verbose", False) else logging.INFO,
                        format="%(levelname)s %(name)s: %(message)s", handlers=handlers)
    if args.command == "users":
        return run_users(args)
    if args.command == "models" and args.models_command == "list":
        return list_models(args)
    if args.command == "run":
        from .run import run_workflow

        return run_workflow(args)
    if args.command == "models":
        return download_model(args)
    return serve(args, started)


def download_model(args: argparse.Namespace) -> int:
    """``loom models download``: 0 when the file is in place, 1 when the download
    failed (the message says why), 2 for bad input, 130 when cancelled with Ctrl-C
    (the partial file is removed: a cancel means the bytes are not wanted)."""
    from nodes.folders import MODEL_EXTENSIONS, Folders

    from .download_requests import (BadDownloadRequest, DownloadError, DownloadRequest, check_request, check_url,
                                    name_from_url)
    from .model_downloads import Downloader

    try:
        url = check_url(args.url)
        name = args.name
        if name is None:
            name = name_from_url(url)
            if os.path.splitext(name)[1].lower() not in MODEL_EXTENSIONS:
                raise BadDownloadRequest(f"cannot tell a model file name from the URL (it ends in {name[:80]!r});"
                                         " give one with --name FILE.safetensors")
        if args.retries < 0:
            raise BadDownloadRequest("--retries must be 0 or more")
        folders = Folders.from_options(Path(args.base_directory), models_dir=args.models_dir)
        request = DownloadRequest(url=url, directory=args.kind, name=name, sha256=args.sha256, size=args.size)
        downloader = Downloader(folders, retries=args.retries)
        request, dest = check_request(folders, request)
    except BadDownloadRequest as exc:
        print(f"loom: {exc}", file=sys.stderr)
        return 2
    where = f"models/{dest.directory}/{dest.name}"
    if dest.part.is_file() and not dest.path.exists():
        print(f"resuming at {dest.part.stat().st_size:,} bytes from {dest.part}", flush=True)
    bar = None

    def on_progress(progress) -> None:
        nonlocal bar
        if args.quiet:
            return
        if bar is None:
            from tqdm import tqdm

            bar = tqdm(total=progress.total, initial=progress.done, desc=dest.name, unit="B", unit_scale=True,
                       unit_divisor=1024, dynamic_ncols=True, file=sys.stderr)
        bar.total = progress.total
        bar.update(progress.done - bar.n)

    try:
        result = asyncio.run(downloader.download(request, on_progress))
    except KeyboardInterrupt:
        if bar is not None:
            bar.close()
        # asyncio.run cancelled the download, which removed its part file; a
        # second Ctrl-C may have cut that short, so make sure (never the real file).
        dest.part.unlink(missing_ok=True)
        print(f"loom: download of {where} cancelled; no partial file ({dest.part.name}) is left", file=sys.stderr)
        return 130
    except BadDownloadRequest as exc:
        print(f"loom: {exc}", file=sys.stderr)
        return 2
    except DownloadError as exc:
        if bar is not None:
            bar.close()
        print(f"loom: {exc}", file=sys.stderr)
        return 1
    if bar is not None:
        bar.close()
    if result.already_present:
        print(f"{where} is already there (sha256 {result.sha256})")
    else:
        print(f"saved {where} ({result.size:,} bytes, sha256 {result.sha256}) in {dest.path.parent}")
    return 0


def _options(args: argparse.Namespace) -> ServerOptions:
    if args.max_history < 1:
        raise SystemExit("loom: --max-history must be at least 1")
    if args.max_upload_size <= 0:
        raise SystemExit("loom: --max-upload-size must be positive")
    if args.max_prompt_attempts < 1:
        raise SystemExit("loom: --max-prompt-attempts must be at least 1")
    if not args.interrupt_grace > 0:
        raise SystemExit("loom: --interrupt-grace must be a positive number of seconds")
    if not args.max_image_pixels >= 0:
        raise SystemExit("loom: --max-image-pixels must be 0 (no limit) or more")
    if not args.keepalive_timeout > 0:
        raise SystemExit("loom: --keepalive-timeout must be positive")
    from engine.cache import make_cache

    try:
        make_cache(args.cache)
    except ValueError as exc:
        raise SystemExit(f"loom: --cache: {exc}") from None
    return ServerOptions(
        listen=args.listen, port=args.port, max_upload_size=args.max_upload_size,
        auth_token=args.auth_token or None, cors_origin=args.enable_cors_header, cache=args.cache,
        max_history=args.max_history, web_root=args.web_root, verbose=args.verbose,
        max_prompt_attempts=args.max_prompt_attempts, interrupt_grace=args.interrupt_grace,
        recover_queue=args.recover_queue,
        max_image_pixels=args.max_image_pixels, keepalive_timeout=args.keepalive_timeout,
        allow_private_downloads=args.allow_private_downloads,
        **serve_options(args),
    )


def _dispatcher(args: argparse.Namespace):
    """The factory for ``--workers ray``; None for the local worker thread."""
    from .ray_dispatch import parse_workers

    try:
        kind, address = parse_workers(args.workers)
    except ValueError as exc:
        raise SystemExit(f"loom: {exc}") from None
    if kind == "local":
        return None
    for flag, value in (("--ray-cpu-workers", args.ray_cpu_workers), ("--ray-max-in-flight", args.ray_max_in_flight),
                        ("--ray-torch-threads", args.ray_torch_threads or 1)):
        if value < 1:
            raise SystemExit(f"loom: {flag} must be at least 1")

    def make(server):
        from .ray_dispatch import RayDispatcher, RayOptions
        from .remote_worker import HostSpec

        ray_options = RayOptions(address=address, cpu_workers=args.ray_cpu_workers,
                                 max_in_flight=args.ray_max_in_flight, shared_output=args.shared_output,
                                 max_attempts=args.max_prompt_attempts,
                                 torch_threads=args.ray_torch_threads)
        return RayDispatcher(queue=server.queue, store=server.store, hub=server.hub, validate=server._revalidate,
                             folders=server.folders, spec=HostSpec.from_args(args), options=ray_options,
                             preview_interval=server.options.preview_interval)

    return make


def run_event_loop(main: Any) -> Any:
    """Run the server's coroutine on uvloop where it is installed (it is on
    Linux and macOS), else on asyncio's own loop; behaviour is the same."""
    try:
        import uvloop
    except ImportError:
        return asyncio.run(main)
    return uvloop.run(main)


def event_loop_name() -> str:
    return "uvloop" if type(asyncio.get_running_loop()).__module__.startswith("uvloop") else "asyncio"


#: Container allocations between two young-generation collections (Python's default: 700).
GC_YOUNG_THRESHOLD = 10_000


def tune_garbage_collector() -> None:
    """Once the server is up: what start-up built (modules, the node registry,
    the app) lives as long as the process, so it is frozen out of collections;
    and the youngest generation is collected after 10,000 allocations, not 700.

    Every prompt in flight holds a few dozen small objects (its request, queue
    item, validation, events); at 700 the collector ran every few prompts,
    scanned them while they were still alive and promoted them, and full
    collections then walked start-up's ~70,000 objects again: about 60 us of
    a trivial prompt's ~1 ms.  Per-prompt garbage is freed by reference
    counting (the collector finds almost no cycles here), so this changes
    when cycles are found, not what is freed; freeing models still collects
    explicitly (``diffusion.memory``)."""
    gc.collect()  # start-up's garbage goes now rather than being frozen with the rest
    gc.freeze()
    gc.set_threshold(GC_YOUNG_THRESHOLD, *gc.get_threshold()[1:])


def serve(args: argparse.Namespace, started: float) -> int:
    options = _options(args)
    make_dispatcher = _dispatcher(args)
    try:
        host = build_host(args)
    except (ValueError, OSError) as exc:
        print(f"loom: {exc}", file=sys.stderr)
        return 2
    return run_event_loop(_serve(host, options, started, make_dispatcher))


async def _serve(host, options: ServerOptions, started: float, make_dispatcher=None) -> int:
    from .app import LoomServer
    from .device import detect_device

    # The worker thread runs Python nodes that hold the GIL; a shorter switch
    # interval (default 5 ms) hands it back to the event loop sooner, keeping
    # requests and websocket pings fast during long jobs.
    sys.setswitchinterval(0.001)

    # Handlers first: a SIGTERM during start-up still stops cleanly.
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        try:
            loop.add_signal_handler(sig, stop.set)
        except (NotImplementedError, RuntimeError):
            pass
    from .remote_jobs import WorkerStartError
    from .store_errors import StoreError

    server = LoomServer(host.registry, options, device=host.env.device, make_dispatcher=make_dispatcher)
    if host.on_server is not None:  # ComfyUI compat: PromptServer.instance is this server
        host.on_server(server)
    try:
        await server.start()
    except OSError as exc:
        print(f"loom: cannot listen on {options.listen}:{options.port}: {exc.strerror or exc}", file=sys.stderr)
        return 2
    except WorkerStartError as exc:
        print(f"loom: {exc}", file=sys.stderr)
        await server.stop()
        return 2
    except StoreError as exc:  # a damaged queue database, a full disk: one line, no traceback
        print(f"loom: {exc}", file=sys.stderr)
        await server.stop()
        return 2
    elapsed = time.perf_counter() - started
    tune_garbage_collector()
    device = detect_device(host.env.device)
    lines = [
        f"Loom is ready at {server.url}  (started in {elapsed:.2f} s, {event_loop_name()} event loop)",
        f"device: {device.describe()}" if make_dispatcher is None
        else f"workers: {len(getattr(server.worker, 'workers', []))} on Ray",
        plugin_summary(host),
        f"queue: {server.db_path} ({server.queue.remaining()} queued"
        f"{', paused' if server.queue.paused else ''})",
    ]
    if server.recovery_note:
        lines.append(f"recovered: {server.recovery_note}")
    for handler in logging.getLogger().handlers:  # start-up's log lines come before "ready"
        handler.flush()
    if not is_loopback(options.listen) and not options.auth_token:
        print(WARNING.format(listen=options.listen), file=sys.stderr, flush=True)
    print("\n".join(lines), flush=True)
    await stop.wait()
    print("stopping (a running prompt stays queued)...", flush=True)
    await server.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
