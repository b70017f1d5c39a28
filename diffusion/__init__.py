"""Loom's model runtime: Stable Diffusion checkpoints, text encoding, sampling, VAE.

Importing this package is cheap; torch, diffusers and transformers are imported by
the submodules that need them, so ``nodes`` can reference ``diffusion`` lazily.
"""
