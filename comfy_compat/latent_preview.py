"""ComfyUI's ``latent_preview``: previews of latents while sampling.

``get_previewer`` gives a :class:`Latent2RGBPreviewer` with the latent format's
linear RGB map (Loom's latent previews use the same numbers), or ``None`` when
previews are off; ``prepare_callback`` returns the per-step callback ComfyUI's
samplers call, reporting progress (and the preview) for the running node.
"""

from __future__ import annotations

from typing import Any, Callable

MAX_PREVIEW_RESOLUTION = 512


def preview_to_image(latent_image: Any) -> Any:
    """``[H, W, 3]`` values in -1..1 → a PIL image."""
    import torch
    from PIL import Image

    pixels = ((latent_image.float() + 1.0) / 2.0).clamp(0, 1).mul(255).round().to(torch.uint8)
    return Image.fromarray(pixels.cpu().numpy())


class LatentPreviewer:
    """Base of previewers: ``decode_latent_to_preview(x0)`` → a PIL image."""

    def decode_latent_to_preview(self, x0: Any) -> Any:
        raise NotImplementedError(f"{type(self).__name__} must define decode_latent_to_preview")

    def decode_latent_to_preview_image(self, preview_format: str, x0: Any) -> tuple[str, Any, int]:
        return preview_format, self.decode_latent_to_preview(x0), MAX_PREVIEW_RESOLUTION


class Latent2RGBPreviewer(LatentPreviewer):
    """Each latent channel's fixed (r, g, b) contribution, summed (a linear map)."""

    def __init__(self, latent_rgb_factors: Any, latent_rgb_factors_bias: Any = None,
                 latent_rgb_factors_reshape: Callable[[Any], Any] | None = None):
        import torch

        self.factors = torch.tensor(latent_rgb_factors, dtype=torch.float32)
        self.bias = torch.tensor(latent_rgb_factors_bias, dtype=torch.float32) \
            if latent_rgb_factors_bias is not None else None
        self.reshape = latent_rgb_factors_reshape

    def decode_latent_to_preview(self, x0: Any) -> Any:
        import torch

        if self.reshape is not None:
            x0 = self.reshape(x0)
        first = x0[0].float().cpu()
        if first.ndim == 4:  # video latents [C, T, H, W]: the first frame
            first = first[:, 0]
        rgb = torch.einsum("chw,cr->hwr", first, self.factors)
        if self.bias is not None:
            rgb = rgb + self.bias
        return preview_to_image(rgb)


def _factors(latent_format: Any) -> tuple[Any, Any]:
    """The RGB map of a ComfyUI latent format or a Loom one."""
    factors = getattr(latent_format, "latent_rgb_factors", None) or getattr(latent_format, "rgb_factors", None)
    bias = getattr(latent_format, "latent_rgb_factors_bias", None) or getattr(latent_format, "rgb_bias", None)
    if factors is None:
        from diffusion.latent_formats import SD15

        factors, bias = SD15.rgb_factors, SD15.rgb_bias
    return factors, bias


def get_previewer(device: Any, latent_format: Any) -> LatentPreviewer | None:
    from comfy.cli_args import LatentPreviewMethod, args

    if args.preview_method == LatentPreviewMethod.NoPreviews:
        return None
    factors, bias = _factors(latent_format)
    return Latent2RGBPreviewer(factors, bias)


def _latent_format_of(model: Any) -> Any:
    inner = getattr(model, "model", None)
    return getattr(inner, "latent_format", None) or getattr(model, "latent_format", None)


def prepare_callback(model: Any, steps: int, x0_output_dict: dict | None = None) -> Callable[..., None]:
    """``callback(step, x0, x, total_steps)`` for a sampler: progress and a
    preview for the running node (and ``x0_output_dict["x0"]``, as ComfyUI keeps)."""
    from comfy.utils import ProgressBar

    previewer = get_previewer(None, _latent_format_of(model))
    bar = ProgressBar(steps)

    def callback(step: int, x0: Any, x: Any, total_steps: int) -> None:
        if x0_output_dict is not None:
            x0_output_dict["x0"] = x0
        preview = previewer.decode_latent_to_preview_image("JPEG", x0) if previewer and x0 is not None else None
        bar.update_absolute(step + 1, total_steps, preview)

    return callback


def __getattr__(name: str) -> Any:
    from loom_compat import placeholders

    return placeholders.attribute(__name__, name)
