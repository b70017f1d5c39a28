"""``--workers ray``: the queue dispatched to resident-model workers on a local
Ray cluster with two logical GPUs (the actors ask for one each and run on the CPU)."""

from __future__ import annotations

import asyncio
import os
import shutil
import uuid
from collections import Counter
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from server.app import LoomServer
from server.config import ServerOptions

from .conftest import Running, listen

pytestmark = pytest.mark.ray
ray = pytest.importorskip("ray", reason="the ray extra is not installed: pip install -e '.[ray]'")

PACK = Path(__file__).with_name("ray_pack.py")


@pytest.fixture(scope="module")
def cluster():
    os.environ["RAY_USAGE_STATS_ENABLED"] = "0"
    ray.init(num_cpus=2, num_gpus=2, include_dashboard=False, log_to_driver=False, configure_logging=False)
    yield
    ray.shutdown()


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory) -> list[Path]:
    """Two tiny SD1 checkpoints under different names (two models to the manager)."""
    from tests.fixtures.tiny_models import build

    folder = tmp_path_factory.mktemp("tiny")
    model = build("sd1", folder)
    copies = [folder / "alpha.safetensors", folder / "beta.safetensors"]
    for copy in copies:
        shutil.copy(model.checkpoint, copy)
    return copies


def make_base(root: Path, checkpoints: list[Path] = ()) -> Path:
    base = root
    # A fresh package name per server: this test process imports each pack once.
    pack = base / "custom_nodes" / f"raytest_{uuid.uuid4().hex[:8]}"
    pack.mkdir(parents=True, exist_ok=True)
    shutil.copy(PACK, pack / "__init__.py")
    if checkpoints:
        (base / "models" / "checkpoints").mkdir(parents=True, exist_ok=True)
        for path in checkpoints:
            os.symlink(path, base / "models" / "checkpoints" / path.name)
    return base


@pytest.fixture
async def ray_server(cluster, tmp_path):
    """``start(**options) -> Running``: a server whose queue runs on two Ray workers."""
    from server.host import build_host
    from server.ray_dispatch import RayDispatcher, RayOptions
    from server.remote_worker import HostSpec

    started: list[Running] = []

    async def start(checkpoints: list[Path] = (), worker_base: Path | None = None, **ray_options: Any) -> Running:
        base = make_base(tmp_path / "server", checkpoints)
        spec = HostSpec(base_directory=str(base), cpu=True, preview_method="none")
        host = build_host(spec.namespace())
        worker_spec = spec
        if worker_base is not None:  # workers on "another machine": their own folders
            worker_spec = HostSpec(base_directory=str(make_base(worker_base, checkpoints)), cpu=True,
                                   preview_method="none")
        options = ServerOptions(port=0, web_root=base / "web", preview_interval=0.0)

        def dispatcher(server: LoomServer) -> RayDispatcher:
            return RayDispatcher(queue=server.queue, store=server.store, hub=server.hub,
                                 validate=server._revalidate, folders=server.folders, spec=worker_spec,
                                 options=RayOptions(**ray_options), preview_interval=0.0)

        server = LoomServer(host.registry, options, make_dispatcher=dispatcher)
        await server.start()
        run = Running(server, base, aiohttp.ClientSession(), options)
        started.append(run)
        await wait_for(lambda: all(w.up for w in server.worker.workers), 90, "both workers to start")
        return run

    yield start
    for run in started:
        await run.session.close()
        await run.server.stop()


async def wait_for(predicate, timeout: float, what: str) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not predicate():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.05)


def sleep_prompt(tag: str, seconds: float = 0.3, log: Path | str = "") -> dict[str, Any]:
    return {"1": {"class_type": "WorkerSleep", "inputs": {"seconds": seconds, "tag": tag, "log": str(log)}}}


def txt2img(ckpt: str, seed: int) -> dict[str, Any]:
    return {
        "4": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": ckpt}},
        "6": {"class_type": "CLIPTextEncode", "inputs": {"text": "a red fox", "clip": ["4", 1]}},
        "7": {"class_type": "CLIPTextEncode", "inputs": {"text": "", "clip": ["4", 1]}},
        "5": {"class_type": "EmptyLatentImage", "inputs": {"width": 64, "height": 64, "batch_size": 1}},
        "3": {"class_type": "KSampler", "inputs": {
            "seed": seed, "steps": 2, "cfg": 7.0, "sampler_name": "euler", "scheduler": "normal",
            "denoise": 1.0, "model": ["4", 0], "positive": ["6", 0], "negative": ["7", 0],
            "latent_image": ["5", 0]}},
        "8": {"class_type": "VAEDecode", "inputs": {"samples": ["3", 0], "vae": ["4", 2]}},
        "9": {"class_type": "SaveImage", "inputs": {"filename_prefix": "ray", "images": ["8", 0]}},
    }


async def workers(run: Running) -> list[dict[str, Any]]:
    return (await run.get_json("/system_stats"))["workers"]


async def test_prompts_run_on_both_workers_at_once(ray_server):
    run = await ray_server()
    ids = [await run.queue(sleep_prompt(f"t{n}", seconds=0.6)) for n in range(4)]
    history = [await run.wait_history(pid, timeout=60) for pid in ids]
    pids = {entry["outputs"]["1"]["pid"][0] for entry in history}
    assert len(pids) == 2
    stats = await workers(run)
    assert len(stats) == 2 and sum(w["completed"] for w in stats) == 4
    assert all(w["state"] == "up" and w["host"] and w["device"] == "cpu" for w in stats)


async def test_the_backlog_waits_in_the_queue_not_in_ray(ray_server):
    run = await ray_server(max_in_flight=1)
    ids = [await run.queue(sleep_prompt(f"t{n}", seconds=0.4)) for n in range(6)]
    most_running, most_pending = 0, 0
    while True:
        queue = await run.get_json("/queue")
        most_running = max(most_running, len(queue["queue_running"]))
        most_pending = max(most_pending, len(queue["queue_pending"]))
        in_flight = [w.in_flight for w in run.server.worker.workers]
        assert max(in_flight) <= 1
        if not queue["queue_running"] and not queue["queue_pending"]:
            break
        await asyncio.sleep(0.02)
    assert most_running == 2
    assert most_pending >= 3
    history = await run.get_json("/history")
    assert sorted(history) == sorted(ids)


async def test_a_worker_killed_mid_prompt_is_restarted_and_the_prompt_completes_exactly_once(ray_server, tmp_path):
    run = await ray_server()
    log = tmp_path / "runs.log"
    doomed = await run.queue({"1": {"class_type": "DieOnce", "inputs": {
        "marker": str(tmp_path / "died"), "tag": "doomed", "log": str(log)}}})
    others = [await run.queue(sleep_prompt(f"t{n}", 0.3, log)) for n in range(3)]
    entry = await run.wait_history(doomed, timeout=90)
    for pid in others:
        await run.wait_history(pid, timeout=60)

    assert entry["status"]["status_str"] == "success"
    lines = log.read_text().splitlines()
    assert [line.split()[0] for line in lines if line.split()[1] == "doomed"] == ["start", "start", "done"]
    done = Counter(line.split()[1] for line in lines if line.startswith("done"))
    assert done == {"doomed": 1, "t0": 1, "t1": 1, "t2": 1}
    history = await run.get_json("/history")
    assert sorted(history) == sorted([doomed, *others])
    await wait_for(lambda: all(w.up for w in run.server.worker.workers), 60, "the worker to come back")
    stats = await workers(run)
    assert sorted(w["restarts"] for w in stats) == [0, 1]


async def test_events_of_each_prompt_arrive_in_order(ray_server):
    run = await ray_server()
    listener = await listen(run)
    ids = [await run.queue(sleep_prompt(f"t{n}", 0.3), client_id=listener.client_id) for n in range(2)]
    seen: dict[str, list[dict[str, Any]]] = {pid: [] for pid in ids}
    finished: set[str] = set()
    while finished != set(ids):
        message = await listener.next_json(timeout=60)
        pid = (message.get("data") or {}).get("prompt_id")
        if pid in seen:
            seen[pid].append(message)
            if message["type"] == "executing" and message["data"]["node"] is None:
                finished.add(pid)
    for pid in ids:
        kinds = [m["type"] for m in seen[pid]]
        assert kinds == ["execution_start", "execution_cached", "executing", *["progress"] * 10,
                         "executed", "execution_success", "executing"]
        assert [m["data"]["value"] for m in seen[pid] if m["type"] == "progress"] == list(range(1, 11))
    await listener.ws.close()


async def test_output_files_of_a_worker_in_the_servers_folder_are_served(ray_server):
    run = await ray_server()
    pid = await run.queue({"1": {"class_type": "WriteOutput", "inputs": {"text": "from a worker", "prefix": "ray"}}})
    entry = await run.wait_history(pid, timeout=60)
    file = entry["outputs"]["1"]["files"][0]
    async with await run.get(f"/view?filename={file['filename']}&type=output") as response:
        assert response.status == 200
        assert await response.text() == "from a worker"


async def test_output_files_of_a_worker_with_its_own_folders_come_back_and_are_served(ray_server, tmp_path):
    run = await ray_server(worker_base=tmp_path / "elsewhere")
    pid = await run.queue({"1": {"class_type": "WriteOutput", "inputs": {"text": "shipped", "prefix": "ray"}}})
    entry = await run.wait_history(pid, timeout=60)
    name = entry["outputs"]["1"]["files"][0]["filename"]
    assert (tmp_path / "elsewhere" / "output" / name).exists()
    assert (run.server.folders.output / name).read_text() == "shipped"
    async with await run.get(f"/view?filename={name}&type=output") as response:
        assert await response.text() == "shipped"


async def test_interrupt_reaches_the_worker_running_the_prompt(ray_server):
    run = await ray_server()
    pid = await run.queue(sleep_prompt("long", seconds=20))
    await run.wait_running(pid, timeout=60)
    await wait_for(lambda: any(pid in w.running for w in run.server.worker.workers), 10, "dispatch")
    await asyncio.sleep(0.5)
    async with await run.post("/interrupt", {"prompt_id": pid}) as response:
        assert (await response.json())["interrupted"] is True
    entry = await run.wait_history(pid, timeout=10)
    assert entry["status"]["completed"] is False
    assert any(m[0] == "execution_interrupted" for m in entry["status"]["messages"])


@pytest.mark.slow
async def test_each_checkpoint_stays_on_one_worker_and_is_loaded_once(ray_server, checkpoints):
    run = await ray_server(checkpoints=checkpoints)
    names = [path.name for path in checkpoints]
    for seed in range(6):  # alpha, beta, alpha, beta...: one at a time, so a warm worker is always idle
        pid = await run.queue(txt2img(names[seed % 2], seed))
        entry = await run.wait_history(pid, timeout=120)
        assert entry["status"]["status_str"] == "success", entry["status"]
    stats = sorted(await workers(run), key=lambda w: w["resident_models"])
    assert [w["resident_models"] for w in stats] == [["alpha.safetensors"], ["beta.safetensors"]]
    assert [w["model_loads"] for w in stats] == [1, 1]
    assert [w["completed"] for w in stats] == [3, 3]


@pytest.mark.slow
async def test_free_reaches_every_worker(ray_server, checkpoints):
    run = await ray_server(checkpoints=checkpoints)
    ids = [await run.queue(txt2img(path.name, 1)) for path in checkpoints]
    for pid in ids:
        await run.wait_history(pid, timeout=120)
    assert all(w["resident_models"] for w in await workers(run))
    async with await run.post("/free", {"unload_models": True}) as response:
        assert response.status == 200

    async def all_empty() -> bool:
        return not any(w["resident_models"] for w in await workers(run))

    deadline = asyncio.get_running_loop().time() + 30
    while not await all_empty():
        assert asyncio.get_running_loop().time() < deadline, "models still resident after /free"
        await asyncio.sleep(0.2)
