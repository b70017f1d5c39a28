"""How each family's latent space relates to pixels: VAE scale and shift, and the latent→RGB
preview map.

LATENT values are ComfyUI's: ``samples`` hold the VAE's *raw* latent (what VAEEncode returns
and VAEDecode takes, with no scaling).  The diffusion model works on ``process_in`` of them
(``(z − shift)·scale``) and the sampler hands back ``process_out`` of its result; this module
is the one place those two maps live, so a new family only adds a :class:`LatentFormat`.
Live previews (latent2rgb) read the sampler's prediction in the model's space, as ComfyUI's
``Latent2RGBPreviewer`` does, so ``rgb_factors`` apply to model-space values.
"""

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
    #: Subtracted before scaling (SD3, Flux); 0 for the SD families.
    shift_factor: float = 0.0

    def process_in(self, latent):
        """Raw VAE latent → the diffusion model's space (ComfyUI's process_in)."""
        return (latent - self.shift_factor) * self.scale_factor

    def process_out(self, latent):
        """The diffusion model's space → raw VAE latent (ComfyUI's process_out)."""
        return latent / self.scale_factor + self.shift_factor

    def sampler_input(self, latent):
        """What a sampler starts from: ``process_in`` of the LATENT's samples, except that an
        all-zero latent (EmptyLatentImage) stays zero — ComfyUI does not shift the empty
        latent (``torch.count_nonzero(latent_image) > 0`` in ``CFGGuider.inner_sample``)."""
        import torch

        if int(torch.count_nonzero(latent)) == 0:
            return latent
        return self.process_in(latent)


SD15 = LatentFormat(
    "sd15", 4, 0.18215,
    ((0.3512, 0.2297, 0.3227), (0.3250, 0.4974, 0.2350), (-0.2829, 0.1762, 0.2721), (-0.2120, -0.2616, -0.7177)),
)
SDXL = LatentFormat(
    "sdxl", 4, 0.13025,
    ((0.3651, 0.4232, 0.4341), (-0.2533, -0.0042, 0.1068), (0.1076, 0.1111, -0.0362), (-0.3165, -0.2492, -0.2188)),
    (0.1084, -0.0175, -0.0011),
)

#: FLUX.1's 16-channel VAE (ae.safetensors)
FLUX = LatentFormat(
    "flux", 16, 0.3611,
    ((-0.0346, 0.0244, 0.0681), (0.0034, 0.0210, 0.0687), (0.0275, -0.0668, -0.0433), (-0.0174, 0.0160, 0.0617),
     (0.0859, 0.0721, 0.0329), (0.0004, 0.0383, 0.0115), (0.0405, 0.0861, 0.0915), (-0.0236, -0.0185, -0.0259),
     (-0.0245, 0.0250, 0.1180), (0.1008, 0.0755, -0.0421), (-0.0515, 0.0201, 0.0011), (0.0428, -0.0012, -0.0036),
     (0.0817, 0.0765, 0.0749), (-0.1264, -0.0522, -0.1103), (-0.0280, -0.0881, -0.0499), (-0.1262, -0.0982, -0.0778)),
    (-0.0329, -0.0718, -0.0851), shift_factor=0.1159,
)
#: SD3 / SD3.5's 16-channel VAE
SD3 = LatentFormat(
    "sd3", 16, 1.5305,
    ((-0.0922, -0.0175, 0.0749), (0.0311, 0.0633, 0.0954), (0.1994, 0.0927, 0.0458), (0.0856, 0.0339, 0.0902),
     (0.0587, 0.0272, -0.0496), (-0.0006, 0.1104, 0.0309), (0.0978, 0.0306, 0.0427), (-0.0042, 0.1038, 0.1358),
     (-0.0194, 0.0020, 0.0669), (-0.0488, 0.0130, -0.0268), (0.0922, 0.0988, 0.0951), (-0.0278, 0.0524, -0.0542),
     (0.0332, 0.0456, 0.0895), (-0.0069, -0.0030, -0.0810), (-0.0596, -0.0465, -0.0293), (-0.1448, -0.1463, -0.1189)),
    (0.2394, 0.2135, 0.1925), shift_factor=0.0609,
)


def for_family(family: str) -> LatentFormat:
    return {"sdxl": SDXL, "flux": FLUX, "sd3": SD3}.get(family, SD15)
