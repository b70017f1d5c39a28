"""Where a step rule's fresh noise comes from, drawn as ComfyUI draws it so a seed gives
ComfyUI's image.

A noise source is called as ``noise(σ, σ_next)`` and returns unit-variance noise shaped
like the latent for the step from σ to σ_next (k-diffusion's ``noise_sampler`` contract).
Two sources, as ComfyUI's k-diffusion samplers use them:

* :class:`SeededGaussian` — independent Gaussian draws from one generator (ComfyUI's
  ``default_noise_sampler``): the ancestral samplers, lcm.  The generator lives on the
  latent's device and is seeded with the sampler's seed, plus 1 on the CPU (ComfyUI's
  choice, so the per-step noise is not the initial noise again).
* :class:`BrownianTreeNoise` — increments of one Brownian path W(σ) over [σ_min, σ_max]
  (k-diffusion's ``BrownianTreeNoiseSampler``): the SDE samplers.  The path is a
  ``torchsde.BrownianTree`` with the seed as its entropy, one tree for the whole batch,
  built on the CPU (or, for ComfyUI's ``_gpu`` sampler names, on the latent's device);
  ``noise(σ, σ_next) = (W(σ_next) − W(σ)) / sqrt|σ_next − σ|``, so the noise of nested
  intervals in one step is correlated as the SDE needs.
"""

from __future__ import annotations

import warnings
from typing import Any, Callable, Sequence

#: noise(σ, σ_next) → unit-variance noise for that step
NoiseSource = Callable[[float, float], Any]

_SEED_MASK = 0xFFFFFFFFFFFFFFFF


class SeededGaussian:
    """Independent Gaussian noise per call, from a generator seeded like ComfyUI's."""

    def __init__(self, like, seed: int):
        self.shape, self.dtype, self.device = like.shape, like.dtype, like.device
        self.generator = step_generator(seed, like.device)

    def __call__(self, sigma: float, sigma_next: float):
        import torch

        return torch.randn(self.shape, dtype=self.dtype, device=self.device, generator=self.generator)


def step_generator(seed: int, device):
    """The generator ComfyUI's samplers draw their per-step noise from: on ``device``,
    seeded with ``seed`` + 1 on the CPU and ``seed`` elsewhere (wrapping at 2⁶⁴, where
    ComfyUI's would overflow)."""
    import torch

    device = torch.device(device)
    offset = 1 if device.type == "cpu" else 0
    return torch.Generator(device=device).manual_seed((int(seed) + offset) & _SEED_MASK)


class BrownianTreeNoise:
    """Normalised increments of one seeded Brownian path over the run's σ range."""

    def __init__(self, like, sigmas: Sequence[float], seed: int, on_cpu: bool = True):
        import torch

        positive = [float(s) for s in sigmas if s > 0]
        self.shape, self.device = like.shape, like.device
        self.tree = None
        if not positive or min(positive) == max(sigmas):
            return  # no interval to draw over: every step's noise is zero
        import torchsde

        w0 = torch.zeros_like(like)
        if on_cpu:
            w0 = w0.cpu()
        # σ as float32, as ComfyUI's sigmas are: the path's values depend on these exact bounds
        t0, t1 = _f32(min(positive)), _f32(max(sigmas))
        self.tree = torchsde.BrownianTree(t0, w0, t1, entropy=int(seed) & _SEED_MASK)

    def __call__(self, sigma: float, sigma_next: float):
        import torch

        a, b = _f32(sigma), _f32(sigma_next)
        if self.tree is None or a == b:
            return torch.zeros(self.shape, dtype=torch.float32, device=self.device)
        low, high = (a, b) if a < b else (b, a)
        with warnings.catch_warnings():
            # torchsde rounds its times to 6 decimals, then warns that a query at the unrounded
            # σ_min lies below the rounded start; it clamps it, which is what is wanted
            warnings.filterwarnings("ignore", message="Should have", category=UserWarning)
            w = self.tree(low, high).to(device=self.device, dtype=torch.float32)  # W(high) − W(low)
        if a > b:  # a step down in σ: W(σ_next) − W(σ)
            w = -w
        return w / (b - a).abs().sqrt().to(self.device)


def _f32(value: float):
    import torch

    return torch.tensor(float(value), dtype=torch.float32)
