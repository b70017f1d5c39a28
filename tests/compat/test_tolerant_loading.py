"""A pack loads even when it touches ComfyUI names Loom lacks, exits at import,
or has one node Loom cannot compile: what is missing fails when used, and the
start-up summary says, per pack, what was skipped and what is a placeholder."""

from __future__ import annotations

import sys
import textwrap
from pathlib import Path

import pytest

import nodes
from engine.executor import Executor
from engine.plugins import load_plugins
from engine.registry import Registry
from nodes.runtime import LoomEnv
from server.host import install_comfy_compat

PLACEHOLDER_PACK = '''
import comfy.hooks
import comfy.ldm.modules.attention as attention
import comfy.model_management as mm
import execution
from app.user_manager import UserManager
from comfy.model_patcher import ModelPatcher
from comfy.utils import not_a_loom_helper
from comfy_extras.nodes_not_in_loom import FancyNode


class PatchedAttention(attention.CrossAttention):
    """Subclassing a placeholder is fine until it is instantiated."""

    def __init__(self, dim):
        super().__init__(dim)


class Plain:
    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"x": ("INT", {"default": 1})}}

    RETURN_TYPES = ("INT",)
    FUNCTION = "run"
    CATEGORY = "placeholder_pack"

    def run(self, x):
        return (x + 1,)


class NeedsPatcher:
    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"x": ("INT", {"default": 1})}}

    RETURN_TYPES = ("INT",)
    FUNCTION = "run"
    CATEGORY = "placeholder_pack"

    def run(self, x):
        ModelPatcher(x)  # not provided: fails here, not at import
        return (x,)


class BuildsAttention(Plain):
    def run(self, x):
        PatchedAttention(x)
        return (x,)


NODE_CLASS_MAPPINGS = {"Plain": Plain, "NeedsPatcher": NeedsPatcher, "BuildsAttention": BuildsAttention}
'''

BAD_NODE_PACK = '''
class Fine:
    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"text": ("STRING", {"default": "a"})}}

    RETURN_TYPES = ("STRING",)
    RETURN_NAMES = ("text",)  # an output named like its input, as ComfyUI allows
    FUNCTION = "run"
    CATEGORY = "bad_node_pack"

    def run(self, text):
        return (text * 2,)


class NoFunction:
    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {}}

    RETURN_TYPES = ("STRING",)


class BrokenInputs:
    @classmethod
    def INPUT_TYPES(cls):
        raise RuntimeError("needs a model list from a service")

    RETURN_TYPES = ("STRING",)
    FUNCTION = "run"


class TwoOutputs:
    """Declares two outputs, returns one: fine while the second is unconnected."""

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"text": ("STRING", {"default": "a"})}}

    RETURN_TYPES = ("STRING", "INT")
    FUNCTION = "run"
    CATEGORY = "bad_node_pack"

    def run(self, text):
        return (text.upper(),)


NODE_CLASS_MAPPINGS = {"Fine": Fine, "NoFunction": NoFunction, "BrokenInputs": BrokenInputs,
                       "TwoOutputs": TwoOutputs}
'''

FINE_PACK = '''
class Hello:
    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {}}

    RETURN_TYPES = ("STRING",)
    FUNCTION = "run"

    def run(self):
        return ("hello",)


NODE_CLASS_MAPPINGS = {"Hello": Hello}
'''

PACK_NAMES = ("placeholder_pack", "bad_node_pack", "exiting_pack", "interrupting_pack", "fine_pack",
              "prestartup_exit_pack")


@pytest.fixture
def host(tmp_path: Path):
    registry = Registry(env=LoomEnv.at(tmp_path, device="cpu"))
    registry.add_all(nodes.builtin_nodes(), origin="builtin")
    install_comfy_compat(registry)
    yield registry
    for name in list(sys.modules):
        if name.split(".")[0] in PACK_NAMES:
            del sys.modules[name]


def write_pack(folder: Path, name: str, source: str, **files: str) -> None:
    pack = folder / name
    pack.mkdir(parents=True)
    (pack / "__init__.py").write_text(textwrap.dedent(source))
    for filename, text in files.items():
        (pack / filename).write_text(textwrap.dedent(text))


def run(registry: Registry, prompt: dict) -> object:
    return Executor(registry).execute(prompt, prompt_id="p")


def test_a_pack_importing_names_loom_lacks_loads_and_the_summary_lists_them(host, tmp_path):
    write_pack(tmp_path / "custom_nodes", "placeholder_pack", PLACEHOLDER_PACK)
    report = load_plugins(host, [tmp_path / "custom_nodes"])
    (loaded,) = report.loaded
    assert loaded.nodes == ["Plain", "NeedsPatcher", "BuildsAttention"]
    assert set(loaded.unprovided) >= {
        "comfy.hooks", "comfy.ldm.modules.attention.CrossAttention", "execution", "app.user_manager.UserManager",
        "comfy.model_patcher.ModelPatcher", "comfy.utils.not_a_loom_helper",
        "comfy_extras.nodes_not_in_loom.FancyNode"}
    summary = report.summary()
    assert "not provided by Loom (fails when used): " in summary
    assert "comfy.model_patcher.ModelPatcher" in summary


def test_a_placeholder_fails_when_a_node_calls_it_naming_the_name_pack_and_node(host, tmp_path):
    write_pack(tmp_path / "custom_nodes", "placeholder_pack", PLACEHOLDER_PACK)
    load_plugins(host, [tmp_path / "custom_nodes"])
    ok = run(host, {"1": {"class_type": "Plain", "inputs": {"x": 2}},
                    "2": {"class_type": "PreviewAny", "inputs": {"source": ["1", 0]}}})
    assert ok.outputs["2"] == {"text": ["3"]}
    failed = run(host, {"1": {"class_type": "NeedsPatcher", "inputs": {"x": 2}},
                        "2": {"class_type": "PreviewAny", "inputs": {"source": ["1", 0]}}})
    assert failed.status == "error"
    assert failed.error.exception_type.endswith("NotImplementedError")
    assert failed.error.exception_message == (
        "Loom does not provide comfy.model_patcher.ModelPatcher; used by placeholder_pack/NeedsPatcher")


def test_a_subclass_of_a_placeholder_fails_only_when_instantiated(host, tmp_path):
    write_pack(tmp_path / "custom_nodes", "placeholder_pack", PLACEHOLDER_PACK)
    load_plugins(host, [tmp_path / "custom_nodes"])
    failed = run(host, {"1": {"class_type": "BuildsAttention", "inputs": {"x": 2}},
                        "2": {"class_type": "PreviewAny", "inputs": {"source": ["1", 0]}}})
    assert failed.error.exception_message == (
        "Loom does not provide comfy.ldm.modules.attention.CrossAttention; used by placeholder_pack/BuildsAttention")


def test_one_node_loom_cannot_compile_is_skipped_and_the_rest_of_its_pack_registers(host, tmp_path, caplog):
    write_pack(tmp_path / "custom_nodes", "bad_node_pack", BAD_NODE_PACK)
    report = load_plugins(host, [tmp_path / "custom_nodes"])
    (loaded,) = report.loaded
    assert loaded.nodes == ["Fine", "TwoOutputs"]
    assert {s.class_type: s.reason for s in loaded.skipped} == {
        "NoFunction": "TypeError: node class 'NoFunction' has no FUNCTION",
        "BrokenInputs": "RuntimeError: needs a model list from a service"}
    assert "skipped node BrokenInputs: RuntimeError: needs a model list from a service" in report.summary()
    assert "custom node pack 'bad_node_pack': node 'NoFunction' skipped" in caplog.text
    assert "Fine" in host and "NoFunction" not in host


def test_a_node_may_return_fewer_values_while_the_missing_outputs_are_unconnected(host, tmp_path):
    write_pack(tmp_path / "custom_nodes", "bad_node_pack", BAD_NODE_PACK)
    load_plugins(host, [tmp_path / "custom_nodes"])
    ok = run(host, {"1": {"class_type": "TwoOutputs", "inputs": {"text": "ab"}},
                    "2": {"class_type": "PreviewAny", "inputs": {"source": ["1", 0]}}})
    assert ok.status == "success", ok.error
    assert ok.outputs["2"] == {"text": ["AB"]}
    wired = run(host, {"1": {"class_type": "TwoOutputs", "inputs": {"text": "ab"}},
                       "2": {"class_type": "PreviewAny", "inputs": {"source": ["1", 1]}}})
    assert wired.status == "error"
    assert "returned 1 value(s) but declares 2 output(s)" in wired.error.exception_message


def test_sys_exit_or_keyboard_interrupt_in_a_pack_is_reported_and_start_up_goes_on(host, tmp_path):
    folder = tmp_path / "custom_nodes"
    write_pack(folder, "exiting_pack", "import sys\nsys.exit(2)\n")
    write_pack(folder, "interrupting_pack", "raise KeyboardInterrupt\n")
    write_pack(folder, "prestartup_exit_pack", "NODE_CLASS_MAPPINGS = {}\n",
               **{"prestartup_script.py": "import sys\nsys.exit('no GPU')\n"})
    write_pack(folder, "fine_pack", FINE_PACK)
    report = load_plugins(host, [folder])
    assert [p.name for p in report.loaded] == ["fine_pack"]
    failed = {p.name: p.error for p in report.failed}
    assert failed == {"exiting_pack": "it called sys.exit(2)",
                      "interrupting_pack": "it raised KeyboardInterrupt",
                      "prestartup_exit_pack": "prestartup_script failed: it called sys.exit('no GPU')"}
    assert "FAILED  exiting_pack: it called sys.exit(2)" in report.summary()


DYNAMIC_V3_PACK = '''
from comfy_api.latest import ComfyExtension, io


class SumAll(io.ComfyNode):
    @classmethod
    def define_schema(cls):
        template = io.Autogrow.TemplatePrefix(io.Int.Input("value"), prefix="value", min=2, max=5)
        return io.Schema(node_id="DynSumAll", category="dyn", accept_all_inputs=True,
                         inputs=[io.Autogrow.Input("values", template=template)],
                         outputs=[io.Int.Output("values")])  # an output sharing its input's id

    @classmethod
    def execute(cls, values):
        return io.NodeOutput(sum(values.values()))


class Arith(io.ComfyNode):
    @classmethod
    def define_schema(cls):
        return io.Schema(node_id="DynArith", category="dyn", inputs=[
            io.Int.Input("x", default=1),
            io.DynamicCombo.Input("op", options=[
                io.DynamicCombo.Option("add", [io.Int.Input("amount", default=1)]),
                io.DynamicCombo.Option("scale", [io.Float.Input("factor", default=2.0)]),
            ])], outputs=[io.Float.Output()])

    @classmethod
    def execute(cls, x, op):
        if op["op"] == "add":
            return io.NodeOutput(float(x + op["amount"]))
        return io.NodeOutput(x * op["factor"])


class PassSame(io.ComfyNode):
    @classmethod
    def define_schema(cls):
        template = io.MatchType.Template("T", allowed_types=[io.Int, io.Float])
        return io.Schema(node_id="DynPassSame", category="dyn",
                         inputs=[io.MatchType.Input("value", template=template),
                                 io.MultiType.Input("label", types=[io.String, io.Int], optional=True)],
                         outputs=[io.MatchType.Output(template)])

    @classmethod
    def execute(cls, value, label=None):
        return io.NodeOutput(value)


class Extension(ComfyExtension):
    async def get_node_list(self):
        return [SumAll, Arith, PassSame]


async def comfy_entrypoint():
    return Extension()
'''


def test_v3_dynamic_inputs_compile_and_reach_execute_in_comfyuis_shape(host, tmp_path):
    from loom_compat.v3 import v3_adapter

    write_pack(tmp_path / "custom_nodes", "dynamic_v3_pack", DYNAMIC_V3_PACK)
    try:
        report = load_plugins(host, [tmp_path / "custom_nodes"], adapters=[v3_adapter])
        assert report.loaded[0].nodes == ["DynSumAll", "DynArith", "DynPassSame"], report.summary()
        schema = host.schema("DynSumAll")
        assert [(i.name, i.section) for i in schema.inputs] == [
            ("values.value0", "required"), ("values.value1", "required"), ("values.value2", "optional"),
            ("values.value3", "optional"), ("values.value4", "optional")]
        assert host.schema("DynPassSame").inputs[0].type == "INT,FLOAT"
        assert host.schema("DynPassSame").inputs[1].type == "STRING,INT"
        assert host.schema("DynPassSame").outputs[0].type == "INT,FLOAT"
        outcome = run(host, {
            "1": {"class_type": "DynSumAll", "inputs": {"values.value0": 4, "values.value1": 5, "values.value2": 6}},
            "2": {"class_type": "DynArith", "inputs": {"x": ["1", 0], "op": "add", "op.amount": 10}},
            "3": {"class_type": "DynArith", "inputs": {"x": ["1", 0], "op": "scale", "op.factor": 0.5}},
            "4": {"class_type": "DynPassSame", "inputs": {"value": ["2", 0]}},
            "5": {"class_type": "PreviewAny", "inputs": {"source": ["4", 0]}},
            "6": {"class_type": "PreviewAny", "inputs": {"source": ["3", 0]}}})
        assert outcome.status == "success", outcome.error
        assert outcome.outputs["5"] == {"text": ["25.0"]} and outcome.outputs["6"] == {"text": ["7.5"]}
    finally:
        sys.modules.pop("dynamic_v3_pack", None)
