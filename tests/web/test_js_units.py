"""Runs the editor's JS unit tests (node's built-in runner) as part of pytest."""

import shutil
import subprocess
from pathlib import Path

HERE = Path(__file__).parent
ROOT = HERE.parent.parent


def test_js_unit_tests_pass():
    assert shutil.which("node"), "node (>= 18) is needed for the editor's JS unit tests: apt-get install nodejs"
    files = sorted(str(p.relative_to(ROOT)) for p in HERE.glob("*.test.mjs"))
    assert files, "no JS unit tests found"
    result = subprocess.run(["node", "--test", *files], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
