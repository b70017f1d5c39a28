"""MODEL for SD3 / SD3.5 transformers, and Load Diffusion Model's choice between families.

An SD3 MODEL is a :class:`~diffusion.flux_model.FlowModel` of family ``"sd3"``: ComfyUI samples
SD3 and SD3.5 (medium, large, large turbo) on ModelSamplingDiscreteFlow with shift 3 and
timesteps σ·1000 (its ``supported_models.SD3`` sampling settings), on the SD3 latent format
(``(z − 0.0609)·1.5305``).  The sampler is the Flux one (:mod:`diffusion.flux_sampling`); only
the transformer call differs.
"""

from __future__ import annotations

from pathlib import Path

from .errors import ModelLoadError
from .flux_model import FlowModel, FlowSampling
from .latent_formats import SD3

#: ComfyUI's sampling settings for every SD3/SD3.5 variant
DEFAULT_SAMPLING = FlowSampling("discrete_flow", 3.0, 1000.0)
SUPPORTED = "FLUX.1 dev/schnell/Fill and SD3/SD3.5 transformers"


def require_sd3(shapes, filename: str, loader: str):
    from .flux_files import describe
    from .sd3_files import sd3_architecture

    arch = sd3_architecture(shapes, filename)
    if arch is None:
        raise ModelLoadError(f"{loader}: {filename} is a {describe(shapes)}, not a diffusion model this loader "
                             f"can load (supported: {SUPPORTED})")
    return arch


def build_sd3_transformer(path: Path, weight_dtype: str, compute_dtype, loader: str = "UNETLoader"):
    """(diffusers SD3Transformer2DModel, SD3Architecture) from an MMDiT or diffusers single file."""
    from diffusers import SD3Transformer2DModel

    from .flux_weights import build_stored
    from .loading import WeightSource
    from .sd3_files import mmdit_to_diffusers

    source = WeightSource(path)
    arch = require_sd3(source.shapes(), path.name, loader)
    names = [k for k in source.shapes() if k.startswith(arch.prefix)]
    if arch.layout == "diffusers":
        names = [k for k in names if not k.startswith("text_encoders.")]
    model = build_stored(lambda: SD3Transformer2DModel.from_config(arch.config),
                         mmdit_to_diffusers(source.read(names), arch), weight_dtype, compute_dtype,
                         f"{path.name}: SD3 transformer")
    return model, arch


def sd3_flow_model(module, arch, manager, source: str) -> FlowModel:
    return FlowModel(module, "sd3", "flow", SD3, manager, source=source, sampling=DEFAULT_SAMPLING,
                     variant=arch.variant, guidance_embed=False, compute_dtype=manager.unet_dtype)


def load_sd3_model(manager, path: str | Path, weight_dtype: str = "default") -> FlowModel:
    """UNETLoader: an SD3/SD3.5 transformer file as a MODEL, loaded once per (file, weight_dtype)."""
    def load(p: Path) -> FlowModel:
        module, arch = build_sd3_transformer(p, weight_dtype, manager.unet_dtype)
        return sd3_flow_model(module, arch, manager, p.name)

    return manager.load_file(Path(path), f"diffusion_model:{weight_dtype}", load, modules=lambda m: (m.unet,),
                             component="unet")


def load_diffusion_model(manager, path: str | Path, weight_dtype: str = "default") -> FlowModel:
    """Load Diffusion Model (UNETLoader): the family is told from the file's key names; each
    family's loader then reads the sizes and names what is missing or wrong."""
    from .flux_model import check_model_file, load_flux_model
    from .weights_file import SafetensorsFile

    path = Path(path)
    check_model_file(path)
    keys = SafetensorsFile(path).shapes() if path.suffix.lower() == ".safetensors" else {}
    if any(".joint_blocks." in "." + k or k.startswith("pos_embed.proj.") for k in keys):
        return load_sd3_model(manager, path, weight_dtype)
    return load_flux_model(manager, path, weight_dtype)  # FLUX.1, or its error naming what the file is
