"""``ComfyAPI`` / ``ComfyAPISync``: the object packs call back into ComfyUI with.

ComfyUI 0.3.x exposes ``ComfyAPI().execution.set_progress(value, max_value,
node_id=None, preview_image=None, ignore_size_limit=False)`` (async) and a
``ComfyAPISync`` twin whose methods block.  Here they report through the
running node's context, as the node's own progress does.
"""

from __future__ import annotations

import enum
import inspect
from typing import Any


def _preview_of(image: Any, ignore_size_limit: bool) -> Any:
    """A PIL image or an ``IMAGE`` tensor ([B, H, W, C] or [H, W, C], 0..1) as
    a ComfyUI preview tuple; None stays None."""
    if image is None:
        return None
    if isinstance(image, tuple):
        return image  # already ("JPEG", PIL image, max size)
    if not hasattr(image, "save"):  # a tensor
        import numpy as np
        from PIL import Image

        tensor = image[0] if len(image.shape) == 4 else image
        array = (tensor.detach().cpu().float().clamp(0, 1).numpy() * 255).astype(np.uint8)
        image = Image.fromarray(array)
    return (image.format or "JPEG", image, None if ignore_size_limit else 512)


class ComfyAPI_latest:
    VERSION = "latest"
    STABLE = False

    def __init__(self) -> None:
        self.execution = self.Execution()

    class Execution:
        async def set_progress(self, value: float, max_value: float, node_id: str | None = None,
                               preview_image: Any = None, ignore_size_limit: bool = False) -> None:
            """Update the running node's progress bar (and live preview)."""
            from comfy.utils import _preview
            from engine.node import current_context

            ctx = current_context.get()
            if node_id is None and ctx is not None:
                node_id = ctx.node_id
            if node_id is None:
                raise ValueError("node_id must be provided if not in executing context")
            if ctx is None:
                return  # outside a running prompt: nothing to report to
            ctx.check_interrupted()
            ctx.report_progress(str(node_id), value, max_value, _preview(_preview_of(preview_image, ignore_size_limit)))


class _SyncProxy:
    """An API member whose coroutine methods run to completion when called."""

    def __init__(self, inner: Any):
        self._inner = inner

    def __getattr__(self, name: str) -> Any:
        value = getattr(self._inner, name)
        if inspect.iscoroutinefunction(value):
            def call(*args: Any, **kwargs: Any) -> Any:
                from engine.awaiting import resolve

                return resolve(value(*args, **kwargs))

            call.__name__ = name
            call.__doc__ = value.__doc__
            return call
        if isinstance(value, type) or callable(value) or not hasattr(value, "__dict__"):
            return value
        return _SyncProxy(value)


def create_sync_class(async_class: type) -> type:
    """ComfyUI's ``async_to_sync.create_sync_class``: the same members, blocking."""

    def __init__(self: Any) -> None:
        inner = async_class()
        for name, member in vars(inner).items():
            setattr(self, name, _SyncProxy(member))

    return type(async_class.__name__ + "Sync", (), {
        "__init__": __init__, "VERSION": async_class.VERSION, "STABLE": async_class.STABLE,
        "__doc__": f"Blocking twin of {async_class.__name__}.",
    })


class _Lazy(type):
    """Class attributes resolved on first use, so importing the API does not
    import torch (the IMAGE/MASK input types are torch tensors)."""

    def __getattr__(cls, name: str) -> Any:
        resolver = cls.__dict__.get("_lazy", {}).get(name)
        if resolver is None:
            raise AttributeError(f"{cls.__name__}.{name} is not provided by Loom")
        value = resolver()
        setattr(cls, name, value)
        return value


def _tensor() -> type:
    import torch

    return torch.Tensor


class Input(metaclass=_Lazy):
    """Type aliases of the values nodes receive (ComfyUI's ``comfy_api.latest.Input``)."""

    Audio = dict  # {"waveform": tensor [B, C, T], "sample_rate": int}
    Latent = dict  # {"samples": tensor [B, C, H, W], ...}
    _lazy = {"Image": _tensor, "Mask": _tensor}


class _Unsupported:
    def __init__(self, *args: Any, **kwargs: Any):
        raise NotImplementedError(f"{type(self).__name__}: video input is not supported by Loom")


class VideoInput(_Unsupported):
    pass


class InputImpl:
    class VideoFromFile(_Unsupported):
        pass

    class VideoFromComponents(_Unsupported):
        pass


class VideoCodec(str, enum.Enum):
    AUTO = "auto"
    H264 = "h264"


class VideoContainer(str, enum.Enum):
    AUTO = "auto"
    MP4 = "mp4"


class Types:
    VideoCodec = VideoCodec
    VideoContainer = VideoContainer


Input.Video = VideoInput
