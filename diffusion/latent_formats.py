"""How each family's latent space relates to pixels: VAE scale and the latent→RGB preview map."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class LatentFormat:
    name: str
    channels: int
    scale_factor: float
    #: Per latent channel, its (r, g, b) contribution — the well-known linear fits
    #: used for cheap previews (the same numbers ComfyUI and A1111 use).
    rgb_factors: tuple[tuple[float, float, float], ...]
    rgb_bias: tuple[float, float, float] = (0.0, 0.0, 0.0)


SD15 = LatentFormat(
    "sd15", 4, 0.18215,
    ((0.3512, 0.2297, 0.3227), (0.3250, 0.4974, 0.2350), (-0.2829, 0.1762, 0.2721), (-0.2120, -0.2616, -0.7177)),
)
SDXL = LatentFormat(
    "sdxl", 4, 0.13025,
    ((0.3651, 0.4232, 0.4341), (-0.2533, -0.0042, 0.1068), (0.1076, 0.1111, -0.0362), (-0.3165, -0.2492, -0.2188)),
    (0.1084, -0.0175, -0.0011),
)


def for_family(family: str) -> LatentFormat:
    return SDXL if family == "sdxl" else SD15
