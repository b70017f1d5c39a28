"""ModelSamplingDiscrete is ComfyUI's: the σ tables (LCM's distilled 50, the zero-terminal-SNR
rescale) and the LCM / v / x0 predictions are written out here again, independently in
float64 from ComfyUI's comfy/model_sampling.py (ModelSamplingDiscrete,
rescale_zero_terminal_snr_sigmas, EPS / V_PREDICTION / X0) and comfy_extras/
nodes_model_advanced.py (ModelSamplingDiscreteDistilled, LCM), and Loom's must equal
them; end to end the node's clone samples differently while the MODEL it came from does not."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from diffusion.custom_sampling import Sampler, sample_custom, scheduler_sigmas
from diffusion.errors import SamplingError
from diffusion.model_sampling import denoised, sigma_table, with_sampling
from diffusion.sampling import _Denoiser, model_sigmas, sample
from diffusion.sigma_schedules import comfy_sigmas
from diffusion.text_encoding import encode
from tests.diffusion.conftest import install, png_pixels, run_graph, saved_images, txt2img_prompt


def _training_sigmas() -> np.ndarray:
    # ModelSamplingDiscrete._register_schedule, make_beta_schedule("linear"): √β evenly spaced
    # from √0.00085 to √0.012 over 1000 steps, squared; ᾱ = Π(1 − β); σ = √((1 − ᾱ)/ᾱ)
    betas = np.linspace(0.00085 ** 0.5, 0.012 ** 0.5, 1000) ** 2
    ac = np.cumprod(1 - betas)
    return np.sqrt((1 - ac) / ac)


SIGMAS = _training_sigmas()
LCM_TIMESTEPS = [19 + 20 * i for i in range(50)]  # ModelSamplingDiscreteDistilled: 999 − 20·x, x < 50


def _close(actual, expected, rel=1e-6):
    actual, expected = np.asarray(actual, dtype=np.float64), np.asarray(expected, dtype=np.float64)
    assert actual.shape == expected.shape
    np.testing.assert_allclose(actual, expected, rtol=rel, atol=0)


# -- σ tables ---------------------------------------------------------------------------------


def test_lcm_table_is_the_training_sigma_at_the_50_original_lcm_timesteps():
    _close(sigma_table("lcm").sigmas, SIGMAS[LCM_TIMESTEPS])


def test_lcm_table_gives_the_unet_timesteps_19_39_up_to_999():
    table = sigma_table("lcm")
    assert [table.timestep(float(s)) for s in table.sigmas] == LCM_TIMESTEPS


def test_lcm_sgm_uniform_picks_its_sigma_from_the_distilled_table():
    # sgm_uniform: timesteps linspace(timestep(σmax)=999, timestep(σmin)=19, 5)[:-1]; the
    # distilled σ(t) interpolates log σ at table index (t − 19)/20; then 0
    log = np.log(SIGMAS[LCM_TIMESTEPS])

    def sigma_at(t):
        i = (t - 19) / 20
        lo, hi = math.floor(i), math.ceil(i)
        return math.exp((1 - (i - lo)) * log[lo] + (i - lo) * log[hi])

    expected = [sigma_at(t) for t in np.linspace(999, 19, 5)[:-1]] + [0.0]
    _close(comfy_sigmas("sgm_uniform", 4, sigma_table("lcm")), expected)


def _zsnr_sigmas(sigmas: np.ndarray) -> np.ndarray:
    # Lin et al. 2023 Algorithm 1 as ComfyUI's rescale_zero_terminal_snr_sigmas: √ᾱ shifted to end
    # at 0 and scaled to keep its first value, the last ᾱ then set to 4.8973451890853435e-08
    sqrt_ac = np.sqrt(1 / (sigmas ** 2 + 1))
    first, last = sqrt_ac[0], sqrt_ac[-1]
    ac = ((sqrt_ac - last) * first / (first - last)) ** 2
    ac[-1] = 4.8973451890853435e-08
    return np.sqrt((1 - ac) / ac)


def test_zsnr_table_is_the_training_sigma_rescaled_to_zero_terminal_snr():
    expected = _zsnr_sigmas(SIGMAS)
    _close(sigma_table("epsilon", zsnr=True).sigmas, expected)
    assert 4500 < expected[-1] < 4540  # the "infinite" last σ ComfyUI keeps finite


def test_lcm_with_zsnr_picks_its_50_sigma_from_the_rescaled_table():
    _close(sigma_table("lcm", zsnr=True).sigmas, _zsnr_sigmas(SIGMAS)[LCM_TIMESTEPS])


def test_default_table_is_unchanged_by_the_hooks():
    _close(sigma_table("epsilon").sigmas, SIGMAS)
    _close(sigma_table("v_prediction").sigmas, SIGMAS)


# -- predictions ------------------------------------------------------------------------------


def test_lcm_denoised_is_lcm_boundary_condition_on_the_epsilon_prediction():
    torch.manual_seed(0)
    x, eps = torch.randn(1, 4, 3, 3, dtype=torch.float64), torch.randn(1, 4, 3, 3, dtype=torch.float64)
    for sigma, t in ((float(SIGMAS[999]), 999), (float(SIGMAS[19]), 19), (0.05, 0)):
        # LCM: x0 = x − σ·ε; with st = 10·t, c_skip = 0.25/(st² + 0.25), c_out = st/√(st² + 0.25)
        st = 10.0 * t
        expected = st / math.sqrt(st ** 2 + 0.25) * (x - sigma * eps) + 0.25 / (st ** 2 + 0.25) * x
        assert torch.allclose(denoised("lcm", x, eps, sigma, t), expected, rtol=1e-12, atol=1e-12)


def test_lcm_denoised_at_timestep_0_is_the_input_itself():
    x = torch.randn(1, 4, 3, 3, dtype=torch.float64)
    assert torch.equal(denoised("lcm", x, torch.randn_like(x), 0.03, 0), x)


def test_v_prediction_denoised_is_comfyui_s_v_formula():
    x, v = torch.randn(1, 4, 3, 3, dtype=torch.float64), torch.randn(1, 4, 3, 3, dtype=torch.float64)
    sigma = 2.5
    expected = x / (sigma ** 2 + 1) - v * sigma / math.sqrt(sigma ** 2 + 1)
    assert torch.allclose(denoised("v_prediction", x, v, sigma, 500), expected, rtol=1e-12, atol=1e-12)


def test_x0_denoised_is_the_model_output():
    out = torch.randn(1, 4, 3, 3)
    assert torch.equal(denoised("x0", torch.randn(1, 4, 3, 3), out, 2.5, 500), out)


class _RecordingUnet:
    """Stands in for the guided UNet: records the timestep, predicts zeros."""

    def __init__(self):
        self.timesteps = []
        self.options = {}  # a GuidedModel's model_options: no custom-node hooks here

    def __call__(self, x, t):
        self.timesteps.append(t)
        return torch.zeros_like(x)


def test_the_denoiser_of_an_lcm_model_gives_the_unet_the_distilled_timestep():
    from types import SimpleNamespace

    unet = _RecordingUnet()
    model = SimpleNamespace(prediction_type="lcm", zsnr=False)
    D = _Denoiser(model, unet, model_sigmas(model))
    D(torch.ones(1, 4, 2, 2), float(SIGMAS[999]))
    D(torch.ones(1, 4, 2, 2), float(SIGMAS[500]))
    assert unet.timesteps == [999, 499]  # σ(500) is nearest table entry 24 → 24·20 + 19


# -- the node ---------------------------------------------------------------------------------


def test_the_node_offers_comfyui_s_sampling_choices_in_its_order():
    from engine.registry import Registry
    from nodes.model_sampling import ModelSamplingDiscrete

    registry = Registry()
    registry.add(ModelSamplingDiscrete, "nodes")
    schema = registry.schema("ModelSamplingDiscrete")
    sampling = next(i for i in schema.inputs if i.name == "sampling")
    assert sampling.choices == ("eps", "v_prediction", "lcm", "x0", "img_to_img", "img_to_img_flow")
    assert [(i.name, i.type) for i in schema.inputs] == [("model", "MODEL"), ("sampling", "COMBO"),
                                                         ("zsnr", "BOOLEAN")]


@pytest.fixture(scope="module")
def sd1(manager, tiny):
    model, clip, _ = manager.load_checkpoint(tiny("sd1").checkpoint)
    return model, encode(clip, "a horse"), encode(clip, "blurry")


def test_img_to_img_flow_is_a_clear_error_naming_it(sd1):
    with pytest.raises(SamplingError, match="'img_to_img_flow' is for flow-matching models"):
        with_sampling(sd1[0], "img_to_img_flow")


def test_unknown_sampling_is_a_clear_error(sd1):
    with pytest.raises(SamplingError, match="unknown sampling 'edm'"):
        with_sampling(sd1[0], "edm")


def test_the_clone_leaves_the_input_model_as_it_was(sd1):
    model = sd1[0]
    clone = with_sampling(model, "lcm", zsnr=True)
    assert (clone.prediction_type, clone.zsnr) == ("lcm", True)
    assert (model.prediction_type, model.zsnr) == ("epsilon", False)
    assert clone.unet is model.unet  # no weights copied


def _ksample(model, pos, neg, sampler="euler", scheduler="normal", steps=3, seed=3):
    return sample(model, seed=seed, steps=steps, cfg=5.0, sampler_name=sampler, scheduler=scheduler,
                  positive=pos, negative=neg, latent={"samples": torch.zeros(1, 4, 8, 8)})["samples"]


def test_basic_scheduler_gives_the_lcm_clone_the_distilled_sigma(sd1):
    lcm = with_sampling(sd1[0], "lcm")
    _close(scheduler_sigmas(lcm, "sgm_uniform", 4), comfy_sigmas("sgm_uniform", 4, sigma_table("lcm")))
    assert not torch.allclose(scheduler_sigmas(lcm, "sgm_uniform", 4), scheduler_sigmas(sd1[0], "sgm_uniform", 4))


def test_ksampler_and_sampler_custom_agree_bit_for_bit_on_the_lcm_clone(sd1):
    model, pos, neg = sd1
    lcm = with_sampling(model, "lcm")
    via_ksampler = _ksample(lcm, pos, neg, "lcm", "sgm_uniform", steps=4)
    via_custom, _ = sample_custom(lcm, Sampler("lcm"), scheduler_sigmas(lcm, "sgm_uniform", 4), seed=3,
                                  add_noise=True, cfg=5.0, positive=pos, negative=neg,
                                  latent={"samples": torch.zeros(1, 4, 8, 8)})
    assert torch.equal(via_ksampler, via_custom["samples"])


def test_ksampler_advanced_range_on_the_lcm_clone_continues_on_the_distilled_sigma(sd1):
    model, pos, neg = sd1
    lcm = with_sampling(model, "lcm")
    kw = dict(seed=3, steps=4, cfg=5.0, sampler_name="euler", scheduler="sgm_uniform", positive=pos, negative=neg)
    first = sample(lcm, latent={"samples": torch.zeros(1, 4, 8, 8)}, last_step=2, force_full_denoise=False, **kw)
    finished = sample(lcm, latent=first, start_step=2, add_noise=False, **kw)["samples"]
    whole = sample(lcm, latent={"samples": torch.zeros(1, 4, 8, 8)}, **kw)["samples"]
    assert torch.allclose(finished, whole, atol=1e-4)


def test_zsnr_clone_samples_finite_and_differently(sd1):
    model, pos, neg = sd1
    plain = _ksample(model, pos, neg)
    zsnr = _ksample(with_sampling(model, "eps", zsnr=True), pos, neg)
    assert torch.isfinite(zsnr).all() and not torch.allclose(zsnr, plain)


@pytest.mark.parametrize("sampling", ["x0", "img_to_img"])
def test_other_predictions_sample_finite_and_differently(sd1, sampling):
    model, pos, neg = sd1
    out = _ksample(with_sampling(model, sampling), pos, neg)
    assert torch.isfinite(out).all() and not torch.allclose(out, _ksample(model, pos, neg))


# -- end to end -------------------------------------------------------------------------------


def _with_model_sampling(prompt: dict, sampling: str, zsnr: bool = False) -> dict:
    prompt = {k: {"class_type": v["class_type"], "inputs": dict(v["inputs"])} for k, v in prompt.items()}
    prompt["20"] = {"class_type": "ModelSamplingDiscrete",
                    "inputs": {"model": ["4", 0], "sampling": sampling, "zsnr": zsnr}}
    prompt["3"]["inputs"]["model"] = ["20", 0]
    return prompt


def _image(env, prompt, node="9"):
    """The saved image's pixels (the PNG's bytes also hold the prompt, which differs)."""
    outcome = run_graph(env, prompt)
    assert outcome.status == "success", outcome.error
    return png_pixels(saved_images(env, outcome, node)[0])


def test_lcm_graph_runs_and_differs_from_the_graph_without_the_node(tiny, env):
    name = install(env, tiny("sd1"))
    plain = txt2img_prompt(name, sampler="lcm", scheduler="sgm_uniform", steps=4, cfg=1.5)
    with_lcm = _image(env, _with_model_sampling(plain, "lcm"))
    without = _image(env, plain)
    assert not np.array_equal(with_lcm, without)


def test_v_prediction_on_sd1_changes_the_image_and_is_reproducible(tiny, env):
    name = install(env, tiny("sd1"))
    plain = txt2img_prompt(name, steps=2)
    v_graph = _with_model_sampling(plain, "v_prediction")
    first, second = _image(env, v_graph), _image(env, v_graph)
    assert np.array_equal(first, second)
    assert not np.array_equal(first, _image(env, plain))


def test_v_prediction_on_the_sd2_v_model_is_exactly_the_loader_s_own_v_path(tiny, env):
    # the node's v rule is the one a v-prediction checkpoint samples with: on SD2-v it changes nothing
    name = install(env, tiny("sd2_v"))
    plain = txt2img_prompt(name, steps=2)
    assert np.array_equal(_image(env, _with_model_sampling(plain, "v_prediction")), _image(env, plain))
    assert not np.array_equal(_image(env, _with_model_sampling(plain, "eps")), _image(env, plain))


def test_a_branch_using_the_original_model_gives_the_same_image_as_without_the_node(tiny, env):
    name = install(env, tiny("sd1"))
    plain = txt2img_prompt(name, steps=2)
    branched = _with_model_sampling(plain, "v_prediction", zsnr=True)
    # a second KSampler on the loader's MODEL, decoded and saved beside the patched one
    branched["30"] = {"class_type": "KSampler", "inputs": dict(plain["3"]["inputs"])}
    branched["31"] = {"class_type": "VAEDecode", "inputs": {"samples": ["30", 0], "vae": ["4", 2]}}
    branched["32"] = {"class_type": "SaveImage", "inputs": {"filename_prefix": "direct", "images": ["31", 0]}}
    outcome = run_graph(env, branched)
    assert outcome.status == "success", outcome.error
    direct = png_pixels(saved_images(env, outcome, "32")[0])
    patched = png_pixels(saved_images(env, outcome, "9")[0])
    assert np.array_equal(direct, _image(env, plain))
    assert not np.array_equal(patched, direct)
