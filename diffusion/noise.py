"""Initial noise, drawn on the CPU from the seed so a seed means the same image on any device."""

from __future__ import annotations


def prepare_noise(latent, seed: int, batch_index=None):
    """Gaussian noise shaped like ``latent`` ([B, C, h, w]); every batch item distinct.

    As ComfyUI: ``torch.manual_seed(seed)`` then one ``torch.randn`` of the latent
    shape.  With ``batch_index`` (a latent picked out of a larger batch) the noise
    of those indices in the larger batch is used, so picking an image reproduces it.
    """
    import torch

    generator = torch.manual_seed(int(seed) & 0xFFFFFFFFFFFFFFFF)
    if not batch_index:
        return torch.randn(latent.shape, dtype=torch.float32, generator=generator, device="cpu")
    indices = list(batch_index)
    noises = []
    for i in range(max(indices) + 1):
        n = torch.randn((1, *latent.shape[1:]), dtype=torch.float32, generator=generator, device="cpu")
        if i in indices:
            noises.append(n)
    return torch.cat([noises[sorted(set(indices)).index(i)] for i in indices], dim=0)
