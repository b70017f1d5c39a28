"""ComfyUI's CLIP token API (clip.tokenize → token dict → clip.encode_from_tokens*) on FLUX.1 and
SD3 CLIPs, as custom node packs use it: the token dicts ComfyUI's tokenizers give, encodings equal
to Loom's text nodes' for the same text, and edited dicts (another text per encoder, an encoder
dropped with an empty list) encoded as ComfyUI's models encode them."""

from __future__ import annotations

import os
import sys
import textwrap

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")

PROMPT = "a photograph of an astronaut riding a horse"
LONG = " ".join(["a red cat sitting on a wooden chair,"] * 30)  # 4 CLIP batches, 330 T5 tokens
BOS, EOS = 49406, 49407


def _flux(flux_env, tiny_flux):
    from diffusion.flux_text import load_dual_clip

    return load_dual_clip(flux_env.models, [tiny_flux.files["t5"], tiny_flux.files["clip_l"]], "flux")


def _sd3(manager, sd3_text, *kinds):
    from diffusion.sd3_text import load_clip, load_dual_clip, load_triple_clip

    paths = [sd3_text.files[k] for k in (kinds or ("t5", "clip_g", "clip_l"))]
    if len(paths) == 3:
        return load_triple_clip(manager, paths)
    return load_dual_clip(manager, paths, "sd3") if len(paths) == 2 else load_clip(manager, paths[0], "sd3")


def _text(clip, text):
    from diffusion.text_encoding import encode

    [[cond, meta]] = encode(clip, text)
    return cond, meta["pooled_output"]


def _tokens(clip, tokens, **add):
    [[cond, meta]] = clip.encode_from_tokens_scheduled(tokens, add_dict=add)
    return cond, meta["pooled_output"]


def _equal(a, b) -> bool:
    import torch

    return len(a) == len(b) and all((x is None and y is None) or (x is not None and y is not None and
                                                               x.shape == y.shape and torch.equal(x, y))
                                    for x, y in zip(a, b))


def _ids(batch):
    return [t for t, *_ in batch]


# -- FLUX.1 ---------------------------------------------------------------------------------------

def test_flux_tokenize_gives_clip_l_batches_of_77_and_one_t5xxl_batch_padded_to_256(flux_env, tiny_flux):
    from diffusion.t5_tokenizer import t5_ids
    from diffusion.tokenizer import clip_tokenizer

    tokens = _flux(flux_env, tiny_flux).tokenize(PROMPT)
    assert sorted(tokens) == ["l", "t5xxl"]
    [l_batch], [t5_batch] = tokens["l"], tokens["t5xxl"]
    assert _ids(l_batch) == clip_tokenizer()(PROMPT, padding="max_length", max_length=77).input_ids
    assert _ids(t5_batch) == t5_ids(PROMPT, 256) and len(t5_batch) == 256
    assert {w for _, w in l_batch + t5_batch} == {1.0}


def test_a_long_prompt_is_one_t5xxl_batch_past_256_and_more_clip_l_batches(flux_env, tiny_flux):
    from diffusion.t5_tokenizer import word_ids

    tokens = _flux(flux_env, tiny_flux).tokenize(LONG)
    assert len(tokens["l"]) >= 2 and {len(b) for b in tokens["l"]} == {77}
    [t5_batch] = tokens["t5xxl"]
    pieces = sum(len(word_ids(w)) for w in LONG.split(" ") if w)
    assert len(t5_batch) == pieces + 1 > 256 and t5_batch[-1] == (1, 1.0)


@pytest.mark.parametrize("text", [PROMPT, "a (red:1.3) cat, [blurry]", LONG, ""])
def test_flux_tokens_encode_to_exactly_clip_text_encodes_conditioning(flux_env, tiny_flux, text):
    clip = _flux(flux_env, tiny_flux)
    assert _equal(_tokens(clip, clip.tokenize(text)), _text(clip, text))


def test_flux_t5xxl_tokens_of_another_text_equal_clip_text_encode_flux(flux_env, tiny_flux):
    from diffusion.flux_text import encode_flux

    clip = _flux(flux_env, tiny_flux)
    tokens = clip.tokenize("a cat")
    tokens["t5xxl"] = clip.tokenize("a (red:1.2) dog on a mat")["t5xxl"]
    [[cond, meta]] = clip.encode_from_tokens_scheduled(tokens, add_dict={"guidance": 4.0})
    [[expected, expected_meta]] = encode_flux(clip, "a cat", "a (red:1.2) dog on a mat", extra={"guidance": 4.0})
    assert _equal((cond, meta["pooled_output"]), (expected, expected_meta["pooled_output"]))
    assert meta["guidance"] == 4.0
    assert not _equal((cond,), _text(clip, "a cat")[:1])


def test_encode_from_tokens_return_forms_carry_the_same_tensors(flux_env, tiny_flux):
    clip = _flux(flux_env, tiny_flux)
    tokens = clip.tokenize(PROMPT)
    cond, pooled = clip.encode_from_tokens(tokens, return_pooled=True)
    as_dict = clip.encode_from_tokens(tokens, return_dict=True)
    assert sorted(as_dict) == ["cond", "pooled_output"]
    assert _equal((clip.encode_from_tokens(tokens), as_dict["cond"], as_dict["pooled_output"]),
                  (cond, cond, pooled))
    assert _equal((cond, pooled), _text(clip, PROMPT)) and _equal((clip.encode(PROMPT),), (cond,))


# -- SD3 ------------------------------------------------------------------------------------------

def test_sd3_tokenize_gives_g_l_and_t5xxl_whatever_encoders_are_loaded(manager, sd3_text):
    from diffusion.t5_tokenizer import t5_ids

    tokens = _sd3(manager, sd3_text, "clip_g", "t5").tokenize("a cat")
    assert sorted(tokens) == ["g", "l", "t5xxl"]
    [g], [l_batch], [t5_batch] = tokens["g"], tokens["l"], tokens["t5xxl"]
    assert len(g) == len(l_batch) == 77 and _ids(g)[:4] == _ids(l_batch)[:4]
    assert _ids(g)[4:] == [0] * 73 and _ids(l_batch)[4:] == [EOS] * 73  # bigG pads with "!", CLIP-L with end
    assert _ids(t5_batch) == t5_ids("a cat", 77)


@pytest.mark.parametrize("kinds", [(), ("clip_l", "clip_g"), ("clip_g", "t5"), ("clip_l", "t5"), ("t5",)])
@pytest.mark.parametrize("text", [PROMPT, "a (red:1.3) cat, [blurry]", ""])
def test_sd3_tokens_encode_to_exactly_clip_text_encodes_conditioning(manager, sd3_text, kinds, text):
    clip = _sd3(manager, sd3_text, *kinds)
    assert _equal(_tokens(clip, clip.tokenize(text)), _text(clip, text))


def clip_text_encode_sd3_tokens(clip, clip_l: str, clip_g: str, t5xxl: str, empty_padding: str) -> dict:
    """The token dict ComfyUI's CLIPTextEncodeSD3 builds: G's tokens of clip_g, L's of clip_l, T5's
    of t5xxl; with "none" an empty text is an empty list; L and G padded with empty-prompt batches
    to the same count."""
    drop = empty_padding == "none"
    tokens = clip.tokenize(clip_g)
    if drop and not clip_g:
        tokens["g"] = []
    tokens["l"] = [] if drop and not clip_l else clip.tokenize(clip_l)["l"]
    tokens["t5xxl"] = [] if drop and not t5xxl else clip.tokenize(t5xxl)["t5xxl"]
    empty = clip.tokenize("")
    while len(tokens["l"]) < len(tokens["g"]):
        tokens["l"] = tokens["l"] + empty["l"]
    while len(tokens["g"]) < len(tokens["l"]):
        tokens["g"] = tokens["g"] + empty["g"]
    return tokens


SD3_TEXTS = [("a cat", "a dog", "a (red:1.2) bird", "none"), ("", "a dog", "", "none"), ("", "", "a cat", "none"),
             (LONG, "a dog", "a cat", "none"), ("", "a dog", "", "empty_prompt"), ("", "", "", "none"),
             ("", "", "", "empty_prompt")]


@pytest.mark.parametrize("texts", SD3_TEXTS)
def test_clip_text_encode_sd3_style_token_edits_equal_the_node(manager, sd3_text, texts):
    from diffusion.sd3_text import encode_sd3

    clip = _sd3(manager, sd3_text)
    [[expected, meta]] = encode_sd3(clip, *texts)
    assert _equal(_tokens(clip, clip_text_encode_sd3_tokens(clip, *texts)), (expected, meta["pooled_output"]))


def test_an_empty_t5xxl_list_encodes_the_end_token_alone(manager, sd3_text):
    import torch

    clip = _sd3(manager, sd3_text)
    tokens = clip.tokenize("a cat")
    tokens["t5xxl"] = []
    cond, pooled = _tokens(clip, tokens)
    full, full_pooled = _text(clip, "a cat")
    with torch.inference_mode():
        end_only = sd3_text.modules["t5"](input_ids=torch.tensor([[1]])).last_hidden_state
    assert cond.shape == (1, 78, 64) and torch.allclose(cond[:, 77:], end_only, atol=1e-5)
    assert torch.equal(cond[:, :77], full[:, :77]) and torch.equal(pooled, full_pooled)


def test_empty_l_and_g_lists_leave_both_clips_out_with_zero_pooled(manager, sd3_text):
    import torch

    clip = _sd3(manager, sd3_text)
    tokens = clip.tokenize("a cat")
    tokens["l"], tokens["g"] = [], []
    cond, pooled = _tokens(clip, tokens)
    assert torch.equal(cond, _text(clip, "a cat")[0][:, 77:]) and torch.equal(pooled, torch.zeros(1, 64))


def test_an_empty_l_list_beside_g_batches_is_start_and_end_alone_and_cuts_g_to_it(manager, sd3_text):
    """ComfyUI's SD3ClipModel encodes CLIP-L's empty list as its start and end tokens alone and
    cuts the joined CLIP features to that length."""
    import torch

    clip = _sd3(manager, sd3_text)
    tokens = clip.tokenize("a dog")
    tokens["l"] = []
    cond, pooled = _tokens(clip, tokens)
    full, full_pooled = _text(clip, "a dog")
    with torch.inference_mode():
        l_out = sd3_text.modules["clip_l"].text_model(torch.tensor([[BOS, EOS]]), output_hidden_states=True)
    assert cond.shape == (1, 2 + 77, 64)
    assert torch.allclose(cond[:, :2, :32], l_out.hidden_states[-2], atol=1e-5)
    assert torch.allclose(pooled[:, :32], l_out.pooler_output, atol=1e-5)  # unprojected, as ComfyUI's
    assert torch.equal(cond[:, :2, 32:], full[:, :2, 32:]) and torch.equal(cond[:, 2:], full[:, 77:])
    assert torch.equal(pooled[:, 32:], full_pooled[:, 32:])


def test_return_word_ids_number_the_words_and_give_special_tokens_0(manager, sd3_text):
    clip = _sd3(manager, sd3_text)
    plain, numbered = clip.tokenize("a (red:1.5) cat"), clip.tokenize("a (red:1.5) cat", return_word_ids=True)
    for key in ("g", "l", "t5xxl"):
        assert [[(t, w) for t, w, _ in b] for b in numbered[key]] == plain[key]
    l_words = [n for _, _, n in numbered["l"][0]]
    assert l_words[:5] == [0, 1, 2, 3, 0] and set(l_words[5:]) == {0}
    assert numbered["l"][0][2] == (736, 1.5, 2)  # "red", its weight, the second word
    t5_words = [n for _, _, n in numbered["t5xxl"][0] if n]
    assert t5_words == sorted(t5_words) and set(t5_words) == {1, 2, 3}


# -- SDXL -----------------------------------------------------------------------------------------

def test_sdxl_l_and_g_batches_of_different_counts_are_cut_to_the_shorter(manager, sd3_text):
    from diffusion.sd3_text import load_dual_clip

    clip = load_dual_clip(manager, [sd3_text.files["clip_l"], sd3_text.files["clip_g"]], "sdxl")
    tokens = clip.tokenize("a cat")
    assert sorted(tokens) == ["g", "l"]
    tokens["l"] = clip.tokenize(LONG)["l"]
    cond, pooled = _tokens(clip, tokens)
    long, _ = _text(clip, LONG)
    short, short_pooled = _text(clip, "a cat")
    assert cond.shape == (1, 77, 64)
    assert _equal((cond[..., :32], cond[..., 32:], pooled), (long[:, :77, :32], short[..., 32:], short_pooled))


@pytest.mark.parametrize("kind, keys", [("sd1", ["l"]), ("sd2_v", ["h"]), ("sdxl", ["g", "l"])])
def test_checkpoint_clips_key_their_tokens_as_comfyui_and_encode_as_clip_text_encode(manager, tiny, kind, keys):
    _, clip, _ = manager.load_checkpoint(tiny(kind).checkpoint)
    tokens = clip.tokenize("a (red:1.2) cat")
    assert sorted(tokens) == keys
    assert _equal(_tokens(clip, tokens), _text(clip, "a (red:1.2) cat"))


# -- bad token dicts ------------------------------------------------------------------------------

@pytest.mark.parametrize("edit, message", [
    (lambda t: t.pop("t5xxl"), r"tokens have no 't5xxl' entry for this flux CLIP"),
    (lambda t: t["l"].append(t["l"][0][:10]), r"tokens\['l'\] has batches of 10, 77 tokens"),
    (lambda t: t["t5xxl"][0].__setitem__(0, (10 ** 6, 1.0)), r"token id 1000000, outside this encoder's vocab"),
    (lambda t: t["l"][0].__setitem__(3, ("cat", 1.0)), r"tokens\['l'\] holds str 'cat'"),
])
def test_a_token_dict_of_another_shape_is_refused_with_what_is_wrong(flux_env, tiny_flux, edit, message):
    from diffusion.errors import PromptError

    clip = _flux(flux_env, tiny_flux)
    tokens = clip.tokenize("a cat")
    edit(tokens)
    with pytest.raises(PromptError, match=message):
        clip.encode_from_tokens(tokens)


def test_an_embedding_vector_in_the_clip_tokens_is_encoded_in_its_place(manager, sd3_text):
    import torch

    clip = _sd3(manager, sd3_text, "clip_l")
    tokens = clip.tokenize("a red cat")
    table = sd3_text.modules["clip_l"].text_model.embeddings.token_embedding.weight
    token, weight = tokens["l"][0][2]
    tokens["l"][0][2] = (table[token].detach().clone(), weight)  # "red"'s own vector: the same features
    assert _equal(_tokens(clip, tokens), _text(clip, "a red cat"))
    tokens["l"][0][2] = (torch.zeros(table.shape[1]), weight)
    assert not _equal(_tokens(clip, tokens)[:1], _text(clip, "a red cat")[:1])


# -- a custom node pack through the engine --------------------------------------------------------

PACK_NAME = "loom_test_token_pack"
PACK = '''
CAPTURED = {}


class TokensFluxEncode:
    """A FLUX.1 prompt with a CLIP-L text and a T5 text, encoded from tokens."""

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"clip": ("CLIP",), "clip_l": ("STRING", {"multiline": True}),
                             "t5xxl": ("STRING", {"multiline": True}),
                             "guidance": ("FLOAT", {"default": 3.5, "min": 0.0, "max": 100.0, "step": 0.1})}}

    RETURN_TYPES = ("CONDITIONING",)
    FUNCTION = "encode"
    CATEGORY = "token_pack"

    def encode(self, clip, clip_l, t5xxl, guidance):
        tokens = clip.tokenize(clip_l)
        tokens["t5xxl"] = clip.tokenize(t5xxl)["t5xxl"]
        return (clip.encode_from_tokens_scheduled(tokens, add_dict={"guidance": guidance}),)


class TokensSD3Encode:
    """An SD3 prompt with a text per encoder; with "none" an empty text drops its encoder."""

    @classmethod
    def INPUT_TYPES(cls):
        text = ("STRING", {"multiline": True})
        return {"required": {"clip": ("CLIP",), "clip_l": text, "clip_g": text, "t5xxl": text,
                             "empty_padding": (["none", "empty_prompt"],)}}

    RETURN_TYPES = ("CONDITIONING",)
    FUNCTION = "encode"
    CATEGORY = "token_pack"

    def encode(self, clip, clip_l, clip_g, t5xxl, empty_padding):
        drop = empty_padding == "none"
        tokens = clip.tokenize(clip_g)
        for key, text in (("g", clip_g), ("l", clip_l), ("t5xxl", t5xxl)):
            tokens[key] = [] if drop and not text else clip.tokenize(text)[key]
        empty = clip.tokenize("")
        while len(tokens["l"]) != len(tokens["g"]):
            shorter = "l" if len(tokens["l"]) < len(tokens["g"]) else "g"
            tokens[shorter] = tokens[shorter] + empty[shorter]
        return (clip.encode_from_tokens_scheduled(tokens),)


class CaptureConditioning:
    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"conditioning": ("CONDITIONING",), "label": ("STRING", {"default": "x"})}}

    RETURN_TYPES = ()
    OUTPUT_NODE = True
    FUNCTION = "capture"
    CATEGORY = "token_pack"

    def capture(self, conditioning, label):
        CAPTURED[label] = conditioning
        return {"ui": {"text": [label]}}


NODE_CLASS_MAPPINGS = {"TokensFluxEncode": TokensFluxEncode, "TokensSD3Encode": TokensSD3Encode,
                       "CaptureConditioning": CaptureConditioning}
'''


@pytest.fixture
def run_with_pack(tmp_path):
    """``run(env, prompt) -> conditionings captured by label``: the built-in nodes and the pack,
    loaded from a custom_nodes folder as Loom loads plug-ins, run by the engine."""
    from engine.executor import Executor
    from engine.plugins import load_plugins
    from engine.registry import Registry
    from nodes import builtin_nodes

    folder = tmp_path / "custom_nodes"
    (folder / PACK_NAME).mkdir(parents=True)
    (folder / PACK_NAME / "__init__.py").write_text(textwrap.dedent(PACK))

    def run(env, prompt: dict) -> dict:
        registry = Registry(env=env)
        registry.add_all(builtin_nodes(), "nodes")
        report = load_plugins(registry, [folder])
        assert [p.name for p in report.loaded] == [PACK_NAME], report.failed
        outcome = Executor(registry, cache="none").execute(prompt, prompt_id="tokens")
        assert outcome.status == "success", outcome.error
        return dict(sys.modules[PACK_NAME].CAPTURED)

    yield run
    sys.modules.pop(PACK_NAME, None)


def _captured(label: str, node: str) -> dict:
    return {"class_type": "CaptureConditioning", "inputs": {"conditioning": [node, 0], "label": label}}


def test_a_pack_encoding_flux_tokens_in_a_graph_equals_clip_text_encode_flux(flux_env, run_with_pack):
    texts = {"clip_l": "a cat", "t5xxl": "a (red:1.2) cat on a mat", "guidance": 4.0}
    prompt = {"1": {"class_type": "DualCLIPLoader", "inputs": {"clip_name1": "t5xxl_fp16.safetensors",
                                                               "clip_name2": "clip_l.safetensors", "type": "flux"}},
              "2": {"class_type": "TokensFluxEncode", "inputs": {"clip": ["1", 0], **texts}},
              "3": {"class_type": "CLIPTextEncodeFlux", "inputs": {"clip": ["1", 0], **texts}},
              "4": _captured("pack", "2"), "5": _captured("loom", "3")}
    captured = run_with_pack(flux_env, prompt)
    [[cond, meta]], [[expected, expected_meta]] = captured["pack"], captured["loom"]
    assert cond.shape == (1, 256, 32) and meta["guidance"] == expected_meta["guidance"] == 4.0
    assert _equal((cond, meta["pooled_output"]), (expected, expected_meta["pooled_output"]))


@pytest.mark.parametrize("texts", SD3_TEXTS[:4])
def test_a_pack_encoding_sd3_tokens_in_a_graph_equals_clip_text_encode_sd3(sd3_text_env, run_with_pack, texts):
    inputs = dict(zip(("clip_l", "clip_g", "t5xxl", "empty_padding"), texts))
    prompt = {"1": {"class_type": "TripleCLIPLoader", "inputs": {"clip_name1": "clip_g.safetensors",
                                                                 "clip_name2": "t5xxl_fp16.safetensors",
                                                                 "clip_name3": "clip_l.safetensors"}},
              "2": {"class_type": "TokensSD3Encode", "inputs": {"clip": ["1", 0], **inputs}},
              "3": {"class_type": "CLIPTextEncodeSD3", "inputs": {"clip": ["1", 0], **inputs}},
              "4": _captured("pack", "2"), "5": _captured("loom", "3")}
    captured = run_with_pack(sd3_text_env, prompt)
    [[cond, meta]], [[expected, expected_meta]] = captured["pack"], captured["loom"]
    assert _equal((cond, meta["pooled_output"]), (expected, expected_meta["pooled_output"]))
