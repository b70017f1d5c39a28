"""``loom serve`` with the precision and VRAM flags ComfyUI launch scripts pass: it starts,
with one warning line for a flag it cannot honour and no error."""

from __future__ import annotations

from .process import ServerProcess


def test_serve_starts_with_comfyui_precision_and_vram_flags(tmp_path):
    process = ServerProcess(tmp_path / "base", None, "--lowvram", "--force-fp16", "--fp32-vae",
                            "--disable-smart-memory", "--reserve-vram", "1.5", "--fp8_e4m3fn-unet")
    try:
        info = process.call("/system_stats")
    finally:
        process.stop()
    output = "".join(process.output)
    assert "Loom is ready at" in output and "Traceback" not in output
    warnings = [line for line in output.splitlines() if "--fp8_e4m3fn-unet" in line]
    assert len(warnings) == 1 and "not implemented" in warnings[0]
    assert info["system"]
