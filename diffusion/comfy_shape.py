"""ComfyUI's object shapes on Loom's MODEL / CLIP / VAE handles.

Custom nodes call methods on the objects flowing between nodes: a MODEL is a
``ModelPatcher`` to them (``clone()``, ``model_options``,
``set_model_sampler_cfg_function``, ``get_model_object("model_sampling")``,
``add_patches``...), a CLIP has ``tokenize`` / ``encode_from_tokens``, a VAE
``encode`` / ``decode``.  These mixins give Loom's handles those methods, over
Loom's runtime, so a pack's node gets the same objects Loom's nodes pass around.

What the sampler honours (``diffusion.sampling`` / ``diffusion.guidance``):
``sampler_cfg_function``, ``sampler_post_cfg_function``, ``model_function_wrapper``
(called with the UNet's scaled input and training timestep), ``disable_cfg1_optimization``,
weight patches from ``add_patches`` (in Loom's parameter names) and object patches of
``model_sampling``.  Not honoured: patches inside ComfyUI's own UNet code
(``transformer_options["patches"]``, attention replacements, ``comfy.ldm``).
"""

from __future__ import annotations

from typing import Any, Callable

# -- MODEL --------------------------------------------------------------------------------


class ModelSamplingView:
    """``model.get_model_object("model_sampling")``: σ ↔ timestep on the model's
    σ table, and ComfyUI's input / denoised / noise-scaling formulas."""

    def __init__(self, model: Any):
        from .sampling import model_sigmas

        self._table = model_sigmas(model)
        self.prediction_type = model.prediction_type

    @property
    def sigmas(self) -> Any:
        return self._table.sigmas

    @property
    def sigma_min(self) -> Any:
        return self._table.sigmas[0]

    @property
    def sigma_max(self) -> Any:
        return self._table.sigmas[-1]

    def timestep(self, sigma: Any) -> Any:
        import torch

        values = torch.as_tensor(sigma, dtype=torch.float32).reshape(-1)
        steps = [float(self._table.timestep(float(s))) for s in values]
        return torch.tensor(steps).reshape(torch.as_tensor(sigma).shape)

    def sigma(self, timestep: Any) -> Any:
        return self._table.sigma(timestep)

    def percent_to_sigma(self, percent: float) -> float:
        if percent <= 0.0:
            return 999999999.9
        if percent >= 1.0:
            return 0.0
        return float(self._table.sigma((1.0 - percent) * (len(self._table.sigmas) - 1)))

    def calculate_input(self, sigma: Any, noise: Any) -> Any:
        sigma = _per_item(sigma, noise)
        return noise if self.prediction_type == "img_to_img" else noise / (sigma ** 2 + 1) ** 0.5

    def calculate_denoised(self, sigma: Any, model_output: Any, model_input: Any) -> Any:
        from .model_sampling import denoised

        import torch

        sigmas = torch.as_tensor(sigma, dtype=torch.float32).reshape(-1)
        if sigmas.numel() == 1:
            s = float(sigmas[0])
            return denoised(self.prediction_type, model_input, model_output, s, self._table.timestep(s))
        return torch.cat([denoised(self.prediction_type, model_input[i:i + 1], model_output[i:i + 1], float(s),
                                   self._table.timestep(float(s))) for i, s in enumerate(sigmas)])

    def noise_scaling(self, sigma: Any, noise: Any, latent_image: Any, max_denoise: bool = False) -> Any:
        sigma = _per_item(sigma, noise)
        scale = (sigma ** 2 + 1.0) ** 0.5 if max_denoise else sigma
        return latent_image + noise * scale

    def inverse_noise_scaling(self, sigma: Any, latent: Any) -> Any:
        return latent


def _per_item(sigma: Any, like: Any) -> Any:
    import torch

    sigma = torch.as_tensor(sigma, dtype=like.dtype, device=like.device)
    return sigma.reshape(sigma.shape[:1] + (1,) * (like.ndim - 1)) if sigma.ndim else sigma


class _LatentFormatView:
    """ComfyUI's latent format names over Loom's :class:`LatentFormat`."""

    def __init__(self, fmt: Any):
        self._fmt = fmt
        self.scale_factor = fmt.scale_factor
        self.shift_factor = fmt.shift_factor
        self.latent_channels = fmt.channels
        self.latent_rgb_factors = [list(row) for row in fmt.rgb_factors]
        self.latent_rgb_factors_bias = list(fmt.rgb_bias)

    def process_in(self, latent: Any) -> Any:
        return self._fmt.process_in(latent)

    def process_out(self, latent: Any) -> Any:
        return self._fmt.process_out(latent)


class _BaseModelView:
    """``patcher.model`` (ComfyUI's BaseModel): what packs read off it."""

    def __init__(self, patcher: Any):
        self._patcher = patcher
        self.diffusion_model = patcher.unet
        self.latent_format = _LatentFormatView(patcher.latent_format)

    @property
    def model_sampling(self) -> Any:
        return self._patcher.get_model_object("model_sampling")

    @property
    def model_type(self) -> Any:
        return self._patcher.prediction_type

    def get_dtype(self) -> Any:
        return self._patcher.model_dtype()

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_"):
            raise AttributeError(name)
        return getattr(self.diffusion_model, name)


class _MergeDiff:
    """A weight patch from ``add_patches``: ``W · strength_model + strength · D``
    (ComfyUI's "diff" patch; model merging passes the other model's weight as D)."""

    kind = "diff"

    def __init__(self, diff: Any, strength_model: float):
        self.diff = diff
        self.strength_model = float(strength_model)

    def out_in(self) -> tuple[int, int]:
        return int(self.diff.shape[0]) if self.diff.ndim else 1, int(self.diff[0].numel()) if self.diff.ndim > 1 else 1

    def targets(self) -> tuple[tuple[str, Any], ...]:
        return (("", self),)

    def misfit(self, shape: Any) -> str | None:
        return None if tuple(self.diff.shape) == tuple(shape) else f"diff {list(self.diff.shape)}, model {list(shape)}"

    def patched(self, weight: Any, strength: float) -> Any:
        if self.strength_model != 1.0:
            weight.mul_(self.strength_model)
        if strength:
            weight.add_(self.diff.to(weight.device, weight.dtype).reshape(weight.shape), alpha=strength)
        return weight


#: ComfyUI's parameter prefix for the diffusion model inside a checkpoint.
UNET_PREFIX = "diffusion_model."


def _diff_tensor(value: Any) -> Any:
    """The tensor of a patch value: a tensor, ``(tensor,)``, ``("diff", (tensor,))`` or
    get_key_patches' ``[(tensor, convert), ...]``; ``None`` for patch kinds Loom cannot apply."""
    if hasattr(value, "shape"):
        return value
    if isinstance(value, list) and value and isinstance(value[0], tuple):
        return _diff_tensor(value[0][0])
    if isinstance(value, tuple) and len(value) == 2 and value[0] == "diff":
        return _diff_tensor(value[1])
    if isinstance(value, tuple) and len(value) >= 1 and hasattr(value[0], "shape") and \
            (len(value) == 1 or callable(value[1])):
        return value[0]
    return None


class ModelPatcherShape:
    """ComfyUI's ``ModelPatcher`` methods on :class:`~diffusion.models.DiffusionModel`.
    The setters change the handle they are called on, as in ComfyUI: call them on
    a ``clone()``."""

    model_options: dict

    @property
    def model(self) -> _BaseModelView:
        return _BaseModelView(self)

    @property
    def load_device(self) -> Any:
        return self.manager.device

    @property
    def offload_device(self) -> Any:
        import torch

        return torch.device("cpu")

    @property
    def current_device(self) -> Any:
        return next(self.unet.parameters()).device

    def model_dtype(self) -> Any:
        return next(self.unet.parameters()).dtype

    def model_size(self) -> int:
        return sum(p.numel() * p.element_size() for p in self.unet.parameters())

    def is_clone(self, other: Any) -> bool:
        from .lora import shared_module

        return hasattr(other, "unet") and shared_module(other.unet) is shared_module(self.unet)

    clone_has_same_weights = is_clone

    def model_patches_to(self, device: Any) -> None:
        """Loom's memory manager moves the models; nothing to do."""

    # hooks the sampler honours
    def set_model_sampler_cfg_function(self, fn: Callable[[dict], Any], disable_cfg1_optimization: bool = False) -> None:
        self.model_options["sampler_cfg_function"] = fn
        if disable_cfg1_optimization:
            self.model_options["disable_cfg1_optimization"] = True

    def set_model_sampler_post_cfg_function(self, fn: Callable[[dict], Any],
                                            disable_cfg1_optimization: bool = False) -> None:
        self.model_options["sampler_post_cfg_function"] = list(
            self.model_options.get("sampler_post_cfg_function", [])) + [fn]
        if disable_cfg1_optimization:
            self.model_options["disable_cfg1_optimization"] = True

    def set_model_sampler_pre_cfg_function(self, fn: Callable[[dict], Any],
                                           disable_cfg1_optimization: bool = False) -> None:
        self.model_options["sampler_pre_cfg_function"] = list(
            self.model_options.get("sampler_pre_cfg_function", [])) + [fn]
        if disable_cfg1_optimization:
            self.model_options["disable_cfg1_optimization"] = True

    def set_model_unet_function_wrapper(self, fn: Callable[[Callable, dict], Any]) -> None:
        self.model_options["model_function_wrapper"] = fn

    def set_model_denoise_mask_function(self, fn: Callable[..., Any]) -> None:
        self.model_options["denoise_mask_function"] = fn

    # ComfyUI UNet internals: kept for the pack to read back, not run by Loom's UNet
    def set_model_patch(self, patch: Any, name: str) -> None:
        patches = self.model_options["transformer_options"].setdefault("patches", {})
        patches[name] = list(patches.get(name, [])) + [patch]

    def set_model_patch_replace(self, patch: Any, name: str, block_name: str, number: int,
                                transformer_index: int | None = None) -> None:
        replace = self.model_options["transformer_options"].setdefault("patches_replace", {})
        key = (block_name, number) if transformer_index is None else (block_name, number, transformer_index)
        replace.setdefault(name, {})[key] = patch

    def set_model_attn1_patch(self, patch: Any) -> None:
        self.set_model_patch(patch, "attn1_patch")

    def set_model_attn2_patch(self, patch: Any) -> None:
        self.set_model_patch(patch, "attn2_patch")

    def set_model_attn1_output_patch(self, patch: Any) -> None:
        self.set_model_patch(patch, "attn1_output_patch")

    def set_model_attn2_output_patch(self, patch: Any) -> None:
        self.set_model_patch(patch, "attn2_output_patch")

    def set_model_attn1_replace(self, patch: Any, block_name: str, number: int,
                                transformer_index: int | None = None) -> None:
        self.set_model_patch_replace(patch, "attn1", block_name, number, transformer_index)

    def set_model_attn2_replace(self, patch: Any, block_name: str, number: int,
                                transformer_index: int | None = None) -> None:
        self.set_model_patch_replace(patch, "attn2", block_name, number, transformer_index)

    def set_model_input_block_patch(self, patch: Any) -> None:
        self.set_model_patch(patch, "input_block_patch")

    def set_model_output_block_patch(self, patch: Any) -> None:
        self.set_model_patch(patch, "output_block_patch")

    # objects
    def add_object_patch(self, name: str, obj: Any) -> None:
        self.model_options.setdefault("loom_object_patches", {})[name] = obj

    def get_model_object(self, name: str) -> Any:
        patched = self.model_options.get("loom_object_patches", {})
        if name in patched:
            return patched[name]
        if name == "model_sampling":
            return ModelSamplingView(self)
        if name == "latent_format":
            return _LatentFormatView(self.latent_format)
        if name.startswith(UNET_PREFIX):
            name = name[len(UNET_PREFIX):]
        elif name == "diffusion_model":
            return self.unet
        target: Any = self.unet
        for part in name.split("."):
            target = getattr(target, part)
        return target

    # weights
    def model_state_dict(self, filter_prefix: str | None = None) -> dict[str, Any]:
        from .lora import shared_module

        state = {UNET_PREFIX + k: v for k, v in shared_module(self.unet).state_dict().items()}
        return {k: v for k, v in state.items() if filter_prefix is None or k.startswith(filter_prefix)}

    def get_key_patches(self, filter_prefix: str | None = None) -> dict[str, list]:
        """Every UNet weight as ComfyUI's ``[(weight, convert)]`` (``diffusion_model.`` +
        Loom's parameter names), for ``add_patches`` on another model (merging)."""
        return {k: [(v, lambda a, **_: a)] for k, v in self.model_state_dict(filter_prefix).items()}

    def add_patches(self, patches: dict[str, Any], strength_patch: float = 1.0,
                    strength_model: float = 1.0) -> list[str]:
        """Add weight patches (``W·strength_model + strength_patch·D``); returns the keys
        applied.  Keys are ``diffusion_model.`` + Loom's parameter names; others (ComfyUI's
        own UNet key names, LoRA patch tuples) are left out of the returned list."""
        from .lora import PatchedModule, WeightPatch, shared_module

        shared = shared_module(self.unet)
        params = dict(shared.named_parameters())
        layers, applied = [], []
        for key, value in patches.items():
            name = key[len(UNET_PREFIX):] if key.startswith(UNET_PREFIX) else key
            tensor = _diff_tensor(value)
            param = params.get(name)
            if tensor is None or param is None or tuple(tensor.shape) != tuple(param.shape):
                continue
            layers.append((name, _MergeDiff(tensor.detach(), strength_model)))
            applied.append(key)
        if layers:
            patch = WeightPatch("add_patches", float(strength_patch), tuple(layers))
            all_patches = tuple(self.patches) + (patch,)
            # In place, as ComfyUI's ModelPatcher does on the clone it is called on.
            object.__setattr__(self, "patches", all_patches)
            object.__setattr__(self, "unet", PatchedModule(shared, all_patches))
        return applied


def model_options_copy(options: dict) -> dict:
    """A clone's model_options: its own dicts and lists, the same functions and objects."""
    out = dict(options)
    transformer = dict(options.get("transformer_options", {}))
    for key in ("patches", "patches_replace"):
        if key in transformer:
            transformer[key] = {k: (list(v) if isinstance(v, list) else dict(v)) for k, v in transformer[key].items()}
    out["transformer_options"] = transformer
    for key in ("sampler_post_cfg_function", "sampler_pre_cfg_function"):
        if key in out:
            out[key] = list(out[key])
    if "loom_object_patches" in out:
        out["loom_object_patches"] = dict(out["loom_object_patches"])
    return out


# -- CLIP ---------------------------------------------------------------------------------


class ClipShape:
    """ComfyUI's ``CLIP`` methods on :class:`~diffusion.models.ClipModel`, for every family
    (token dicts ``{"l"|"g"|"h"|"t5xxl": [[(token id or embedding vector, weight), ...], ...]}``:
    :mod:`diffusion.clip_tokens`).  ``return_pooled="unprojected"`` / ``unprojected`` are
    accepted and give the family's usual pooled output (CLIP-G's stays projected)."""

    def tokenize(self, text: str, return_word_ids: bool = False, **kwargs: Any) -> dict[str, list]:
        from .clip_tokens import tokenize

        return tokenize(self, text, return_word_ids)

    def encode_from_tokens(self, tokens: dict[str, list], return_pooled: bool | str = False,
                           return_dict: bool = False) -> Any:
        from .clip_tokens import encode_tokens

        cond, pooled = encode_tokens(self, tokens)
        if return_dict:
            return {"cond": cond, "pooled_output": pooled}
        return (cond, pooled) if return_pooled else cond

    def encode_from_tokens_scheduled(self, tokens: dict[str, list], unprojected: bool = False,
                                     add_dict: dict | None = None, show_pbar: bool = True) -> list:
        cond, pooled = self.encode_from_tokens(tokens, return_pooled=True)
        return [[cond, {"pooled_output": pooled, **(add_dict or {})}]]

    def encode(self, text: str) -> Any:
        return self.encode_from_tokens(self.tokenize(text))

    def clip_layer(self, layer_idx: int) -> None:
        object.__setattr__(self, "layer", int(layer_idx))  # on a clone, as in ComfyUI

    def get_key_patches(self) -> dict:
        return {}

    @property
    def load_device(self) -> Any:
        return self.manager.device


# -- VAE ----------------------------------------------------------------------------------


class VaeShape:
    """ComfyUI's ``VAE`` methods on :class:`~diffusion.models.VaeModel`: pixels are
    ``[B, H, W, C]`` in 0..1, latents as Loom's LATENT holds them."""

    def decode(self, samples_in: Any, vae_options: dict | None = None) -> Any:
        from .vae import decode

        return decode(self, samples_in)

    def encode(self, pixel_samples: Any) -> Any:
        from .vae import encode

        return encode(self, pixel_samples)

    def decode_tiled(self, samples: Any, tile_x: int = 64, tile_y: int = 64, overlap: int = 16, **_: Any) -> Any:
        from .vae import decode_tiled

        return decode_tiled(self, samples, tile_size=max(tile_x, tile_y) * self.downscale,
                            overlap=overlap * self.downscale)

    def spacial_compression_decode(self) -> int:
        return self.downscale

    def spacial_compression_encode(self) -> int:
        return self.downscale

    @property
    def first_stage_model(self) -> Any:
        return self.vae

    @property
    def latent_channels(self) -> int:
        return self.latent_format.channels

    @property
    def device(self) -> Any:
        return self.manager.device

    def vae_encode_crop_pixels(self, pixels: Any) -> Any:
        f = self.downscale
        h, w = (pixels.shape[1] // f) * f, (pixels.shape[2] // f) * f
        y0, x0 = (pixels.shape[1] - h) // 2, (pixels.shape[2] - w) // 2
        return pixels[:, y0:y0 + h, x0:x0 + w, :]


__all__ = ["ClipShape", "ModelPatcherShape", "ModelSamplingView", "VaeShape", "model_options_copy"]
