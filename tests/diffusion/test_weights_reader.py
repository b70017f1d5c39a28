"""The fast path of the safetensors reader (one mapped block per component, a prefetch
thread ahead of the reader) gives exactly the tensors of the plain path.

Real checkpoints take that path (components over 64 MiB); the tiny test models are far
smaller, so the thresholds are lowered here to send them through it."""

from __future__ import annotations

import threading

import pytest
import torch

import diffusion.weights_file as weights_file
from tests.fixtures.tiny_extras import resave


@pytest.fixture
def fast_path(monkeypatch):
    monkeypatch.setattr(weights_file._Arena, "MINIMUM", 1)
    monkeypatch.setattr(weights_file._Prefetch, "MINIMUM", 1)
    monkeypatch.setattr(weights_file._Prefetch, "WINDOW", 64 * 1024)
    monkeypatch.setattr(weights_file._Prefetch, "AHEAD", 256 * 1024)


@pytest.mark.parametrize("stored", [torch.float16, torch.bfloat16, torch.float8_e4m3fn, torch.float32])
def test_the_mapped_block_path_reads_every_tensor_like_the_plain_path(stored, tiny, tmp_path, fast_path):
    from safetensors.torch import load_file

    path = resave(tiny("sd1").checkpoint, tmp_path / "small.safetensors", stored)
    reference = {k: v.float() if v.is_floating_point() else v for k, v in load_file(str(path)).items()}
    ours = weights_file.load_state_dict(path, torch.float32)
    assert set(ours) == set(reference)
    assert all(ours[k].dtype == reference[k].dtype and torch.equal(ours[k], reference[k]) for k in reference)
    storages = {t.untyped_storage().data_ptr() for t in ours.values() if t.is_floating_point() and t.numel()}
    assert len(storages) == 1  # one block, not a buffer per tensor


def test_a_checkpoint_loaded_through_the_fast_path_equals_the_plain_load(tiny, tmp_path, fast_path, monkeypatch):
    from diffusion.memory import ModelManager

    path = resave(tiny("sd1").checkpoint, tmp_path / "small.safetensors", torch.float16)
    fast = ModelManager(device="cpu").load_checkpoint(path)
    monkeypatch.setattr(weights_file._Arena, "MINIMUM", 1 << 62)
    monkeypatch.setattr(weights_file._Prefetch, "MINIMUM", 1 << 62)
    plain = ModelManager(device="cpu").load_checkpoint(path)
    for a, b in ((fast[0].unet, plain[0].unet), (fast[2].vae, plain[2].vae),
                 (fast[1].encoders[0].model, plain[1].encoders[0].model)):
        sa, sb = a.state_dict(), b.state_dict()
        assert all(sa[k].dtype == torch.float32 or not sa[k].is_floating_point() for k in sa)
        assert all(torch.equal(sa[k], sb[k]) for k in sb)
    for thread in [t for t in threading.enumerate() if t.name.startswith("prefetch")]:
        thread.join(5)  # the prefetch threads end with their reads
        assert not thread.is_alive()
