"""ComfyUI's ``comfy.model_management`` over Loom's memory manager and the
running prompt's interrupt flag.

Devices and memory come from the host's model manager (``env.models``, created
on first use by ``diffusion.memory``); interrupts go to the flag of the prompt
that is running, reached through the engine's ``current_context`` (or the
server's worker when no node is running in this thread).
"""

from __future__ import annotations

import enum
from typing import Any, Iterable

from engine.node import Interrupted, current_context
from loom_compat import placeholders
from loom_compat.binding import active


class InterruptProcessingException(Interrupted):
    """Raised in a node to stop the prompt; the engine reports ``execution_interrupted``."""


# -- interrupt --------------------------------------------------------------------------


def _flag() -> Any:
    """The interrupt flag of the running prompt (an ``engine.interrupt.InterruptFlag``)."""
    ctx = current_context.get()
    if ctx is not None and ctx.interrupt is not None:
        return ctx.interrupt
    server = active().server
    worker = getattr(server, "worker", None)
    return getattr(worker, "interrupt", None)


def interrupt_current_processing(value: bool = True) -> None:
    flag = _flag()
    if flag is not None:
        flag.set() if value else flag.clear()


def processing_interrupted() -> bool:
    ctx = current_context.get()
    if ctx is not None:
        return bool(ctx.is_interrupted())
    flag = _flag()
    return bool(flag is not None and flag.is_set())


def throw_exception_if_processing_interrupted() -> None:
    if processing_interrupted():
        raise InterruptProcessingException()


# -- devices ----------------------------------------------------------------------------


def _manager() -> Any:
    return active().env.models


def get_torch_device() -> Any:
    return _manager().device


def intermediate_device() -> Any:
    """Where node outputs (images, latents between nodes) live: the CPU, as in ComfyUI."""
    import torch

    return torch.device("cpu")


def unet_offload_device() -> Any:
    import torch

    return torch.device("cpu")


text_encoder_offload_device = unet_offload_device
vae_offload_device = unet_offload_device


def vae_device() -> Any:
    return get_torch_device()


def text_encoder_device() -> Any:
    return get_torch_device()


def unet_dtype(*args: Any, **kwargs: Any) -> Any:
    return _manager().unet_dtype


def vae_dtype(*args: Any, **kwargs: Any) -> Any:
    return _manager().vae_dtype


def cpu_mode() -> bool:
    return get_torch_device().type == "cpu"


def is_device_mps(device: Any) -> bool:
    return getattr(device, "type", None) == "mps"


def get_total_memory(dev: Any = None, torch_total_too: bool = False) -> Any:
    import psutil
    import torch

    dev = dev or get_torch_device()
    total = torch.cuda.mem_get_info(dev)[1] if dev.type == "cuda" else psutil.virtual_memory().total
    return (total, total) if torch_total_too else total


def get_free_memory(dev: Any = None, torch_free_too: bool = False) -> Any:
    import psutil
    import torch

    dev = dev or get_torch_device()
    free = torch.cuda.mem_get_info(dev)[0] if dev.type == "cuda" else psutil.virtual_memory().available
    return (free, free) if torch_free_too else free


# -- memory -----------------------------------------------------------------------------


def soft_empty_cache(force: bool = False) -> None:
    """Return cached device memory, keeping models loaded."""
    env = active().env
    if getattr(env, "models_loaded", True):
        _manager().free(unload_models=False, free_memory=True)


def free_memory(memory_required: float = 0, device: Any = None, keep_loaded: Iterable[Any] = ()) -> None:
    """Make room: Loom's manager drops its cached models (it reloads on next use)."""
    _manager().free(unload_models=True, free_memory=True)


def unload_all_models() -> None:
    free_memory()


def _module_of(model: Any) -> Any:
    for attr in ("unet", "vae", "model"):
        inner = getattr(model, attr, None)
        if inner is not None and hasattr(inner, "parameters"):
            return inner
    return model if hasattr(model, "parameters") else None


def load_models_gpu(models: Iterable[Any], memory_required: float = 0, force_patch_weights: bool = False,
                    minimum_memory_required: Any = None, force_full_load: bool = False) -> None:
    """Put the models on the compute device through the manager (which evicts others)."""
    manager = _manager()
    for model in models:
        module = _module_of(model)
        if module is not None:
            manager.use(module)


# -- what packs ask about the device and its capabilities --------------------------------------


class VRAMState(enum.Enum):
    DISABLED = 0
    NO_VRAM = 1
    LOW_VRAM = 2
    NORMAL_VRAM = 3
    HIGH_VRAM = 4
    SHARED = 5


class CPUState(enum.Enum):
    GPU = 0
    CPU = 1
    MPS = 2


DISABLE_SMART_MEMORY = False
XFORMERS_IS_AVAILABLE = False
XFORMERS_ENABLED_VAE = False
ENABLE_PYTORCH_ATTENTION = True
directml_enabled = False


def _device_type() -> str:
    return str(getattr(get_torch_device(), "type", "cpu"))


def get_torch_device_name(device: Any) -> str:
    """A readable name for ``device`` (what ComfyUI logs and packs show)."""
    import torch

    device = torch.device(device) if not isinstance(device, torch.device) else device
    if device.type == "cuda":
        index = device.index if device.index is not None else torch.cuda.current_device()
        return f"{device} {torch.cuda.get_device_name(index)}"
    return str(device.type)


def is_device_type(device: Any, kind: str) -> bool:
    return getattr(device, "type", None) == kind


def is_device_cpu(device: Any) -> bool:
    return is_device_type(device, "cpu")


def is_device_cuda(device: Any) -> bool:
    return is_device_type(device, "cuda")


def is_nvidia() -> bool:
    import torch

    return _device_type() == "cuda" and torch.version.cuda is not None


def is_amd() -> bool:
    import torch

    return _device_type() == "cuda" and getattr(torch.version, "hip", None) is not None


def is_intel_xpu() -> bool:
    return _device_type() == "xpu"


def mps_mode() -> bool:
    return _device_type() == "mps"


def xformers_enabled() -> bool:
    return False


def xformers_enabled_vae() -> bool:
    return False


def pytorch_attention_enabled() -> bool:
    return True


def pytorch_attention_flash_attention() -> bool:
    return _device_type() == "cuda"


def sage_attention_enabled() -> bool:
    return False


def flash_attention_enabled() -> bool:
    return False


def should_use_fp16(device: Any = None, model_params: int = 0, prioritize_performance: bool = True,
                    manual_cast: bool = False) -> bool:
    import torch

    return str(_manager().unet_dtype) == str(torch.float16)


def should_use_bf16(device: Any = None, model_params: int = 0, prioritize_performance: bool = True,
                    manual_cast: bool = False) -> bool:
    import torch

    return str(_manager().unet_dtype) == str(torch.bfloat16)


def text_encoder_dtype(device: Any = None) -> Any:
    return unet_dtype()


def get_autocast_device(dev: Any) -> str:
    return str(getattr(dev, "type", "cuda"))


def device_supports_non_blocking(device: Any) -> bool:
    return is_device_cuda(device)


def cast_to_device(tensor: Any, device: Any, dtype: Any, copy: bool = False) -> Any:
    return tensor.to(device=device, dtype=dtype, copy=copy)


def module_size(module: Any) -> int:
    return sum(t.nelement() * t.element_size() for t in module.state_dict().values())


def maximum_vram_for_weights(device: Any = None) -> int:
    return int(get_total_memory(device) * 0.88)


def unload_model_clones(model: Any, unload_weights_only: bool = True, force_unload: bool = True) -> None:
    """Loom's patches never copy a model, so there are no clones to unload."""


def cleanup_models(*args: Any, **kwargs: Any) -> None:
    """Loom's manager drops unused models itself."""


def _vram_state() -> VRAMState:
    return VRAMState.DISABLED if cpu_mode() else VRAMState.NORMAL_VRAM


def _cpu_state() -> CPUState:
    kind = _device_type()
    return CPUState.CPU if kind == "cpu" else CPUState.MPS if kind == "mps" else CPUState.GPU


#: Live module attributes (the host's device decides them).
def _oom() -> type:
    import torch

    return torch.cuda.OutOfMemoryError


_LIVE = {"OOM_EXCEPTION": _oom, "vram_state": _vram_state, "cpu_state": _cpu_state, "set_vram_to": _vram_state,
         "current_loaded_models": lambda: []}


def __getattr__(name: str) -> Any:
    if name in _LIVE:
        return _LIVE[name]()
    # A name Loom lacks is a placeholder that fails when used, not at import.
    return placeholders.attribute(__name__, name)
