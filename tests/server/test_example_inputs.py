"""A fresh install's input folder holds the images the shipped workflows load,
so the model-free example runs straight away; a used folder is left alone."""

from __future__ import annotations

from server.routes_editor import EXAMPLE_INPUTS, provide_example_inputs


def shipped_names():
    return sorted(p.name for p in EXAMPLE_INPUTS.glob("*.png"))


async def test_a_new_server_puts_the_example_images_in_its_input_folder(running):
    server = await running()
    copied = sorted(p.name for p in (server.base / "input").iterdir())
    assert copied == shipped_names() and copied
    for name in copied:
        assert (server.base / "input" / name).read_bytes() == (EXAMPLE_INPUTS / name).read_bytes()


def test_an_input_folder_already_in_use_is_left_as_it_is(tmp_path):
    (tmp_path / "input").mkdir()
    (tmp_path / "input" / "mine.png").write_bytes(b"the user's")
    assert provide_example_inputs(tmp_path / "input") == []
    assert [p.name for p in (tmp_path / "input").iterdir()] == ["mine.png"]


def test_an_empty_input_folder_gets_the_examples(tmp_path):
    (tmp_path / "input").mkdir()
    assert provide_example_inputs(tmp_path / "input") == shipped_names()
