"""``comfy_api.latest.io``: the V3 node declaration (``io.ComfyNode``, ``io.Schema``,
``io.Int.Input(...)``...).

A V3 node is a class with classmethods ``define_schema()`` and ``execute(**inputs)``.
Loom compiles its :class:`Schema` to the one :class:`engine.schema.NodeSchema`
(``loom_compat.v3``); nothing here runs nodes itself.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum
from typing import Any, Callable

from engine.node import ExecutionBlocker


class FolderType(str, Enum):
    input = "input"
    output = "output"
    temp = "temp"


class UploadType(str, Enum):
    image = "image_upload"
    audio = "audio_upload"
    video = "video_upload"
    model = "file_upload"


class NumberDisplay(str, Enum):
    number = "number"
    slider = "slider"


class Hidden(str, Enum):
    """Values a node may ask for besides its inputs (read as ``cls.hidden.<name>``)."""

    unique_id = "UNIQUE_ID"
    prompt = "PROMPT"
    extra_pnginfo = "EXTRA_PNGINFO"
    dynprompt = "DYNPROMPT"
    auth_token_comfy_org = "AUTH_TOKEN_COMFY_ORG"
    api_key_comfy_org = "API_KEY_COMFY_ORG"


class HiddenHolder:
    """``cls.hidden`` during ``execute``: the hidden values, ``None`` when not asked for."""

    def __init__(self, values: dict[str, Any] | None = None):
        self.__dict__.update(values or {})

    def __getattr__(self, name: str) -> Any:
        return None


def _pruned(options: dict[str, Any]) -> dict[str, Any]:
    return {k: (v.value if isinstance(v, Enum) else v) for k, v in options.items() if v is not None}


# -- inputs and outputs -----------------------------------------------------------------


class Input:
    """A socket input (``io.Image.Input("image")``)."""

    Parent: Any = None

    def __init__(self, id: str, display_name: str | None = None, optional: bool = False,
                 tooltip: str | None = None, lazy: bool | None = None, extra_dict: dict | None = None,
                 raw_link: bool | None = None, **more: Any):
        self.id = id
        self.display_name = display_name
        self.optional = optional
        self.tooltip = tooltip
        self.lazy = lazy
        self.raw_link = raw_link
        self.extra_dict = dict(extra_dict or {})
        self.more = more  # options Loom passes through to clients untouched

    @property
    def io_type(self) -> str:
        return self.Parent.io_type

    def get_io_type(self) -> str:
        return self.io_type

    def as_dict(self) -> dict[str, Any]:
        """The options in ComfyUI's V1 ``INPUT_TYPES`` shape."""
        return _pruned({"display_name": self.display_name, "tooltip": self.tooltip, "lazy": self.lazy,
                        "rawLink": self.raw_link, **self.more}) | _pruned(self.extra_dict)


class WidgetInput(Input):
    def __init__(self, id: str, display_name: str | None = None, optional: bool = False,
                 tooltip: str | None = None, lazy: bool | None = None, default: Any = None,
                 socketless: bool | None = None, widget_type: str | None = None,
                 force_input: bool | None = None, extra_dict: dict | None = None,
                 raw_link: bool | None = None, **more: Any):
        super().__init__(id, display_name, optional, tooltip, lazy, extra_dict, raw_link, **more)
        self.default = default
        self.socketless = socketless
        self.widget_type = widget_type
        self.force_input = force_input

    def get_io_type(self) -> str:
        return self.widget_type or self.io_type

    def as_dict(self) -> dict[str, Any]:
        return super().as_dict() | _pruned({"default": self.default, "socketless": self.socketless,
                                            "forceInput": self.force_input})


class Output:
    Parent: Any = None

    def __init__(self, id: str | None = None, display_name: str | None = None, tooltip: str | None = None,
                 is_output_list: bool = False, **more: Any):
        self.id = id
        self.display_name = display_name
        self.tooltip = tooltip
        self.is_output_list = is_output_list

    @property
    def io_type(self) -> str:
        return self.Parent.io_type

    def get_io_type(self) -> str:
        return self.io_type


class ComfyTypeI:
    """A type usable as an input (``X.Input``)."""

    io_type: str = ""
    Type: Any = Any
    Input = Input


class ComfyTypeIO(ComfyTypeI):
    """A type usable as an input and an output (``X.Input``, ``X.Output``)."""

    Output = Output


def comfytype(io_type: str, **_: Any) -> Callable[[type], type]:
    """Bind a type name to a class and give it its own ``Input``/``Output``."""

    def bind(cls: type) -> type:
        cls.io_type = io_type
        for kind in ("Input", "Output"):
            base = getattr(cls, kind, None)
            if base is not None:
                setattr(cls, kind, type(base.__name__, (base,), {"Parent": cls, "__qualname__": f"{cls.__name__}.{kind}"}))
        return cls

    return bind


def Custom(io_type: str) -> type[ComfyTypeIO]:
    """A socket type of the pack's own (``MyThing = io.Custom("MY_THING")``)."""
    return comfytype(io_type)(type(f"Custom_{io_type}", (ComfyTypeIO,), {}))


@comfytype("BOOLEAN")
class Boolean(ComfyTypeIO):
    Type = bool

    class Input(WidgetInput):
        def __init__(self, id: str, display_name: str | None = None, optional: bool = False,
                     tooltip: str | None = None, lazy: bool | None = None, default: bool | None = None,
                     label_on: str | None = None, label_off: str | None = None, **kw: Any):
            super().__init__(id, display_name, optional, tooltip, lazy, default, label_on=label_on,
                             label_off=label_off, **kw)


@comfytype("INT")
class Int(ComfyTypeIO):
    Type = int

    class Input(WidgetInput):
        def __init__(self, id: str, display_name: str | None = None, optional: bool = False,
                     tooltip: str | None = None, lazy: bool | None = None, default: int | None = None,
                     min: int | None = None, max: int | None = None, step: int | None = None,
                     control_after_generate: bool | None = None, display_mode: NumberDisplay | None = None,
                     **kw: Any):
            super().__init__(id, display_name, optional, tooltip, lazy, default, display=display_mode, **kw)
            self.min, self.max, self.step = min, max, step
            self.control_after_generate = control_after_generate


@comfytype("FLOAT")
class Float(ComfyTypeIO):
    Type = float

    class Input(WidgetInput):
        def __init__(self, id: str, display_name: str | None = None, optional: bool = False,
                     tooltip: str | None = None, lazy: bool | None = None, default: float | None = None,
                     min: float | None = None, max: float | None = None, step: float | None = None,
                     round: float | None = None, display_mode: NumberDisplay | None = None, **kw: Any):
            super().__init__(id, display_name, optional, tooltip, lazy, default, display=display_mode, **kw)
            self.min, self.max, self.step, self.round = min, max, step, round


@comfytype("STRING")
class String(ComfyTypeIO):
    Type = str

    class Input(WidgetInput):
        def __init__(self, id: str, display_name: str | None = None, optional: bool = False,
                     tooltip: str | None = None, lazy: bool | None = None, multiline: bool = False,
                     placeholder: str | None = None, default: str | None = None,
                     dynamic_prompts: bool | None = None, **kw: Any):
            super().__init__(id, display_name, optional, tooltip, lazy, default, placeholder=placeholder,
                             dynamicPrompts=dynamic_prompts, **kw)
            self.multiline = multiline


@comfytype("COMBO")
class Combo(ComfyTypeIO):
    Type = str

    class Input(WidgetInput):
        def __init__(self, id: str, options: Any = None, display_name: str | None = None,
                     optional: bool = False, tooltip: str | None = None, lazy: bool | None = None,
                     default: Any = None, control_after_generate: bool | None = None,
                     upload: UploadType | None = None, image_folder: FolderType | None = None,
                     remote: Any = None, **kw: Any):
            if isinstance(options, type) and issubclass(options, Enum):
                options = [member.value for member in options]
            if isinstance(default, Enum):
                default = default.value
            more = {upload.value: True} if upload is not None else {}
            super().__init__(id, display_name, optional, tooltip, lazy, default, image_folder=image_folder,
                             **more, **kw)
            self.options = list(options or [])
            self.control_after_generate = control_after_generate


def _socket(io_type: str, name: str) -> type[ComfyTypeIO]:
    return comfytype(io_type)(type(name, (ComfyTypeIO,), {}))


Image = _socket("IMAGE", "Image")
Mask = _socket("MASK", "Mask")
Latent = _socket("LATENT", "Latent")
Conditioning = _socket("CONDITIONING", "Conditioning")
Sampler = _socket("SAMPLER", "Sampler")
Sigmas = _socket("SIGMAS", "Sigmas")
Noise = _socket("NOISE", "Noise")
Guider = _socket("GUIDER", "Guider")
Clip = _socket("CLIP", "Clip")
ControlNet = _socket("CONTROL_NET", "ControlNet")
Vae = _socket("VAE", "Vae")
Model = _socket("MODEL", "Model")
ClipVision = _socket("CLIP_VISION", "ClipVision")
ClipVisionOutput = _socket("CLIP_VISION_OUTPUT", "ClipVisionOutput")
StyleModel = _socket("STYLE_MODEL", "StyleModel")
Gligen = _socket("GLIGEN", "Gligen")
UpscaleModel = _socket("UPSCALE_MODEL", "UpscaleModel")
LoraModel = _socket("LORA_MODEL", "LoraModel")
Audio = _socket("AUDIO", "Audio")
Video = _socket("VIDEO", "Video")
Hooks = _socket("HOOKS", "Hooks")
Point = _socket("POINT", "Point")
FaceAnalysis = _socket("FACE_ANALYSIS", "FaceAnalysis")
BBOX = _socket("BBOX", "BBOX")
SEGS = _socket("SEGS", "SEGS")
AnyType = _socket("*", "AnyType")


# -- the schema and the node ------------------------------------------------------------


@dataclass
class Schema:
    node_id: str
    display_name: str | None = None
    category: str = "sd"
    inputs: list[Input] = field(default_factory=list)
    outputs: list[Output] = field(default_factory=list)
    hidden: list[Hidden] = field(default_factory=list)
    description: str = ""
    is_input_list: bool = False
    is_output_node: bool = False
    is_deprecated: bool = False
    is_experimental: bool = False
    is_api_node: bool = False
    not_idempotent: bool = False
    enable_expand: bool = False
    search_aliases: list[str] = field(default_factory=list)
    #: The node receives every input of its prompt entry, declared or not.
    accept_all_inputs: bool = False
    # Front-end hints Loom keeps but does not act on.
    is_dev_only: bool = False
    price_badge: Any = None
    essentials_category: str | None = None

    def finalize(self) -> "Schema":
        """Output nodes get the prompt and workflow; unnamed outputs get ids (as ComfyUI)."""
        self.inputs, self.outputs, self.hidden = list(self.inputs or []), list(self.outputs or []), list(self.hidden or [])
        if self.is_output_node:
            for needed in (Hidden.prompt, Hidden.extra_pnginfo):
                if needed not in self.hidden:
                    self.hidden.append(needed)
        for index, output in enumerate(self.outputs):
            if output.id is None:
                output.id = f"_{index}_{output.io_type}_"
        return self

    def validate(self) -> None:
        input_ids = [i.id for i in self.inputs]
        output_ids = [o.id for o in self.outputs]
        problems = []
        for what, ids in (("input", input_ids), ("output", output_ids)):
            repeated = sorted({i for i in ids if ids.count(i) > 1})
            if repeated:
                problems.append(f"{what} ids must be unique, but {repeated} repeat")
        # An input and an output may share an id (ComfyUI's V1 nodes do it all the time).
        if problems:
            raise ValueError(f"node '{self.node_id}': " + "; ".join(problems))


class _UIOutput:
    def as_dict(self) -> dict[str, Any]:
        raise NotImplementedError


class NodeOutput:
    """What ``execute`` returns: the output values, plus ``ui``, ``expand`` or ``block_execution``."""

    def __init__(self, *args: Any, ui: Any = None, expand: dict | None = None, block_execution: str | None = None):
        self.args = args
        self.ui = ui
        self.expand = expand
        self.block_execution = block_execution

    @property
    def result(self) -> tuple[Any, ...] | None:
        return self.args if self.args else None

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "NodeOutput":
        result = data.get("result", ())
        if isinstance(result, ExecutionBlocker):
            return cls(block_execution=result.message)
        return cls(*(result or ()), ui=data.get("ui"), expand=data.get("expand"))

    def __getitem__(self, index: int) -> Any:
        return self.args[index]


class _ClassProperty:
    def __init__(self, getter: Callable[[type], Any]):
        self.getter = getter

    def __get__(self, obj: Any, owner: type) -> Any:
        return self.getter(owner)


class ComfyNode:
    """Base of every V3 node: override ``define_schema`` and ``execute`` (classmethods)."""

    #: Filled in for each call (``cls.hidden.unique_id``...).
    hidden: HiddenHolder = HiddenHolder()

    @classmethod
    def define_schema(cls) -> Schema:
        raise NotImplementedError(f"{cls.__name__} defines no define_schema()")

    @classmethod
    def execute(cls, **kwargs: Any) -> NodeOutput:
        raise NotImplementedError(f"{cls.__name__} defines no execute()")

    @classmethod
    def validate_inputs(cls, **kwargs: Any) -> bool | str:
        raise NotImplementedError

    @classmethod
    def fingerprint_inputs(cls, **kwargs: Any) -> Any:
        raise NotImplementedError

    @classmethod
    def check_lazy_status(cls, **kwargs: Any) -> list[str]:
        return [name for name, value in kwargs.items() if value is None]

    @classmethod
    def GET_SCHEMA(cls) -> Schema:
        schema = cls.define_schema().finalize()
        schema.validate()
        return schema

    # ComfyUI also lets V3 classes sit in NODE_CLASS_MAPPINGS; these attributes
    # let Loom's V1 path compile them there (the entry point uses loom_compat.v3).
    @classmethod
    def INPUT_TYPES(cls) -> dict[str, Any]:
        from loom_compat.v3 import v1_input_types

        return v1_input_types(cls.GET_SCHEMA())

    RETURN_TYPES = _ClassProperty(lambda cls: tuple(o.io_type for o in cls.GET_SCHEMA().outputs))
    RETURN_NAMES = _ClassProperty(lambda cls: tuple(o.display_name or o.io_type for o in cls.GET_SCHEMA().outputs))
    OUTPUT_IS_LIST = _ClassProperty(lambda cls: tuple(o.is_output_list for o in cls.GET_SCHEMA().outputs))
    CATEGORY = _ClassProperty(lambda cls: cls.GET_SCHEMA().category)
    DESCRIPTION = _ClassProperty(lambda cls: cls.GET_SCHEMA().description)
    OUTPUT_NODE = _ClassProperty(lambda cls: cls.GET_SCHEMA().is_output_node)
    INPUT_IS_LIST = _ClassProperty(lambda cls: cls.GET_SCHEMA().is_input_list)
    NOT_IDEMPOTENT = _ClassProperty(lambda cls: cls.GET_SCHEMA().not_idempotent)
    FUNCTION = "EXECUTE_V1"

    def EXECUTE_V1(self, **kwargs: Any) -> Any:
        from loom_compat.v3 import execute_as_v1

        return execute_as_v1(type(self), kwargs)


# The dynamic input kinds (loom_compat.v3_dynamic compiles them to plain inputs).
from loom_compat.v3_dynamic import Autogrow, DynamicCombo, MatchType, MultiType  # noqa: E402

__all__ = [
    "Autogrow", "DynamicCombo", "MatchType", "MultiType",
    "FolderType", "UploadType", "NumberDisplay", "Hidden", "HiddenHolder", "Input", "WidgetInput", "Output",
    "ComfyTypeI", "ComfyTypeIO", "comfytype", "Custom", "Boolean", "Int", "Float", "String", "Combo",
    "Image", "Mask", "Latent", "Conditioning", "Sampler", "Sigmas", "Noise", "Guider", "Clip", "ControlNet",
    "Vae", "Model", "ClipVision", "ClipVisionOutput", "StyleModel", "Gligen", "UpscaleModel", "LoraModel",
    "Audio", "Video", "Hooks", "Point", "FaceAnalysis", "BBOX", "SEGS", "AnyType", "Schema", "ComfyNode",
    "NodeOutput",
]
