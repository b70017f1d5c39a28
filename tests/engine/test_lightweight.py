"""The engine stays pure: no torch, no aiohttp, no HTTP."""

import subprocess
import sys


def test_importing_the_engine_imports_neither_torch_nor_aiohttp():
    code = ("import engine.executor, engine.validation, engine.plugins, engine.object_info, sys; "
            "heavy = [m for m in ('torch', 'aiohttp', 'diffusers', 'transformers') if m in sys.modules]; "
            "print(heavy); assert not heavy")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
