"""The ComfyUI modules themselves, bound to a host without a server."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

import nodes
from engine.registry import Registry
from nodes.folders import UnsafePath
from nodes.runtime import LoomEnv
from server.host import install_comfy_compat


@pytest.fixture
def host(tmp_path: Path):
    registry = Registry(env=LoomEnv.at(tmp_path, device="cpu"))
    registry.add_all(nodes.builtin_nodes(), origin="builtin")
    install_comfy_compat(registry)
    registry.env.folders.ensure()
    return registry


# -- folder_paths -------------------------------------------------------------------------


def test_get_full_path_is_none_for_a_missing_model_or_a_name_leaving_the_folder(host):
    import folder_paths

    assert folder_paths.get_full_path("checkpoints", "nope.safetensors") is None
    assert folder_paths.get_full_path("checkpoints", "../../etc/passwd") is None


def test_get_full_path_or_raise_names_the_missing_file(host):
    import folder_paths

    with pytest.raises(FileNotFoundError, match="nope.safetensors"):
        folder_paths.get_full_path_or_raise("checkpoints", "nope.safetensors")


def test_add_model_folder_path_makes_its_files_listed_and_found(host, tmp_path):
    import folder_paths

    extra = tmp_path / "shared_loras"
    extra.mkdir()
    (extra / "style.safetensors").write_bytes(b"x")
    folder_paths.add_model_folder_path("loras", str(extra))
    assert str(extra) in folder_paths.get_folder_paths("loras")
    assert folder_paths.get_filename_list("loras") == ["style.safetensors"]
    assert folder_paths.get_full_path("loras", "style.safetensors") == str(extra / "style.safetensors")


def test_a_pack_declared_folder_kind_lists_only_its_extensions(host, tmp_path):
    import folder_paths

    own = tmp_path / "ipadapter"
    own.mkdir()
    (own / "a.bin").write_bytes(b"x")
    (own / "b.safetensors").write_bytes(b"x")
    folder_paths.folder_names_and_paths["ipadapter"] = ([str(own)], {".bin"})
    assert "ipadapter" in folder_paths.folder_names_and_paths
    assert folder_paths.get_filename_list("ipadapter") == ["a.bin"]


def test_appending_to_folder_names_and_paths_adds_a_search_folder(host, tmp_path):
    import folder_paths

    extra = tmp_path / "more_vae"
    extra.mkdir()
    (extra / "v.pt").write_bytes(b"x")
    folder_paths.folder_names_and_paths["vae"][0].append(str(extra))
    assert folder_paths.get_filename_list("vae") == ["v.pt"]


def test_module_globals_follow_the_host_folders(host):
    import folder_paths

    assert folder_paths.models_dir == str(host.env.folders.models)
    assert folder_paths.get_output_directory() == str(host.env.folders.output)
    assert ".safetensors" in folder_paths.supported_pt_extensions


def test_annotated_file_paths_pick_their_folder_and_refuse_escapes(host):
    import folder_paths

    folders = host.env.folders
    assert folder_paths.get_annotated_filepath("a.png [output]") == str(folders.output.resolve() / "a.png")
    assert folder_paths.get_annotated_filepath("a.png") == str(folders.input.resolve() / "a.png")
    (folders.temp / "t.png").write_bytes(b"x")
    assert folder_paths.exists_annotated_filepath("t.png [temp]")
    with pytest.raises(UnsafePath):
        folder_paths.get_annotated_filepath("../secret.png [output]")


def test_get_save_image_path_returns_comfyui_tuple_and_refuses_escaping_prefixes(host):
    import folder_paths

    out = folder_paths.get_output_directory()
    folder, filename, counter, subfolder, prefix = folder_paths.get_save_image_path("run/img_%width%", out, 64, 32)
    assert (filename, counter, subfolder, prefix) == ("img_64", 1, "run", "run/img_64")
    assert folder == str(Path(out) / "run")
    with pytest.raises(ValueError):
        folder_paths.get_save_image_path("../outside", out)


def test_an_attribute_folder_paths_lacks_is_a_placeholder_failing_when_called(host):
    import folder_paths

    missing = folder_paths.cache_helper_not_in_loom  # reading it is fine (packs do at import)
    with pytest.raises(NotImplementedError, match="Loom does not provide folder_paths.cache_helper_not_in_loom"):
        missing()
    with pytest.raises(AttributeError):
        folder_paths.__not_a_dunder__  # probes for private names still fail as usual


# -- comfy.* ---------------------------------------------------------------------------------


def test_load_torch_file_reads_safetensors(host, tmp_path):
    import torch
    from safetensors.torch import save_file

    import comfy.utils

    path = tmp_path / "w.safetensors"
    save_file({"w": torch.ones(2)}, str(path))
    assert torch.equal(comfy.utils.load_torch_file(str(path))["w"], torch.ones(2))


def test_load_torch_file_refuses_pickled_code(host, tmp_path):
    import pickle

    import torch

    import comfy.utils

    path = tmp_path / "evil.pt"
    torch.save({"w": torch.ones(1), "obj": Path("x")}, str(path))
    with pytest.raises(pickle.UnpicklingError):
        comfy.utils.load_torch_file(str(path))


def test_common_upscale_center_crop_keeps_the_aspect_ratio(host):
    import torch

    import comfy.utils

    samples = torch.arange(2 * 4.0).reshape(1, 1, 2, 4)
    out = comfy.utils.common_upscale(samples, 2, 2, "nearest-exact", "center")
    assert out.shape == (1, 1, 2, 2)
    assert out[0, 0].tolist() == [[1.0, 2.0], [5.0, 6.0]]


def test_interrupt_processing_exception_is_the_engines_interrupt(host):
    from comfy.model_management import InterruptProcessingException
    from engine.node import Interrupted

    assert issubclass(InterruptProcessingException, Interrupted)


def test_the_torch_device_is_the_memory_managers(host):
    import comfy.model_management as mm

    assert mm.get_torch_device() == host.env.models.device
    assert str(mm.intermediate_device()) == "cpu"


def test_sampler_and_scheduler_names_come_from_loom_sampler_table(host):
    from comfy.samplers import KSampler
    from diffusion.k_steps import SAMPLER_NAMES
    from diffusion.sigma_schedules import SCHEDULER_NAMES

    assert KSampler.SAMPLERS == list(SAMPLER_NAMES)
    assert KSampler.SCHEDULERS == list(SCHEDULER_NAMES)
    assert "euler" in KSampler.SAMPLERS and "karras" in KSampler.SCHEDULERS


def test_io_any_is_the_wildcard_that_matches_every_type(host):
    from comfy.comfy_types import IO
    from engine.schema import types_compatible

    assert IO.ANY == "*" and IO.IMAGE == "IMAGE"
    assert types_compatible(str(IO.ANY), "IMAGE") and types_compatible("LATENT", str(IO.ANY))


def test_graph_builder_produces_the_expansion_prompt_with_links(host):
    from comfy_execution.graph_utils import GraphBuilder, is_link

    graph = GraphBuilder(prefix="")
    first = graph.node("AddOne", value=1)
    second = graph.node("AddOne", value=first.out(0))
    assert is_link(second.out(0)) and not is_link("1")
    assert graph.finalize() == {"1": {"class_type": "AddOne", "inputs": {"value": 1}},
                                "2": {"class_type": "AddOne", "inputs": {"value": ["1", 0]}}}


# -- nodes surface ---------------------------------------------------------------------------


def test_node_class_mappings_hold_the_core_nodes_as_comfyui_classes(host):
    assert nodes.NODE_CLASS_MAPPINGS["ImageInvert"] is nodes.ImageInvert
    assert nodes.MAX_RESOLUTION == 16384
    assert nodes.SaveImage.FUNCTION == "save_images" and nodes.SaveImage.OUTPUT_NODE is True
    assert nodes.NODE_DISPLAY_NAME_MAPPINGS["SaveImage"] == "Save Image"


def test_a_core_node_class_can_be_called_positionally_outside_a_prompt(host):
    import torch

    (inverted,) = nodes.ImageInvert().invert(torch.zeros(1, 2, 2, 3))
    assert torch.equal(inverted, torch.ones(1, 2, 2, 3))


def test_a_name_the_nodes_surface_lacks_is_a_placeholder_failing_when_instantiated(host):
    placeholder = nodes.NotARealNode
    with pytest.raises(NotImplementedError, match="Loom does not provide nodes.NotARealNode"):
        placeholder()


def test_loom_submodules_of_nodes_still_import_from_the_package(host):
    from nodes import imaging  # ``from package import sub`` asks the package first

    assert hasattr(imaging, "resize")


def test_loading_packs_with_the_compat_layer_imports_no_torch(tmp_path):
    pack = tmp_path / "custom_nodes" / "light_pack"
    pack.mkdir(parents=True)
    (pack / "__init__.py").write_text(
        "import folder_paths, comfy.utils, comfy.model_management, comfy.samplers, nodes\n"
        "from server import PromptServer\nfrom comfy_api.latest import io\n"
        "from comfy_execution.graph_utils import GraphBuilder\n"
        "X = comfy.samplers.KSampler.SAMPLERS, nodes.NODE_CLASS_MAPPINGS['SaveImage']\n"
        "NODE_CLASS_MAPPINGS = {}\n")
    code = (
        "import sys\nfrom server.cli import parser\nfrom server.host import build_host\n"
        f"host = build_host(parser().parse_args(['serve', '--base-directory', {str(tmp_path)!r}]))\n"
        "assert [p.name for p in host.plugin_report.loaded] == ['light_pack'], host.plugin_report.summary()\n"
        "print('torch' in sys.modules)\n")
    root = Path(__file__).resolve().parents[2]
    result = subprocess.run([sys.executable, "-c", code], cwd=root, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "False"


def test_a_v3_class_listed_in_node_class_mappings_runs_through_the_v1_path(host):
    from comfy_api.latest import io
    from engine.comfy_v1 import compile_v1
    from engine.executor import Executor

    class Double(io.ComfyNode):
        @classmethod
        def define_schema(cls):
            return io.Schema(node_id="V3Double", inputs=[io.Int.Input("x", default=1)],
                             outputs=[io.Int.Output()], hidden=[io.Hidden.unique_id])

        @classmethod
        def execute(cls, x):
            return io.NodeOutput(x * 2, ui={"text": [f"{x * 2} at {cls.hidden.unique_id}"]})

    host.add(compile_v1(Double, "V3Double"), origin="tests")
    outcome = Executor(host).execute({"7": {"class_type": "V3Double", "inputs": {"x": 21}},
                                      "8": {"class_type": "PreviewAny", "inputs": {"source": ["7", 0]}}},
                                     prompt_id="p")
    assert outcome.status == "success", outcome.error
    assert outcome.outputs["7"] == {"text": ["42 at 7"]}
    assert outcome.outputs["8"] == {"text": ["42"]}


# -- comfy.utils helpers packs call -------------------------------------------------------------


def test_save_torch_file_round_trips_through_load_torch_file_with_metadata(host, tmp_path):
    import torch

    import comfy.utils

    path = tmp_path / "lora.safetensors"
    comfy.utils.save_torch_file({"a": torch.arange(6.0).reshape(2, 3).t()}, str(path), metadata={"rank": 4})
    state, metadata = comfy.utils.load_torch_file(str(path), return_metadata=True)
    assert torch.equal(state["a"], torch.arange(6.0).reshape(2, 3).t()) and metadata == {"rank": "4"}


def test_state_dict_prefix_replace_renames_in_place_or_filters(host):
    import comfy.utils

    sd = {"model.diffusion_model.x": 1, "cond_stage_model.y": 2}
    assert comfy.utils.state_dict_prefix_replace(sd, {"model.diffusion_model.": ""}) is sd
    assert sd == {"cond_stage_model.y": 2, "x": 1}
    only = comfy.utils.state_dict_prefix_replace({"a.b": 1, "c": 2}, {"a.": "z."}, filter_keys=True)
    assert only == {"z.b": 1}


def test_tiled_scale_of_a_pointwise_upscale_equals_the_whole_image_result(host):
    import torch

    import comfy.utils

    image = torch.rand(2, 3, 40, 56)

    def upscale(tile):
        return torch.nn.functional.interpolate(tile, scale_factor=2, mode="nearest") * 0.5

    whole = upscale(image)
    tiled = comfy.utils.tiled_scale(image, upscale, tile_x=24, tile_y=16, overlap=4, upscale_amount=2, out_channels=3)
    assert tiled.shape == whole.shape and torch.allclose(tiled, whole, atol=1e-6)
    volume = torch.rand(1, 2, 10, 12, 14)
    same = comfy.utils.tiled_scale_multidim(volume, lambda t: t + 1, tile=(6, 6, 6), overlap=2, upscale_amount=1,
                                            out_channels=2)
    assert torch.allclose(same, volume + 1, atol=1e-6)


def test_bislerp_and_lanczos_are_loom_resizers(host):
    import torch

    import comfy.utils
    from nodes.imaging import resize
    from nodes.latent_resize import resize_latent

    latent = torch.rand(1, 4, 8, 8)
    assert torch.equal(comfy.utils.bislerp(latent, 12, 10), resize_latent(latent, 12, 10, "bislerp", "disabled"))
    image = torch.rand(1, 3, 8, 8)
    expected = resize(image.movedim(1, -1), 16, 16, "lanczos").movedim(-1, 1)
    assert torch.allclose(comfy.utils.lanczos(image, 16, 16), expected)


def test_model_management_names_the_device_and_cli_args_follow_the_host(host):
    import comfy.model_management as mm
    from comfy.cli_args import LatentPreviewMethod, args

    assert mm.get_torch_device_name(mm.get_torch_device()) == "cpu"
    assert mm.vram_state == mm.VRAMState.DISABLED and mm.cpu_state == mm.CPUState.CPU
    assert args.cpu is True and args.preview_method == LatentPreviewMethod.Latent2RGB
    assert args.not_a_comfy_flag is None
