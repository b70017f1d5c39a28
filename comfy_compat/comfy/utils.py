"""ComfyUI's ``comfy.utils``: progress bars, safe weight loading, resizing.

``ProgressBar`` reports through the running node's context (the engine's
``current_context``), so its updates become the same ``progress`` websocket
events Loom's own nodes send, and an interrupt stops the node at its next update.
"""

from __future__ import annotations

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


def save_torch_file(sd: dict, ckpt: str, metadata: dict | None = None) -> None:
    """Weights to a ``.safetensors`` file (tensors made contiguous; metadata as strings)."""
    from safetensors.torch import save_file

    tensors = {key: value.contiguous() for key, value in sd.items()}
    save_file(tensors, str(ckpt), metadata={str(k): str(v) for k, v in (metadata or {}).items()} or None)


def state_dict_prefix_replace(state_dict: dict, replace_prefix: dict, filter_keys: bool = False) -> dict:
    """Keys starting with each ``old`` prefix renamed to start with ``new``; in
    place (ComfyUI's contract) unless ``filter_keys``, which returns only those."""
    out = {} if filter_keys else state_dict
    for old, new in replace_prefix.items():
        for key in [k for k in state_dict if k.startswith(old)]:
            out[new + key[len(old):]] = state_dict.pop(key)
    return out


def state_dict_key_replace(state_dict: dict, keys_to_replace: dict) -> dict:
    for old, new in keys_to_replace.items():
        if old in state_dict:
            state_dict[new] = state_dict.pop(old)
    return state_dict


def repeat_to_batch_size(tensor: Any, batch_size: int, dim: int = 0) -> Any:
    """``tensor`` cut or tiled along ``dim`` to ``batch_size`` entries."""
    size = tensor.shape[dim]
    if size > batch_size:
        return tensor.narrow(dim, 0, batch_size)
    if size < batch_size:
        repeats = [1] * tensor.ndim
        repeats[dim] = -(-batch_size // size)
        return tensor.repeat(repeats).narrow(dim, 0, batch_size)
    return tensor


def resize_to_batch_size(tensor: Any, batch_size: int) -> Any:
    """``tensor`` with ``batch_size`` entries, picking evenly spaced ones (or repeating)."""
    import torch

    size = tensor.shape[0]
    if size == batch_size:
        return tensor
    if batch_size <= 1:
        return tensor[:batch_size]
    index = torch.linspace(0, size - 1, batch_size).round().long()
    return tensor[index]


def bislerp(samples: Any, width: int, height: int) -> Any:
    """Resize ``[B, C, H, W]`` by spherical interpolation between neighbours (latents)."""
    from nodes.latent_resize import bislerp as _bislerp

    return _bislerp(samples, width, height)


def lanczos(samples: Any, width: int, height: int) -> Any:
    """Resize ``[B, C, H, W]`` images in 0..1 with a Lanczos filter."""
    from nodes.imaging import _lanczos

    return _lanczos(samples, width, height)


def get_tiled_scale_steps(width: int, height: int, tile_x: int, tile_y: int, overlap: int) -> int:
    rows = 1 if height <= tile_y else -(-(height - overlap) // (tile_y - overlap))
    cols = 1 if width <= tile_x else -(-(width - overlap) // (tile_x - overlap))
    return rows * cols


def _tile_starts(size: int, tile: int, overlap: int) -> list[int]:
    if size <= tile:
        return [0]
    stride = max(1, tile - overlap)
    starts = list(range(0, size - tile, stride))
    return starts + [size - tile]


def tiled_scale_multidim(samples: Any, function: Any, tile: tuple[int, ...] = (64, 64), overlap: int = 8,
                         upscale_amount: float = 4, out_channels: int = 3, output_device: Any = "cpu",
                         downscale: bool = False, index_formulas: Any = None, pbar: Any = None) -> Any:
    """Run ``function`` over overlapping tiles of ``samples`` ``[B, C, *dims]`` and
    blend the results, each tile feathered over the overlap so seams do not
    show.  Each tile's output is ``upscale_amount`` times its size per dim
    (divided, with ``downscale``); ``index_formulas`` may give per-dim amounts."""
    import itertools

    import torch

    dims = samples.ndim - 2
    tile = tuple(tile) if isinstance(tile, (tuple, list)) else (tile,) * dims
    amounts = index_formulas if index_formulas is not None else upscale_amount
    amounts = list(amounts) if isinstance(amounts, (tuple, list)) else [amounts] * dims

    def scaled(value: float, d: int) -> int:
        return round(value / amounts[d]) if downscale else round(value * amounts[d])

    sizes = samples.shape[2:]
    out = torch.empty((samples.shape[0], out_channels, *(scaled(s, d) for d, s in enumerate(sizes))),
                      device=output_device)
    for b in range(samples.shape[0]):
        piece_in = samples[b:b + 1]
        if all(s <= t for s, t in zip(sizes, tile)):
            out[b:b + 1] = function(piece_in).to(output_device)
            if pbar is not None:
                pbar.update(1)
            continue
        acc = torch.zeros((1, out_channels, *out.shape[2:]), device=output_device)
        weight = torch.zeros((1, 1, *out.shape[2:]), device=output_device)
        starts = [_tile_starts(s, min(t, s), overlap) for s, t in zip(sizes, tile)]
        for origin in itertools.product(*starts):
            region = tuple(slice(o, o + min(t, s)) for o, t, s in zip(origin, tile, sizes))
            result = function(piece_in[(slice(None), slice(None), *region)]).to(output_device)
            mask = torch.ones((1, 1, *result.shape[2:]), device=output_device)
            for d in range(dims):
                fade = scaled(overlap, d)
                length = result.shape[2 + d]
                ramp = torch.ones(length, device=output_device)
                steps = torch.arange(1, fade + 1, dtype=torch.float32, device=output_device) / (fade + 1)
                if origin[d] > 0 and fade:
                    ramp[:fade] = torch.minimum(ramp[:fade], steps[:length])
                if origin[d] + region[d].stop - region[d].start < sizes[d] and fade:
                    ramp[length - fade:] = torch.minimum(ramp[length - fade:], steps.flip(0)[:length])
                shape = [1] * (2 + dims)
                shape[2 + d] = length
                mask = mask * ramp.reshape(shape)
            target = tuple(slice(scaled(o, d), scaled(o, d) + result.shape[2 + d]) for d, o in enumerate(origin))
            acc[(slice(None), slice(None), *target)] += result * mask
            weight[(slice(None), slice(None), *target)] += mask
            if pbar is not None:
                pbar.update(1)
        out[b:b + 1] = acc / weight.clamp_min(1e-8)
    return out


def tiled_scale(samples: Any, function: Any, tile_x: int = 64, tile_y: int = 64, overlap: int = 8,
                upscale_amount: float = 4, out_channels: int = 3, output_device: Any = "cpu", pbar: Any = None) -> Any:
    """:func:`tiled_scale_multidim` over the last two dims (height, width)."""
    return tiled_scale_multidim(samples, function, (tile_y, tile_x), overlap=overlap, upscale_amount=upscale_amount,
                                out_channels=out_channels, output_device=output_device, pbar=pbar)


def set_attr(obj: Any, attr: str, value: Any) -> Any:
    """Set a dotted attribute (``"diffusion_model.out.0.weight"``); returns the old value."""
    *path, last = attr.split(".")
    for name in path:
        obj = getattr(obj, name)
    previous = getattr(obj, last, None)
    setattr(obj, last, value)
    return previous


def get_attr(obj: Any, attr: str) -> Any:
    for name in attr.split("."):
        obj = getattr(obj, name)
    return obj


def set_attr_param(obj: Any, attr: str, value: Any) -> Any:
    import torch

    return set_attr(obj, attr, torch.nn.Parameter(value, requires_grad=False))


def calculate_parameters(sd: dict, prefix: str = "") -> int:
    return sum(v.nelement() for k, v in sd.items() if k.startswith(prefix))


def __getattr__(name: str) -> Any:
    # A name Loom lacks is a placeholder that fails when used, not at import.
    return placeholders.attribute(__name__, name)
