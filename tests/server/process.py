"""A Loom server in its own process (``python -m server``), as users run it."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


class ServerProcess:
    def __init__(self, base: Path, log: Path | None = None, *extra_args: str):
        env = {**os.environ, "PYTHONPATH": str(REPO)}
        if log is not None:
            env["LOOM_TEST_LOG"] = str(log)
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "server", "--base-directory", str(base), "--port", "0", "--cpu",
             "--web-root", str(base / "web"), *extra_args],
            cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        self.output = []
        deadline = time.monotonic() + 30
        while True:
            line = self.proc.stdout.readline()
            if not line:
                raise AssertionError("server exited:\n" + "".join(self.output))
            self.output.append(line)
            found = re.search(r"ready at (http://\S+)", line)
            if found:
                self.url = found.group(1)
                break
            if time.monotonic() > deadline:
                raise AssertionError("server did not start:\n" + "".join(self.output))
        # Keep reading: the server logs a line or two per prompt, and a full pipe would stall it.
        threading.Thread(target=self._drain, daemon=True).start()

    def _drain(self) -> None:
        try:
            for line in self.proc.stdout:
                self.output.append(line)
        except (OSError, ValueError):  # closed by stop()/kill()
            pass

    def call(self, path: str, body=None):
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(self.url + path, data=data,
                                         headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(request, timeout=10) as response:
            return json.loads(response.read())

    def kill(self):
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)
        self.proc.stdout.close()

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
        self.proc.stdout.close()


