"""Checkpoint detection: each architecture is named; bad files give clear errors."""

from __future__ import annotations

import pytest
import torch
from safetensors.torch import save_file

from diffusion.errors import ModelLoadError
from diffusion.loading import WeightSource, read_architecture
from tests.diffusion.conftest import run_graph, txt2img_prompt


@pytest.mark.parametrize("kind,name,family", [
    ("sd1", "SD1.x", "sd1"),
    ("sd2_v", "SD2.x (v-prediction)", "sd2"),
    ("sdxl", "SDXL base", "sdxl"),
    ("sd1_inpaint", "SD1.x inpainting", "sd1"),
])
def test_each_architecture_is_detected_and_named(tiny, kind, name, family):
    arch = read_architecture(WeightSource(tiny(kind).checkpoint))
    assert (arch.name, arch.family) == (name, family)


def test_sd2_v_prediction_is_detected_from_the_norm_bias_spread(tiny):
    assert read_architecture(WeightSource(tiny("sd2_v").checkpoint)).prediction_type == "v_prediction"


def test_sd1_is_epsilon_prediction(tiny):
    assert read_architecture(WeightSource(tiny("sd1").checkpoint)).prediction_type == "epsilon"


def test_inpainting_checkpoint_has_nine_input_channels(tiny):
    arch = read_architecture(WeightSource(tiny("sd1_inpaint").checkpoint))
    assert arch.inpainting and arch.in_channels == 9


def test_truncated_file_is_reported_as_truncated(tiny, tmp_path):
    data = tiny("sd1").checkpoint.read_bytes()
    cut = tmp_path / "cut.safetensors"
    cut.write_bytes(data[: len(data) // 2])
    with pytest.raises(ModelLoadError, match="truncated"):
        WeightSource(cut)


def test_foreign_safetensors_names_what_is_missing(tmp_path):
    path = tmp_path / "lora.safetensors"
    save_file({"lora_unet_down_blocks_0.alpha": torch.tensor(1.0)}, str(path))
    with pytest.raises(ModelLoadError, match=r"missing UNet \(model\.diffusion_model\.\*\).*VAE.*text encoder"):
        read_architecture(WeightSource(path))


def test_file_that_is_not_safetensors_is_a_clear_error(tmp_path):
    path = tmp_path / "notes.safetensors"
    path.write_bytes(b"hello, this is text and not weights at all")
    with pytest.raises(ModelLoadError, match="not a safetensors file"):
        WeightSource(path)


def test_bad_checkpoint_in_a_graph_is_an_execution_error_naming_the_problem(tiny, env, tmp_path):
    data = tiny("sd1").checkpoint.read_bytes()
    folder = env.folders.models / "checkpoints"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "broken.safetensors").write_bytes(data[:100000])
    outcome = run_graph(env, txt2img_prompt("broken.safetensors"))
    assert outcome.status == "error"
    message = outcome.error.message()["data"]["exception_message"]
    assert "broken.safetensors" in message and "truncated" in message
