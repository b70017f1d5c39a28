"""ComfyUI's ``comfy.utils``: progress bars, safe weight loading, resizing.

``ProgressBar`` reports through the running node's context (the engine's
``current_context``), so its updates become the same ``progress`` websocket
events Loom's own nodes send, and an interrupt stops the node at its next update.
"""

from __future__ import annotations

import sys
from typing import Any

from loom_compat import placeholders

from engine.node import NodeContext, Preview, current_context

#: ComfyUI lets users turn bars off; Loom always reports progress.
PROGRESS_BAR_ENABLED = True


def _preview(preview: Any) -> Preview | None:
    """ComfyUI previews are ``(format, PIL image, max_size)`` tuples."""
    if preview is None or isinstance(preview, Preview):
        return preview
    if isinstance(preview, tuple) and len(preview) >= 2:
        import io

        image_format, image = str(preview[0]).upper(), preview[1]
        max_size = preview[2] if len(preview) > 2 else None
        if max_size and hasattr(image, "thumbnail"):
            image = image.copy()
            image.thumbnail((max_size, max_size))
        buffer = io.BytesIO()
        image.save(buffer, format="PNG" if image_format == "PNG" else "JPEG", quality=95)
        return Preview("PNG" if image_format == "PNG" else "JPEG", buffer.getvalue())
    return None


class ProgressBar:
    """``ProgressBar(total)`` then ``update(1)`` per step (or ``update_absolute``)."""

    def __init__(self, total: int, node_id: str | None = None):
        self.total = total
        self.current = 0
        # Bound at creation: a bar made in a node reports for that node even
        # from a helper thread the pack starts.
        self._ctx: NodeContext | None = current_context.get()
        self.node_id = node_id if node_id is not None else (self._ctx.node_id if self._ctx else None)

    def update_absolute(self, value: float, total: float | None = None, preview: Any = None) -> None:
        if total is not None:
            self.total = total
        self.current = min(value, self.total) if self.total else value
        ctx = self._ctx or current_context.get()
        if ctx is None:
            return  # outside a running prompt (a pack's own test): nothing to report to
        ctx.check_interrupted()
        ctx.report_progress(str(self.node_id or ctx.node_id), self.current, self.total, _preview(preview))

    def update(self, value: float) -> None:
        self.update_absolute(self.current + value)


def load_torch_file(ckpt: str, safe_load: bool = True, device: Any = None, return_metadata: bool = False) -> Any:
    """Weights from a file without running pickled code: safetensors, or
    ``torch.load(weights_only=True)`` (``safe_load=False`` is not honoured)."""
    import torch

    device = device if device is not None else torch.device("cpu")
    metadata = None
    if str(ckpt).lower().endswith((".safetensors", ".sft")):
        from safetensors import safe_open

        with safe_open(str(ckpt), framework="pt", device=str(device)) as handle:
            state = {key: handle.get_tensor(key) for key in handle.keys()}
            metadata = handle.metadata()
    else:
        loaded = torch.load(str(ckpt), map_location=device, weights_only=True)
        state = loaded.get("state_dict", loaded) if isinstance(loaded, dict) and "state_dict" in loaded else loaded
    return (state, metadata) if return_metadata else state


def common_upscale(samples: Any, width: int, height: int, upscale_method: str, crop: str) -> Any:
    """Resize a ``[B, C, H, W]`` tensor (ComfyUI's channel-first helper);
    ``crop="center"`` keeps the aspect ratio by cropping first.  Loom's own
    resizers do the work: latents (bislerp included) and, for lanczos, images."""
    from nodes.imaging import resize
    from nodes.latent_resize import resize_latent

    if upscale_method == "lanczos":
        return resize(samples.movedim(1, -1), width, height, "lanczos", crop).movedim(-1, 1)
    method = "nearest-exact" if upscale_method == "nearest" else upscale_method
    return resize_latent(samples, width, height, method, crop)


def __getattr__(name: str) -> Any:
    # A name Loom lacks is a placeholder that fails when used, not at import.
    return placeholders.attribute(__name__, name)
