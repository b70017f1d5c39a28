"""The command line fits: ``loom --version``, bare ``loom`` prints help, every
option says what it does, ``loom models list``, ``loom users``, and
``loom serve``'s webhook and users flags are checked before start-up."""

from __future__ import annotations

import argparse

import pytest

from server import cli
from server.users import read_users


def _walk(parser: argparse.ArgumentParser, path: str = "loom"):
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield from _walk(sub, f"{path} {name}")
        elif action.option_strings:
            yield path, action


def test_every_option_has_a_description():
    missing = [f"{path} {'/'.join(a.option_strings)}" for path, a in _walk(cli.parser())
               if not a.help or a.help == argparse.SUPPRESS and a.dest != "web_root"]
    assert missing == []


def test_bare_loom_prints_help(capsys):
    assert cli.main([]) == 0
    out = capsys.readouterr().out
    assert out.startswith("usage: loom") and "serve" in out and "users" in out


def test_version(capsys):
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["--version"])
    assert exit_info.value.code == 0
    assert capsys.readouterr().out.strip() == "loom 0.1.0"


def test_models_list_by_kind(tmp_path, capsys):
    (tmp_path / "models" / "checkpoints" / "sd").mkdir(parents=True)
    (tmp_path / "models" / "checkpoints" / "sd" / "a.safetensors").write_bytes(b"x")
    (tmp_path / "models" / "loras").mkdir(parents=True)
    (tmp_path / "models" / "loras" / "b.safetensors").write_bytes(b"x")
    (tmp_path / "models" / "loras" / "notes.txt").write_text("not a model")
    assert cli.main(["models", "list", "--base-directory", str(tmp_path)]) == 0
    assert capsys.readouterr().out.splitlines() == ["checkpoints/sd/a.safetensors", "loras/b.safetensors"]
    assert cli.main(["models", "list", "--kind", "loras", "--base-directory", str(tmp_path)]) == 0
    assert capsys.readouterr().out.splitlines() == ["loras/b.safetensors"]
    assert cli.main(["models", "list", "--kind", "../x", "--base-directory", str(tmp_path)]) == 2
    assert "invalid model kind" in capsys.readouterr().err


def test_users_add_list_remove(tmp_path, capsys):
    path = tmp_path / "users.json"
    assert cli.main(["users", "add", "ann", "--role", "admin", "--file", str(path)]) == 0
    token = capsys.readouterr().out.splitlines()[-1]
    assert len(token) >= 40 and token not in path.read_text()
    assert cli.main(["users", "add", "ben", "--file", str(path)]) == 0
    capsys.readouterr()
    assert cli.main(["users", "list", "--file", str(path)]) == 0
    assert capsys.readouterr().out.splitlines() == ["ann\tadmin", "ben\tuser"]
    assert cli.main(["users", "remove", "ben", "--file", str(path)]) == 0
    assert set(read_users(path)) == {"ann"}
    assert cli.main(["users", "remove", "ben", "--file", str(path)]) == 2
    assert "no user 'ben'" in capsys.readouterr().err
    assert cli.main(["users", "add", "../evil", "--file", str(path)]) == 2


@pytest.mark.parametrize("argv, message", [
    (["--webhook", "http://127.0.0.1:9/x"], "--allow-private-webhooks"),
    (["--webhook", "ftp://example.com/"], "http:// or https://"),
    (["--webhook-max-attempts", "0"], "at least 1"),
    (["--users", "{missing}"], "has no users"),
    (["--users", "{users}", "--auth-token", "t"], "--users and --auth-token"),
])
def test_serve_refuses_bad_webhook_and_users_flags(tmp_path, argv, message):
    users = tmp_path / "u.json"
    cli.main(["users", "add", "x", "--file", str(users)])
    argv = [a.format(missing=tmp_path / "none.json", users=users) for a in argv]
    args = cli.parser().parse_args(["serve", *argv])
    with pytest.raises(SystemExit) as exit_info:
        cli._options(args)
    assert message in str(exit_info.value)


def test_serve_flags_reach_the_server_options(tmp_path):
    users = tmp_path / "u.json"
    cli.main(["users", "add", "x", "--file", str(users)])
    args = cli.parser().parse_args(["serve", "--webhook", "https://example.com/hook", "--webhook-secret", "s",
                                    "--users", str(users)])
    options = cli._options(args)
    assert (options.webhook_url, options.webhook_secret, options.users_file) == ("https://example.com/hook", "s",
                                                                                 users)


def test_comfyuis_launch_flags_are_accepted(tmp_path, capsys, monkeypatch):
    # setenv, so the teardown restores the variable as it was (absent or not).
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "unset-by-test")
    args = cli.parser().parse_args(["serve", "--auto-launch", "--dont-print-server", "--use-split-cross-attention",
                                    "--disable-xformers", "--front-end-version", "Comfy-Org/x@latest", "--fast",
                                    "--cuda-device", "1", "--disable-all-custom-nodes", "--windows-standalone-build"])
    cli._options(args)
    err = capsys.readouterr().err
    assert "--use-split-cross-attention has no effect" in err and "--auto-launch has no effect" in err
    assert "--dont-print-server" not in err  # nothing to say about it
    import os

    assert os.environ["CUDA_VISIBLE_DEVICES"] == "1"
    assert args.disable_custom_nodes is True
