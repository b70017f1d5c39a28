"""Running a transformer larger than the GPU's free memory: blocks streamed from the CPU.

A 12B FLUX.1 transformer is 24 GB in bf16 (12 GB in fp8).  When it does not fit in the
memory the compute device has free, Loom keeps it partly on the CPU and streams the rest
block by block.  The policy (:func:`plan_offload`):

1. everything that is not a transformer block (embedders, final norm and projection —
   small) stays on the device;
2. room is kept for one streamed block in flight: the largest block;
3. the blocks that fit in what is left, taken in order (one too large is skipped, a later
   smaller one may still fit), stay resident on the device;
4. every other block lives on the CPU and is moved to the device just before its forward
   and back just after it, so at most one streamed block is on the device at a time.

Fewer resident blocks cost one host→device copy per streamed block per model call; the plan
keeps as many resident as the budget allows.  If not even one block fits beside the rest,
loading fails with an error saying how much memory is needed.  On the CPU nothing moves.

The budget is the device's free memory (plus what the model already holds there) less a
reserve for activations (:data:`ACTIVATION_RESERVE` of the total, at least 1 GiB).
:func:`stream_blocks` installs the hooks; tests drive it with a fake budget and a recording
mover, so the logic is checked without a GPU.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Sequence

from .errors import ModelLoadError

#: Fraction of device memory kept free for activations while sampling.
ACTIVATION_RESERVE = 0.15
MIN_RESERVE = 1 << 30
BLOCK_CONTAINERS = ("transformer_blocks", "single_transformer_blocks")


@dataclass(frozen=True)
class OffloadPlan:
    resident: tuple[str, ...]       # blocks kept on the device
    streamed: tuple[str, ...]       # blocks moved in for their forward only
    peak_bytes: int                 # weights on the device at the worst moment

    @property
    def offloads(self) -> bool:
        return bool(self.streamed)


def plan_offload(base_bytes: int, blocks: Sequence[tuple[str, int]], budget: int) -> OffloadPlan:
    """Which blocks stay on the device for a weight ``budget`` (bytes); see the module doc."""
    total = base_bytes + sum(size for _, size in blocks)
    if total <= budget:
        return OffloadPlan(tuple(name for name, _ in blocks), (), total)
    slot = max((size for _, size in blocks), default=0)
    room = budget - base_bytes - slot
    if room < 0:
        raise ModelLoadError(f"the model needs at least {(base_bytes + slot) / 2**30:.2f} GiB of device memory "
                             f"to run with its blocks streamed from the CPU; {max(budget, 0) / 2**30:.2f} GiB is free")
    resident, used = [], 0
    for name, size in blocks:
        if used + size <= room:
            resident.append(name)
            used += size
    streamed = tuple(name for name, _ in blocks if name not in resident)
    return OffloadPlan(tuple(resident), streamed, base_bytes + used + slot)


def _bytes(module) -> int:
    return sum(t.numel() * t.element_size() for t in (*module.parameters(), *module.buffers()))


def transformer_blocks(module) -> tuple[int, list[tuple[str, int]]]:
    """(bytes outside the blocks, [(block name, bytes)] in order) of a transformer."""
    blocks = []
    for container in BLOCK_CONTAINERS:
        for index, block in enumerate(getattr(module, container, ())):
            blocks.append((f"{container}.{index}", _bytes(block)))
    return _bytes(module) - sum(size for _, size in blocks), blocks


def _to(module, device) -> None:
    module.to(device)


@dataclass
class Streaming:
    """The hooks of a streamed transformer (``remove()`` puts everything back on one device)."""

    plan: OffloadPlan
    handles: list


def stream_blocks(module, device, plan: OffloadPlan, move: Callable[[Any, Any], None] = _to,
                  offload_device="cpu") -> Streaming:
    """Place ``module`` per ``plan`` on ``device``: non-block parts and resident blocks moved
    there, streamed blocks left on ``offload_device`` and moved in/out around their forward."""
    streamed = set(plan.streamed)
    for name, child in module.named_children():
        if name in BLOCK_CONTAINERS:
            for index, block in enumerate(child):
                if f"{name}.{index}" not in streamed:
                    move(block, device)
        else:
            move(child, device)
    handles = []
    for name in plan.streamed:
        block = module.get_submodule(name)
        move(block, offload_device)
        handles.append(block.register_forward_pre_hook(lambda m, args: move(m, device)))
        handles.append(block.register_forward_hook(lambda m, args, out: move(m, offload_device)))
    return Streaming(plan, handles)


def device_budget(device, held_bytes: int = 0) -> int:
    """Free memory on a CUDA ``device`` for weights: free + what the model holds there, less the reserve."""
    import torch

    free, total = torch.cuda.mem_get_info(device)
    return free + held_bytes - max(int(total * ACTIVATION_RESERVE), MIN_RESERVE)


def place_for_sampling(model):
    """The transformer of a flow MODEL on the compute device — whole when it fits, else with
    its blocks streamed from the CPU (once per module; later calls reuse the placement)."""
    from .lora import shared_module

    manager = model.manager
    if manager.device.type != "cuda":
        return manager.use(model.unet)
    shared = shared_module(model.unet)
    streaming = getattr(shared, "_loom_streaming", None)
    if streaming is not None:
        if shared.x_embedder.weight.device.type == "cuda":
            return model.unet
        for handle in streaming.handles:  # the manager moved it out to make room: place it again
            handle.remove()
        shared._loom_streaming = None
    size = _bytes(shared)
    held = sum(p.numel() * p.element_size() for p in shared.parameters() if p.device.type == "cuda")
    budget = device_budget(manager.device, held)
    if size <= budget:
        return manager.use(model.unet)
    base, blocks = transformer_blocks(shared)
    plan = plan_offload(base, blocks, budget)
    shared._loom_streaming = stream_blocks(shared, manager.device, plan)
    return model.unet
