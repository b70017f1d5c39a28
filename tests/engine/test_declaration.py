"""Both declaration styles compile to one schema; /object_info is generated from it."""

from __future__ import annotations

from dataclasses import replace

from engine.comfy_v1 import compile_v1
from engine.declare import Combo, Float, Int, Socket, String, node
from engine.executor import Executor
from engine.node import NodeContext, NodeOutput
from engine.object_info import object_info, object_info_for
from engine.registry import Registry

IMAGE = Socket("IMAGE")
MASK = Socket("MASK")


class BlurV1:
    """A ComfyUI V1 node, written as custom-node packs write them."""

    DESCRIPTION = "Blurs an image."
    CATEGORY = "image/filters"
    RETURN_TYPES = ("IMAGE", "MASK")
    RETURN_NAMES = ("image", "mask")
    FUNCTION = "blur"

    @classmethod
    def INPUT_TYPES(cls):
        return {
            "required": {
                "image": ("IMAGE",),
                "radius": ("INT", {"default": 3, "min": 1, "max": 64, "step": 1}),
                "sigma": ("FLOAT", {"default": 1.0, "min": 0.1, "max": 10.0, "step": 0.1, "round": 0.01}),
                "mode": (["gaussian", "box"], {"default": "gaussian"}),
            },
            "optional": {"note": ("STRING", {"default": "", "multiline": True})},
            "hidden": {"prompt": "PROMPT", "unique_id": "UNIQUE_ID"},
        }

    def blur(self, image, radius, sigma, mode, note="", prompt=None, unique_id=None):
        return (image, None)


@node(category="image/filters", display_name="BlurTyped", description="Blurs an image.",
      output_names=("image", "mask"))
def BlurTyped(
    image: IMAGE,
    radius: int = Int(3, min=1, max=64, step=1),
    sigma: float = Float(1.0, min=0.1, max=10.0, step=0.1, round=0.01),
    mode: str = Combo(["gaussian", "box"], default="gaussian"),
    note: str | None = String("", multiline=True),
) -> tuple[IMAGE, MASK]:
    return image, None


def test_both_styles_compile_to_the_same_schema():
    v1 = compile_v1(BlurV1, "Blur").schema()
    typed = BlurTyped.schema()
    visible = tuple(spec for spec in v1.inputs if spec.section != "hidden")
    assert replace(v1, inputs=visible, class_type="x", display_name="x", python_module="m") == \
        replace(typed, class_type="x", display_name="x", python_module="m")


def test_v1_hidden_inputs_are_in_the_schema():
    schema = compile_v1(BlurV1, "Blur").schema()
    assert [(s.name, s.type) for s in schema.section("hidden")] == [("prompt", "PROMPT"), ("unique_id", "UNIQUE_ID")]


def test_object_info_has_comfyui_shape():
    registry = Registry()
    registry.add(compile_v1(BlurV1, "Blur", "Blur Image", module="custom_nodes.blur"))
    info = object_info(registry)["Blur"]
    assert info == {
        "input": {
            "required": {
                "image": ["IMAGE"],
                "radius": ["INT", {"default": 3, "min": 1, "max": 64, "step": 1}],
                "sigma": ["FLOAT", {"default": 1.0, "min": 0.1, "max": 10.0, "step": 0.1, "round": 0.01}],
                "mode": [["gaussian", "box"], {"default": "gaussian"}],
            },
            "optional": {"note": ["STRING", {"default": "", "multiline": True}]},
            "hidden": {"prompt": "PROMPT", "unique_id": "UNIQUE_ID"},
        },
        "input_order": {"required": ["image", "radius", "sigma", "mode"], "optional": ["note"],
                        "hidden": ["prompt", "unique_id"]},
        "output": ["IMAGE", "MASK"],
        "output_is_list": [False, False],
        "output_name": ["image", "mask"],
        "name": "Blur",
        "display_name": "Blur Image",
        "description": "Blurs an image.",
        "python_module": "custom_nodes.blur",
        "category": "image/filters",
        "output_node": False,
    }


def test_object_info_for_one_class_and_for_an_unknown_one():
    registry = Registry()
    registry.add(BlurTyped)
    assert list(object_info_for(registry, "BlurTyped")) == ["BlurTyped"]
    assert object_info_for(registry, "Nope") is None


def test_combo_options_are_read_from_the_host_env_on_every_request():
    @node(category="loaders")
    def Loader(name: str = Combo(lambda env: env["files"])) -> int:
        return 0

    registry = Registry(env={"files": ["a.safetensors"]})
    registry.add(Loader)
    assert object_info(registry)["Loader"]["input"]["required"]["name"] == [["a.safetensors"]]
    registry.env["files"] = ["a.safetensors", "b.safetensors"]
    assert object_info(registry)["Loader"]["input"]["required"]["name"] == [["a.safetensors", "b.safetensors"]]


def test_widget_options_pass_through_to_object_info():
    class Uploader:
        RETURN_TYPES = ("IMAGE",)
        FUNCTION = "load"

        @classmethod
        def INPUT_TYPES(cls):
            return {"required": {"image": (["a.png"], {"image_upload": True}),
                                 "seed": ("INT", {"default": 0, "control_after_generate": True,
                                                  "tooltip": "noise seed"})}}

    info = object_info_for(_registry(compile_v1(Uploader, "Uploader")), "Uploader")["Uploader"]
    assert info["input"]["required"]["image"] == [["a.png"], {"image_upload": True}]
    assert info["input"]["required"]["seed"] == ["INT", {"default": 0, "tooltip": "noise seed",
                                                         "control_after_generate": True}]


def _registry(*definitions):
    registry = Registry()
    registry.add_all(definitions)
    return registry


class Counter:
    """A V1 output node using hidden inputs and returning {"ui", "result"}."""

    RETURN_TYPES = ("INT",)
    OUTPUT_NODE = True
    FUNCTION = "run"
    CATEGORY = "test"

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"start": ("INT", {"default": 0})},
                "hidden": {"prompt": "PROMPT", "extra_pnginfo": "EXTRA_PNGINFO", "unique_id": "UNIQUE_ID"}}

    def __init__(self):
        self.runs = 0

    def run(self, start, prompt, extra_pnginfo, unique_id):
        self.runs += 1
        return {"ui": {"text": [f"{unique_id}:{start}:{self.runs}:{sorted(prompt)}:{extra_pnginfo}"]},
                "result": (start + 1,)}


def test_a_v1_node_returning_ui_and_result_runs_with_hidden_inputs():
    registry = _registry(compile_v1(Counter, "Counter"))
    outcome = Executor(registry).execute(
        {"7": {"class_type": "Counter", "inputs": {"start": 4}}},
        prompt_id="p", extra_data={"extra_pnginfo": {"workflow": "w"}})
    assert outcome.outputs == {"7": {"text": ["7:4:1:['7']:{'workflow': 'w'}"]}}


def test_v1_instances_are_kept_per_node_between_prompts():
    registry = _registry(compile_v1(Counter, "Counter"))
    executor = Executor(registry)
    executor.execute({"7": {"class_type": "Counter", "inputs": {"start": 4}}}, prompt_id="a")
    outcome = executor.execute({"7": {"class_type": "Counter", "inputs": {"start": 5}}}, prompt_id="b")
    assert outcome.outputs["7"]["text"][0].startswith("7:5:2:")


class LazyPick:
    RETURN_TYPES = ("INT",)
    FUNCTION = "pick"

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"first": ("INT", {"lazy": True}), "second": ("INT", {"lazy": True}),
                             "use_second": ("BOOLEAN", {"default": False})}}

    def check_lazy_status(self, first, second, use_second):
        return ["second"] if use_second else ["first"]

    def pick(self, first, second, use_second):
        return (second if use_second else first,)


class V1Show:
    RETURN_TYPES = ()
    OUTPUT_NODE = True
    FUNCTION = "show"
    INPUT_IS_LIST = False

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"value": ("*",)}}

    def show(self, value):
        return {"ui": {"value": [value]}}


class FailingWhenRun:
    RETURN_TYPES = ("INT",)
    FUNCTION = "run"

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {}}

    def run(self):
        raise AssertionError("the lazy branch that was not asked for ran")


def test_v1_check_lazy_status_skips_the_unneeded_branch():
    registry = _registry(compile_v1(LazyPick, "LazyPick"), compile_v1(V1Show, "V1Show"),
                         compile_v1(FailingWhenRun, "FailingWhenRun"))
    registry.add(compile_v1(type("Seven", (), {
        "RETURN_TYPES": ("INT",), "FUNCTION": "f", "INPUT_TYPES": classmethod(lambda c: {"required": {}}),
        "f": lambda self: (7,)}), "Seven"))
    prompt = {"1": {"class_type": "Seven", "inputs": {}},
              "2": {"class_type": "FailingWhenRun", "inputs": {}},
              "3": {"class_type": "LazyPick", "inputs": {"first": ["1", 0], "second": ["2", 0], "use_second": False}},
              "4": {"class_type": "V1Show", "inputs": {"value": ["3", 0]}}}
    outcome = Executor(registry).execute(prompt, prompt_id="p")
    assert outcome.status == "success", outcome.error
    assert outcome.outputs["4"] == {"value": [7]}


def test_a_typed_node_receives_its_context():
    seen = []

    @node(category="test", output_node=True)
    def WhoAmI(ctx: NodeContext) -> None:
        seen.append((ctx.node_id, ctx.prompt_id))
        return NodeOutput(ui={"id": [ctx.node_id]})

    Executor(_registry(WhoAmI)).execute({"3": {"class_type": "WhoAmI", "inputs": {}}}, prompt_id="p")
    assert seen == [("3", "p")]


def test_a_v1_class_without_return_types_is_rejected_when_compiled():
    class Broken:
        FUNCTION = "f"

        @classmethod
        def INPUT_TYPES(cls):
            return {}

    try:
        compile_v1(Broken, "Broken")
    except TypeError as exc:
        assert "RETURN_TYPES" in str(exc)
    else:
        raise AssertionError("compiling a class without RETURN_TYPES should fail")
