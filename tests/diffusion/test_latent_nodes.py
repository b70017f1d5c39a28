"""ComfyUI's latent batch nodes (LatentBatch, RepeatLatentBatch, LatentFromBatch) and its
``.latent`` files (SaveLatent, LoadLatent): names, inputs, outputs and behaviour as ComfyUI's."""

from __future__ import annotations

import json

import pytest
import torch

from tests.diffusion.conftest import run_graph


def _node(name):
    from nodes import builtin_nodes

    return next(d for d in builtin_nodes() if d.class_type == name)


def _latent(b=4, c=4, h=8, w=8, seed=0, **extra):
    return {"samples": torch.randn(b, c, h, w, generator=torch.Generator().manual_seed(seed)), **extra}


def _inputs(name):
    return {i.name: i for i in _node(name).schema().inputs}


# -- schemas ----------------------------------------------------------------------------------


@pytest.mark.parametrize("name,inputs,outputs", [
    ("LatentBatch", ["samples1", "samples2"], ["LATENT"]),
    ("RepeatLatentBatch", ["samples", "amount"], ["LATENT"]),
    ("LatentFromBatch", ["samples", "batch_index", "length"], ["LATENT"]),
    ("VAEEncodeTiled", ["pixels", "vae", "tile_size", "overlap", "temporal_size", "temporal_overlap"], ["LATENT"]),
    ("InpaintModelConditioning", ["positive", "negative", "vae", "pixels", "mask", "noise_mask"],
     ["CONDITIONING", "CONDITIONING", "LATENT"]),
    ("SaveLatent", ["samples", "filename_prefix"], ["LATENT"]),
    ("LoadLatent", ["latent"], ["LATENT"]),
])
def test_new_nodes_have_comfyuis_inputs_and_outputs(name, inputs, outputs):
    schema = _node(name).schema()
    assert [i.name for i in schema.inputs] == inputs
    assert [o.type for o in schema.outputs] == outputs


def test_new_nodes_widget_defaults_are_comfyuis():
    assert (_inputs("RepeatLatentBatch")["amount"].default, _inputs("RepeatLatentBatch")["amount"].max) == (1, 64)
    assert (_inputs("LatentFromBatch")["length"].default, _inputs("LatentFromBatch")["length"].max) == (1, 64)
    tiled = _inputs("VAEEncodeTiled")
    assert (tiled["tile_size"].default, tiled["tile_size"].min, tiled["tile_size"].step) == (512, 64, 64)
    assert (tiled["overlap"].default, tiled["overlap"].step) == (64, 32)
    assert _inputs("InpaintModelConditioning")["noise_mask"].default is True
    assert _inputs("SaveLatent")["filename_prefix"].default == "latents/ComfyUI"
    assert [o.name for o in _node("InpaintModelConditioning").schema().outputs] == ["positive", "negative", "latent"]


# -- LatentFromBatch ----------------------------------------------------------------------------


def test_latent_from_batch_picks_items_and_records_their_batch_slots():
    src = _latent(4)
    out = _node("LatentFromBatch").fn(src, batch_index=1, length=2)
    assert torch.equal(out["samples"], src["samples"][1:3]) and out["batch_index"] == [1, 2]
    assert "batch_index" not in src  # the input LATENT is not changed


def test_latent_from_batch_counts_a_negative_index_from_the_end_and_clamps_the_length():
    src = _latent(4)
    out = _node("LatentFromBatch").fn(src, batch_index=-1, length=5)
    assert torch.equal(out["samples"], src["samples"][3:]) and out["batch_index"] == [3]
    out = _node("LatentFromBatch").fn(src, batch_index=9, length=2)  # past the end: the last item
    assert out["batch_index"] == [3]


def test_latent_from_batch_keeps_existing_batch_indices_and_slices_the_noise_mask():
    masks = torch.arange(2.0).reshape(2, 1, 1, 1).expand(2, 1, 8, 8)
    src = _latent(4, batch_index=[5, 6, 7, 8], noise_mask=masks)
    out = _node("LatentFromBatch").fn(src, batch_index=2, length=2)
    assert out["batch_index"] == [7, 8]
    # a shorter mask batch is tiled over the items first (0, 1, 0, 1), then sliced
    assert out["noise_mask"][:, 0, 0, 0].tolist() == [0.0, 1.0]
    single = _node("LatentFromBatch").fn(_latent(4, noise_mask=torch.ones(1, 1, 8, 8)), batch_index=2, length=1)
    assert single["noise_mask"].shape == (1, 1, 8, 8)


def test_a_latent_picked_from_a_batch_samples_as_it_did_in_the_batch(manager, tiny):
    # its batch_index makes the sampler draw that slot's noise from the seed, as ComfyUI's
    from diffusion.sampling import sample
    from diffusion.text_encoding import encode

    model, clip, _ = manager.load_checkpoint(tiny("sd1").checkpoint)
    kw = dict(seed=3, steps=2, cfg=5.0, sampler_name="euler", scheduler="normal",
              positive=encode(clip, "a"), negative=encode(clip, ""))
    empty = {"samples": torch.zeros(3, 4, 8, 8)}
    batch = sample(model, latent=empty, **kw)["samples"]
    picked = _node("LatentFromBatch").fn(empty, batch_index=2, length=1)
    alone = sample(model, latent=picked, **kw)["samples"]
    # equal up to float rounding (a batch of 3 and a batch of 1 run different kernels)
    assert torch.allclose(alone, batch[2:], atol=1e-5 * float(batch.abs().max()))
    assert not torch.allclose(alone, batch[:1], atol=1e-2 * float(batch.abs().max()))


# -- RepeatLatentBatch ---------------------------------------------------------------------------


def test_repeat_latent_batch_repeats_the_batch_and_extends_batch_indices_past_the_originals():
    src = _latent(2, batch_index=[3, 4])
    out = _node("RepeatLatentBatch").fn(src, amount=3)
    assert torch.equal(out["samples"], src["samples"].repeat(3, 1, 1, 1))
    assert out["batch_index"] == [3, 4, 5, 6, 7, 8]
    assert "batch_index" not in _node("RepeatLatentBatch").fn(_latent(2), amount=2)


def test_repeat_latent_batch_repeats_a_per_item_noise_mask_and_keeps_a_shared_one():
    masks = torch.rand(2, 1, 8, 8)
    out = _node("RepeatLatentBatch").fn(_latent(2, noise_mask=masks), amount=2)
    assert torch.equal(out["noise_mask"], masks.repeat(2, 1, 1, 1))
    shared = torch.rand(1, 1, 8, 8)
    assert _node("RepeatLatentBatch").fn(_latent(2, noise_mask=shared), amount=2)["noise_mask"] is shared


# -- LatentBatch ----------------------------------------------------------------------------------


def test_latent_batch_joins_two_batches_and_their_batch_indices():
    a, b = _latent(2, seed=1), _latent(1, seed=2, batch_index=[7])
    out = _node("LatentBatch").fn(a, b)
    assert torch.equal(out["samples"], torch.cat([a["samples"], b["samples"]]))
    assert out["batch_index"] == [0, 1, 7]


def test_latent_batch_resizes_the_second_latent_to_the_first_bilinearly():
    a, b = _latent(1, h=8, w=8), _latent(1, h=4, w=4, seed=3)
    out = _node("LatentBatch").fn(a, b)
    expected = torch.nn.functional.interpolate(b["samples"], size=(8, 8), mode="bilinear")
    assert out["samples"].shape == (2, 4, 8, 8) and torch.allclose(out["samples"][1:], expected)


def test_latent_batch_of_different_channel_counts_is_a_clear_error():
    with pytest.raises(ValueError, match="4 and 16 channels"):
        _node("LatentBatch").fn(_latent(1), _latent(1, c=16))


# -- SaveLatent / LoadLatent ------------------------------------------------------------------------


def _save_prompt(prefix="latents/test"):
    return {"1": {"class_type": "EmptyLatentImage", "inputs": {"width": 64, "height": 32, "batch_size": 2}},
            "2": {"class_type": "SaveLatent", "inputs": {"samples": ["1", 0], "filename_prefix": prefix}}}


def test_save_latent_writes_comfyuis_latent_file_with_prompt_and_workflow(env):
    from safetensors import safe_open

    from engine.executor import Executor
    from engine.registry import Registry
    from nodes import builtin_nodes

    registry = Registry(env=env)
    registry.add_all(builtin_nodes(), "nodes")
    workflow = {"nodes": [], "links": []}
    outcome = Executor(registry, cache="none").execute(_save_prompt(), prompt_id="save", sink=lambda e: None,
                                                       extra_data={"extra_pnginfo": {"workflow": workflow}})
    assert outcome.status == "success", outcome.error
    record, = outcome.outputs["2"]["latents"]
    assert record == {"filename": "test_00001_.latent", "subfolder": "latents", "type": "output"}
    path = env.folders.output / "latents" / "test_00001_.latent"
    with safe_open(str(path), "pt") as f:
        assert sorted(f.keys()) == ["latent_format_version_0", "latent_tensor"]
        assert f.get_tensor("latent_tensor").shape == (2, 4, 4, 8)
        assert f.get_tensor("latent_format_version_0").numel() == 0
        metadata = f.metadata()
    assert json.loads(metadata["prompt"])["2"]["class_type"] == "SaveLatent"
    assert json.loads(metadata["workflow"]) == workflow
    again = run_graph(env, _save_prompt())
    assert again.outputs["2"]["latents"][0]["filename"] == "test_00002_.latent"  # never overwrites


def test_load_latent_reads_back_what_save_latent_wrote(env):
    from nodes.latent_files import write_latent

    raw = torch.randn(1, 4, 8, 8)
    name = write_latent(env.folders.input, "saved", 1, raw, {"prompt": ""})
    assert name == "saved_00001_.latent"
    assert _node("LoadLatent").schema(env).inputs[0].choices == (name,)  # .latent files in input/
    prompt = {"1": {"class_type": "LoadLatent", "inputs": {"latent": name}},
              "2": {"class_type": "SaveLatent", "inputs": {"samples": ["1", 0], "filename_prefix": "copy"}}}
    outcome = run_graph(env, prompt)
    assert outcome.status == "success", outcome.error
    from nodes.latent_files import read_latent

    assert torch.equal(read_latent(env.folders.output / "copy_00001_.latent")["samples"], raw)


def test_load_latent_rescales_a_file_written_before_the_raw_latent_convention(env):
    from safetensors.torch import save_file

    from nodes.latent_files import read_latent

    scaled = torch.randn(1, 4, 8, 8)
    save_file({"latent_tensor": scaled}, str(env.folders.input / "old.latent"))
    assert torch.allclose(read_latent(env.folders.input / "old.latent")["samples"], scaled / 0.18215)


def test_load_latent_of_a_missing_file_fails_validation_naming_it(env):
    from engine.executor import PromptValidationError

    with pytest.raises(PromptValidationError) as caught:
        run_graph(env, {"1": {"class_type": "LoadLatent", "inputs": {"latent": "nope.latent"}},
                        "2": {"class_type": "SaveLatent", "inputs": {"samples": ["1", 0], "filename_prefix": "x"}}})
    assert "Invalid latent file: nope.latent" in str(caught.value.result.node_errors)


def test_load_latent_of_a_file_that_is_not_a_latent_is_a_clear_error(env):
    from safetensors.torch import save_file

    from nodes.latent_files import read_latent

    (env.folders.input / "junk.latent").write_bytes(b"not safetensors")
    with pytest.raises(ValueError, match="junk.latent.*not a .latent"):
        read_latent(env.folders.input / "junk.latent")
    save_file({"other": torch.zeros(1)}, str(env.folders.input / "other.latent"))
    with pytest.raises(ValueError, match="no 'latent_tensor'"):
        read_latent(env.folders.input / "other.latent")


def test_load_latent_re_runs_when_the_file_changes(env):
    from nodes.latent_files import _latent_digest, write_latent

    write_latent(env.folders.input, "f", 1, torch.zeros(1, 4, 8, 8), {"prompt": ""})
    before = _latent_digest("f_00001_.latent", env)
    (env.folders.input / "f_00001_.latent").unlink()
    write_latent(env.folders.input, "f", 1, torch.ones(1, 4, 8, 8), {"prompt": ""})
    assert _latent_digest("f_00001_.latent", env) != before
