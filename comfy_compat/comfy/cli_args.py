"""ComfyUI's ``comfy.cli_args``: ``args`` holds the command-line flags packs read.

Loom's own options decide the few that mean something here (``cpu``,
``preview_method``, the folders); the rest keep ComfyUI's defaults, and a flag
Loom does not know reads as ``None`` (false), as an unset one does in ComfyUI.
"""

from __future__ import annotations

import argparse
import enum
from typing import Any


class LatentPreviewMethod(enum.Enum):
    NoPreviews = "none"
    Auto = "auto"
    Latent2RGB = "latent2rgb"
    TAESD = "taesd"


class PerformanceFeature(enum.Enum):
    Fp16Accumulation = "fp16_accumulation"
    Fp8MatrixMultiplication = "fp8_matrix_mult"
    CublasOps = "cublas_ops"
    AutoTune = "autotune"


_DEFAULTS: dict[str, Any] = {
    "listen": "127.0.0.1", "port": 8188, "tls_keyfile": None, "tls_certfile": None,
    "enable_cors_header": None, "max_upload_size": 100, "base_directory": None, "extra_model_paths_config": None,
    "output_directory": None, "temp_directory": None, "input_directory": None, "user_directory": None,
    "auto_launch": False, "disable_auto_launch": True, "cuda_device": None, "cuda_malloc": False,
    "disable_cuda_malloc": True, "force_fp32": False, "force_fp16": False, "fp32_unet": False, "fp64_unet": False,
    "bf16_unet": False, "fp16_unet": False, "fp8_e4m3fn_unet": False, "fp8_e5m2_unet": False,
    "fp16_vae": False, "fp32_vae": False, "bf16_vae": False, "cpu_vae": False, "fp8_e4m3fn_text_enc": False,
    "fp8_e5m2_text_enc": False, "fp16_text_enc": False, "fp32_text_enc": False, "force_channels_last": False,
    "directml": None, "oneapi_device_selector": None, "disable_ipex_optimize": False, "supports_fp8_compute": False,
    "preview_method": LatentPreviewMethod.Latent2RGB, "preview_size": 512, "cache_classic": True, "cache_lru": 0,
    "cache_none": False, "use_split_cross_attention": False, "use_quad_cross_attention": False,
    "use_pytorch_cross_attention": True, "use_sage_attention": False, "use_flash_attention": False,
    "disable_xformers": True, "force_upcast_attention": False, "dont_upcast_attention": False,
    "gpu_only": False, "highvram": False, "normalvram": False, "lowvram": False, "novram": False, "cpu": False,
    "reserve_vram": None, "async_offload": False, "default_hashing_function": "sha256",
    "disable_smart_memory": False, "deterministic": False, "fast": set(), "mmap_torch_files": False,
    "disable_mmap": False, "dont_print_server": False, "quick_test_for_ci": False, "windows_standalone_build": False,
    "disable_metadata": False, "disable_all_custom_nodes": False, "whitelist_custom_nodes": [],
    "disable_api_nodes": False, "multi_user": False, "verbose": "INFO", "log_stdout": False,
    "front_end_version": "comfyanonymous/ComfyUI@latest", "front_end_root": None, "user_directory_": None,
    "enable_compress_response_body": False, "comfy_api_base": "https://api.comfy.org", "database_url": None,
    "disable_assets_autoscan": True, "enable_manager": False,
}


class _Args(argparse.Namespace):
    def __getattr__(self, name: str) -> Any:
        if name.startswith("_"):
            raise AttributeError(name)
        return None  # a flag Loom does not know: unset


args = _Args(**_DEFAULTS)


def bind_host(env: Any) -> None:
    """Reflect the host's options (device, previews, folders) in ``args``."""
    device = str(getattr(env, "device", "auto"))
    args.cpu = device == "cpu"
    method = getattr(env, "preview_method", "latent2rgb")
    args.preview_method = LatentPreviewMethod.NoPreviews if method == "none" else LatentPreviewMethod.Latent2RGB
    folders = getattr(env, "folders", None)
    if folders is not None:
        for flag, attr in (("output_directory", "output"), ("input_directory", "input"),
                           ("temp_directory", "temp"), ("user_directory", "user"), ("base_directory", "base")):
            value = getattr(folders, attr, None)
            setattr(args, flag, str(value) if value is not None else None)


def enables_dynamic_vram() -> bool:
    return False


parser = argparse.ArgumentParser(add_help=False)  # packs sometimes add their own flags to it
