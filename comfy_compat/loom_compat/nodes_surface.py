"""What ``import nodes`` gives a ComfyUI pack: ``NODE_CLASS_MAPPINGS``,
``MAX_RESOLUTION`` and the core node classes under their ComfyUI names
(``nodes.KSampler``, ``nodes.SaveImage``...).

Loom's built-in nodes are typed functions; packs expect V1 classes they can
call (``nodes.VAEDecode().decode(vae, samples)``) or subclass.  One generic
factory, :func:`v1_class`, builds such a class from any node definition's
schema; calling it runs the definition itself, in the running node's context.
``nodes/__init__.py`` delegates unknown attribute names here.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Iterator

from engine.node import NodeContext, NodeDefinition, current_context

from .binding import active

MAX_RESOLUTION = 16384

#: ComfyUI's method name (``FUNCTION``) of core nodes packs call directly; others use "execute".
FUNCTION_NAMES = {
    "KSampler": "sample", "KSamplerAdvanced": "sample", "CheckpointLoaderSimple": "load_checkpoint",
    "CLIPTextEncode": "encode", "VAEDecode": "decode", "VAEEncode": "encode", "VAEDecodeTiled": "decode",
    "VAEEncodeForInpaint": "encode", "EmptyLatentImage": "generate", "SaveImage": "save_images",
    "PreviewImage": "save_images", "LoadImage": "load_image", "ImageScale": "upscale",
    "ImageScaleBy": "upscale", "ImageInvert": "invert", "ImageBatch": "batch", "ImageBlend": "blend_images",
    "LoraLoader": "load_lora", "LoraLoaderModelOnly": "load_lora_model_only", "VAELoader": "load_vae",
    "CLIPLoader": "load_clip", "UNETLoader": "load_unet", "CLIPSetLastLayer": "set_last_layer",
    "LatentUpscale": "upscale", "LatentUpscaleBy": "upscale", "ControlNetLoader": "load_controlnet",
    "ControlNetApply": "apply_controlnet", "ControlNetApplyAdvanced": "apply_controlnet",
    "ConditioningCombine": "combine", "ConditioningSetArea": "append", "SetLatentNoiseMask": "set_mask",
    "LatentFromBatch": "frombatch", "RepeatLatentBatch": "repeat", "UpscaleModelLoader": "load_model",
    "ImageUpscaleWithModel": "upscale",
    # comfy_extras (ComfyUI's V1 method names; V3-style ``Class.execute(...)`` works too)
    "SamplerCustom": "sample", "SamplerCustomAdvanced": "sample", "KSamplerSelect": "get_sampler",
    "BasicScheduler": "get_sigmas", "SDTurboScheduler": "get_sigmas", "CFGGuider": "get_guider",
    "BasicGuider": "get_guider", "RandomNoise": "get_noise", "DisableNoise": "get_noise",
    "CLIPTextEncodeSDXL": "encode", "CLIPTextEncodeSDXLRefiner": "encode", "CLIPTextEncodeFlux": "encode",
    "FluxGuidance": "append", "GrowMask": "expand_mask", "MaskToImage": "mask_to_image",
    "ImageToMask": "image_to_mask", "SolidMask": "solid", "InvertMask": "invert", "FeatherMask": "feather",
    "ThresholdMask": "image_to_mask", "MaskComposite": "combine", "ImageCompositeMasked": "composite",
    "ModelSamplingDiscrete": "patch", "ModelSamplingSD3": "patch", "ModelSamplingFlux": "patch",
    "ImageScaleToTotalPixels": "upscale", "ConditioningSetMask": "append", "ConditioningZeroOut": "zero_out",
    "ConditioningSetTimestepRange": "set_range", "ConditioningConcat": "concat", "ConditioningAverage": "addWeighted",
    "LoadImageMask": "load_image", "Canny": "detect_edge", "ImagePadForOutpaint": "expand_image",
    "DualCLIPLoader": "load_clip", "CLIPVisionLoader": "load_clip", "CLIPVisionEncode": "encode",
    "unCLIPConditioning": "apply_adm", "GLIGENLoader": "load_gligen", "GLIGENTextBoxApply": "append",
}

#: Combo inputs whose choices ComfyUI's classes also expose as class attributes
#: (``nodes.ImageScale.upscale_methods``, ``nodes.LatentUpscale.crop_methods``).
CHOICE_ATTRIBUTES = {"upscale_method": "upscale_methods", "crop": "crop_methods"}


class _EitherMethod:
    """A node's method callable on an instance (V1: ``Node().sample(...)``) or
    on the class (V3: ``Node.execute(...)``)."""

    def __init__(self, run: Any):
        self.run = run

    def __get__(self, obj: Any, owner: Any = None) -> Any:
        import functools

        return functools.partial(self.run, obj)


def _output_node_init(self: Any) -> None:
    """ComfyUI's SaveImage/PreviewImage keep where they write; subclasses read it."""
    import folder_paths

    preview = type(self).__loom_definition__.class_type == "PreviewImage"
    self.output_dir = folder_paths.get_temp_directory() if preview else folder_paths.get_output_directory()
    self.type = "temp" if preview else "output"
    self.prefix_append = ""
    self.compress_level = 1 if preview else 4

_classes: dict[int, tuple[NodeDefinition, type]] = {}


def _detached_context() -> NodeContext:
    """A context for a node called outside a running prompt (a pack's own script)."""
    return NodeContext(
        node_id="", display_node_id="", prompt_id="", prompt={}, extra_data={}, env=active().env,
        report_progress=lambda *args: None, is_interrupted=lambda: False,
    )


def v1_class(definition: NodeDefinition) -> type:
    """A ComfyUI V1 class for ``definition`` (cached: packs compare and subclass it)."""
    cached = _classes.get(id(definition))
    if cached is not None and cached[0] is definition:
        return cached[1]
    from engine.comfy_v1 import V1Node

    if isinstance(definition, V1Node):
        return definition.cls
    if hasattr(definition, "cls"):  # V3 classes carry their own V1 attributes
        return definition.cls
    schema = definition.schema(active().env)
    function = FUNCTION_NAMES.get(definition.class_type, "execute")
    order = [spec.name for spec in schema.inputs if spec.section != "hidden"]
    if schema.output_node:
        # ComfyUI's output nodes take the hidden prompt and workflow after their
        # inputs, and subclasses pass them on positionally; Loom's read the context.
        order += ["prompt", "extra_pnginfo"]

    def input_types(cls: type) -> dict[str, Any]:
        current = definition.schema(active().env)
        declared: dict[str, Any] = {"required": {}}
        for spec in current.inputs:
            wire = spec.wire_format()
            declared.setdefault(spec.section, {})[spec.name] = wire if spec.section == "hidden" else tuple(wire)
        return declared

    def run(self: Any, *args: Any, **kwargs: Any) -> Any:
        if len(args) > len(order):
            raise TypeError(f"{definition.class_type}.{function}() takes {len(order)} inputs, got {len(args)}")
        inputs = dict(zip(order, args))
        inputs.update(kwargs)
        known = {spec.name for spec in definition.schema(active().env).inputs}
        # ComfyUI's core nodes take hidden prompt/extra_pnginfo/unique_id; Loom's read them from the context.
        inputs = {k: v for k, v in inputs.items() if k in known}
        ctx = current_context.get() or _detached_context()
        raw = definition.call(None, inputs, ctx)
        result = definition.normalize(raw, len(schema.outputs))
        if result.ui is None and result.expand is None:
            return tuple(result.values)
        return {"ui": result.ui, "result": tuple(result.values), "expand": result.expand}

    attributes: dict[str, Any] = {
        "__doc__": schema.description or f"Loom's {definition.class_type} as a ComfyUI class.",
        "__module__": "nodes",
        "INPUT_TYPES": classmethod(input_types),
        "RETURN_TYPES": tuple(o.type for o in schema.outputs),
        "RETURN_NAMES": tuple(o.name for o in schema.outputs),
        "OUTPUT_IS_LIST": tuple(o.is_list for o in schema.outputs),
        "OUTPUT_TOOLTIPS": tuple(o.tooltip for o in schema.outputs),
        "FUNCTION": function,
        function: _EitherMethod(run),
        "execute": _EitherMethod(run),
        "CATEGORY": schema.category,
        "DESCRIPTION": schema.description,
        "OUTPUT_NODE": schema.output_node,
        "INPUT_IS_LIST": schema.input_is_list,
        "NOT_IDEMPOTENT": schema.not_idempotent,
        "__loom_definition__": definition,
    }
    for spec in schema.inputs:
        if spec.name in CHOICE_ATTRIBUTES and spec.choices:
            attributes[CHOICE_ATTRIBUTES[spec.name]] = list(spec.choices)
    if definition.class_type in ("SaveImage", "PreviewImage"):
        attributes["__init__"] = _output_node_init
    if definition.has_fingerprint:
        attributes["IS_CHANGED"] = classmethod(lambda cls, **inputs: definition.fingerprint(None, inputs))
    if definition.validation is not None:
        attributes["VALIDATE_INPUTS"] = staticmethod(definition.validation.call)
    if any(spec.lazy for spec in schema.inputs):
        attributes["check_lazy_status"] = lambda self, **inputs: definition.lazy_inputs_needed(None, inputs)
    cls = type(definition.class_type, (), attributes)
    _classes[id(definition)] = (definition, cls)
    return cls


class _NodeClassMappings(Mapping):
    """``nodes.NODE_CLASS_MAPPINGS``: every registered node (built-in and from
    packs loaded so far) as a V1 class, read live from the host's registry."""

    def __getitem__(self, class_type: str) -> type:
        definition = active().registry.get(class_type)
        if definition is None:
            raise KeyError(class_type)
        return v1_class(definition)

    def __iter__(self) -> Iterator[str]:
        return iter(active().registry.class_types())

    def __len__(self) -> int:
        return len(active().registry)


class _DisplayNames(Mapping):
    def __getitem__(self, class_type: str) -> str:
        schema = active().registry.schema(class_type)
        if schema is None:
            raise KeyError(class_type)
        return schema.display_name

    def __iter__(self) -> Iterator[str]:
        return iter(active().registry.class_types())

    def __len__(self) -> int:
        return len(active().registry)


NODE_CLASS_MAPPINGS = _NodeClassMappings()
NODE_DISPLAY_NAME_MAPPINGS = _DisplayNames()


def interrupt_processing(value: bool = True) -> None:
    from comfy.model_management import interrupt_current_processing

    interrupt_current_processing(value)


def before_node_execution() -> None:
    from comfy.model_management import throw_exception_if_processing_interrupted

    throw_exception_if_processing_interrupted()


def common_ksampler(model: Any, seed: int, steps: int, cfg: float, sampler_name: str, scheduler: str,
                    positive: Any, negative: Any, latent: Any, denoise: float = 1.0, **_: Any) -> tuple[Any]:
    """ComfyUI's helper behind KSampler, run through Loom's KSampler node."""
    sampler = comfy_attribute("KSampler")()
    return sampler.sample(model=model, seed=seed, steps=steps, cfg=cfg, sampler_name=sampler_name,
                          scheduler=scheduler, positive=positive, negative=negative, latent_image=latent,
                          denoise=denoise)


_FIXED = {
    "MAX_RESOLUTION": lambda: MAX_RESOLUTION,
    "NODE_CLASS_MAPPINGS": lambda: NODE_CLASS_MAPPINGS,
    "NODE_DISPLAY_NAME_MAPPINGS": lambda: NODE_DISPLAY_NAME_MAPPINGS,
    "EXTENSION_WEB_DIRS": lambda: active().registry.web_directories,
    "interrupt_processing": lambda: interrupt_processing,
    "before_node_execution": lambda: before_node_execution,
    "common_ksampler": lambda: common_ksampler,
}


def comfy_attribute(name: str) -> Any:
    """``nodes.<name>`` for a ComfyUI name, or ``AttributeError`` naming it."""

    if name in _FIXED:
        return _FIXED[name]()
    binding = active()
    if name[:1].isupper() and binding.registry.origins.get(name) == "builtin":
        definition = binding.registry.get(name)
        if definition is not None:
            return v1_class(definition)
    from . import placeholders

    return placeholders.attribute("nodes", name)


__all__ = ["MAX_RESOLUTION", "NODE_CLASS_MAPPINGS", "NODE_DISPLAY_NAME_MAPPINGS", "comfy_attribute", "v1_class"]
