"""``loom serve``: what it prints, what it warns about, what it doesn't import."""

from __future__ import annotations

import subprocess
import sys
import textwrap

from .process import REPO, ServerProcess


def _stop_and_read(process: ServerProcess) -> str:
    process.proc.terminate()
    rest = process.proc.stdout.read()
    process.proc.wait(10)
    process.proc.stdout.close()
    return "".join(process.output) + rest


def test_startup_prints_url_device_and_plugin_summary(tmp_path):
    base = tmp_path / "base"
    (base / "custom_nodes").mkdir(parents=True)
    (base / "custom_nodes" / "broken.py").write_text("import not_a_real_module\n")
    output = _stop_and_read(ServerProcess(base))
    assert "Loom is ready at http://127.0.0.1:" in output
    assert "device: cpu" in output
    assert "built-in" in output
    assert "FAILED  broken" in output and "not_a_real_module" in output
    assert "WARNING" not in output


def test_serve_runs_on_uvloop_where_it_is_installed(tmp_path):
    output = _stop_and_read(ServerProcess(tmp_path / "base"))
    assert "uvloop event loop" in output


def test_listening_beyond_loopback_without_a_token_warns_loudly(tmp_path):
    output = _stop_and_read(ServerProcess(tmp_path / "base", None, "--listen", "0.0.0.0"))
    assert "WARNING: Loom is listening on 0.0.0.0 without --auth-token" in output


def test_listening_beyond_loopback_with_a_token_does_not_warn(tmp_path):
    output = _stop_and_read(ServerProcess(tmp_path / "base", None, "--listen", "0.0.0.0",
                                          "--auth-token", "x"))
    assert "WARNING" not in output


def test_sigterm_stops_the_server_cleanly(tmp_path):
    process = ServerProcess(tmp_path / "base")
    process.proc.terminate()
    assert process.proc.wait(10) == 0
    process.proc.stdout.close()


def test_serving_and_object_info_import_no_torch(tmp_path):
    script = textwrap.dedent(f'''
        import asyncio, sys, urllib.request
        from server.app import LoomServer
        from server.config import ServerOptions
        from server.host import build_host
        from server.cli import parser

        async def main():
            args = parser().parse_args(["serve", "--base-directory", {str(tmp_path)!r}])
            host = build_host(args)
            server = LoomServer(host.registry, ServerOptions(port=0))
            await server.start()
            url = f"http://127.0.0.1:{{server.port}}"
            for path in ("/object_info", "/system_stats", "/queue"):
                await asyncio.to_thread(lambda: urllib.request.urlopen(url + path).read())
            await server.stop()
            print("torch imported:", "torch" in sys.modules)

        asyncio.run(main())
    ''')
    result = subprocess.run([sys.executable, "-c", script], cwd=REPO, capture_output=True, text=True, timeout=60)
    assert "torch imported: False" in result.stdout, result.stderr[-2000:]


def test_a_bad_option_value_is_refused_before_starting(tmp_path):
    result = subprocess.run([sys.executable, "-m", "server", "--base-directory", str(tmp_path),
                             "--cache", "lru:many"], cwd=REPO, capture_output=True, text=True, timeout=30)
    assert result.returncode != 0
    assert "--cache: unknown cache policy 'lru:many'" in result.stderr
    assert "Traceback" not in result.stderr
