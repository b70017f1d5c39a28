"""The built-in node collection: complete, registrable, and free of torch at import."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

import nodes
from engine.object_info import object_info
from engine.registry import Registry

REPO = Path(__file__).resolve().parents[2]

BASIC_NODES = {
    "PrimitiveInt", "PrimitiveFloat", "PrimitiveString", "PrimitiveStringMultiline", "PrimitiveBoolean",
    "StringConcatenate", "StringReplace", "PreviewAny", "IntMath", "FloatMath",
    "LoadImage", "SaveImage", "PreviewImage",
    "ImageScale", "ImageScaleBy", "ImageInvert", "ImageBatch", "ImageBlend",
}


def run_python(code: str) -> None:
    subprocess.run([sys.executable, "-c", code], check=True, cwd=REPO)


def test_importing_nodes_does_not_import_torch():
    run_python("import nodes, sys; assert 'torch' not in sys.modules, 'torch imported'")


def test_collecting_and_describing_the_nodes_does_not_import_torch_pil_or_numpy():
    run_python(
        "import sys, tempfile, nodes\n"
        "from engine.registry import Registry\n"
        "from engine.object_info import object_info\n"
        "from nodes.runtime import LoomEnv\n"
        "registry = Registry(env=LoomEnv.at(tempfile.mkdtemp()))\n"
        "registry.add_all(nodes.builtin_nodes())\n"
        "object_info(registry)\n"
        "heavy = {'torch', 'PIL', 'numpy', 'diffusers', 'transformers'} & set(sys.modules)\n"
        "assert not heavy, heavy\n"
    )


def test_every_basic_node_is_built_in_once():
    names = [definition.class_type for definition in nodes.builtin_nodes()]
    assert BASIC_NODES <= set(names)
    assert len(names) == len(set(names))


def test_the_built_in_nodes_register_and_describe_themselves(env):
    registry = Registry(env=env)
    registry.add_all(nodes.builtin_nodes())
    info = object_info(registry)
    assert BASIC_NODES <= set(info)
    assert info["SaveImage"]["output_node"] is True
    assert info["ImageScale"]["input"]["required"]["upscale_method"][0] == [
        "nearest-exact", "bilinear", "area", "bicubic", "lanczos"]


def test_a_listed_node_module_that_does_not_exist_is_an_error_naming_it(monkeypatch):
    # every built-in module exists now: a missing one is a packaging mistake, not a skip
    monkeypatch.setattr(nodes, "NODE_MODULES", ("nodes.primitives", "nodes.not_written_yet"))
    with pytest.raises(ModuleNotFoundError) as caught:
        nodes.builtin_nodes()
    assert caught.value.name == "nodes.not_written_yet"


def test_a_node_modules_nodes_are_the_definitions_it_declares_in_order():
    import nodes.math

    assert [d.class_type for d in nodes.builtin_nodes() if d.class_type in ("IntMath", "FloatMath")] == \
        ["IntMath", "FloatMath"]


def test_an_import_error_inside_an_existing_node_module_is_not_hidden(tmp_path, monkeypatch):
    (tmp_path / "broken_node_module.py").write_text("import no_such_dependency_anywhere\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setattr(nodes, "NODE_MODULES", ("broken_node_module",))
    with pytest.raises(ModuleNotFoundError) as caught:
        nodes.builtin_nodes()
    assert caught.value.name == "no_such_dependency_anywhere"
