"""The default txt2img API prompt through the engine's Executor with the built-in nodes."""

from __future__ import annotations

from PIL import Image

from tests.diffusion.conftest import install, run_graph, saved_images, txt2img_prompt


def test_default_txt2img_prompt_saves_a_png(tiny, env):
    outcome = run_graph(env, txt2img_prompt(install(env, tiny("sd1")), batch=2))
    assert outcome.status == "success", outcome.error
    files = saved_images(env, outcome)
    assert len(files) == 2 and all(Image.open(f).size == (64, 64) for f in files)


def test_sampling_reports_every_step_with_a_jpeg_preview(tiny, env):
    events = []
    run_graph(env, txt2img_prompt(install(env, tiny("sd1")), steps=3), events)
    progress = [e for e in events if e.type == "progress"]
    previews = [e for e in events if e.type == "preview"]
    assert [(p.value, p.max) for p in progress] == [(1, 3), (2, 3), (3, 3)]
    assert len(previews) == 3 and all(p.image_format == "JPEG" and p.image[:2] == b"\xff\xd8" for p in previews)


def test_previews_are_off_when_preview_method_is_none(tiny, tmp_path):
    from nodes.runtime import LoomEnv

    env = LoomEnv.at(tmp_path / "loom", device="cpu", preview_method="none")
    env.folders.ensure()
    events = []
    run_graph(env, txt2img_prompt(install(env, tiny("sd1")), steps=2), events)
    assert not [e for e in events if e.type == "preview"] and [e for e in events if e.type == "progress"]


def test_interrupt_during_sampling_stops_at_the_next_step(tiny, env):
    from engine.interrupt import InterruptFlag

    flag = InterruptFlag()

    class InterruptOnFirstStep(list):
        def append(self, event):
            super().append(event)
            if event.type == "progress":
                flag.set()

    events = InterruptOnFirstStep()
    outcome = run_graph(env, txt2img_prompt(install(env, tiny("sd1")), steps=4), events, interrupt=flag)
    assert outcome.status == "interrupted"
    assert [e.value for e in events if e.type == "progress"] == [1]


def test_sdxl_and_sd2_checkpoints_run_the_same_graph(tiny, env):
    for kind in ("sdxl", "sd2_v"):
        outcome = run_graph(env, txt2img_prompt(install(env, tiny(kind)), steps=2))
        assert outcome.status == "success", (kind, outcome.error)


def test_importing_the_model_nodes_does_not_import_torch():
    import subprocess
    import sys

    code = ("import sys, nodes.loaders, nodes.conditioning, nodes.sampling, nodes.latent; "
            "print('torch' in sys.modules or 'diffusers' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
