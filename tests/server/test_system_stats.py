"""``/system_stats`` as ComfyUI answers it on a CPU machine: model_management
reports the CPU device's memory from psutil, so the device entry's
``vram_total``/``vram_free`` (and the torch_ ones) are the RAM figures."""

from __future__ import annotations

import psutil


async def test_system_stats_on_cpu_reports_ram_as_vram_total_and_vram_free(server):
    stats = await server.get_json("/system_stats")
    (device,) = stats["devices"]
    assert device["type"] == "cpu" and device["name"] == "cpu"
    total = psutil.virtual_memory().total
    assert device["vram_total"] == device["torch_vram_total"] == stats["system"]["ram_total"] == total
    assert 0 < device["vram_free"] <= total
    assert device["torch_vram_free"] == device["vram_free"]
    assert abs(device["vram_free"] - stats["system"]["ram_free"]) < 512 * 1024 * 1024
