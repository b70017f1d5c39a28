"""ComfyUI's cache flags are accepted as spellings of ``--cache`` (ComfyUI's
cli_args: --cache-classic, --cache-lru N where 0 keeps the classic cache,
--cache-none)."""

from __future__ import annotations

import pytest

from engine.cache import ClassicCache, LRUCache, NoCache, make_cache
from server.cli import _options, parser


@pytest.mark.parametrize("argv, policy, kind", [
    (["--cache-classic"], "classic", ClassicCache),
    (["--cache-lru", "8"], "lru:8", LRUCache),
    (["--cache-lru", "0"], "classic", ClassicCache),
    (["--cache-none"], "none", NoCache),
    (["--cache", "lru:0"], "lru:0", ClassicCache),
    (["--cache-none", "--cache-lru", "3"], "lru:3", LRUCache),
])
def test_comfyui_cache_flags_are_aliases_of_cache(argv, policy, kind):
    for command in (["serve"], ["run", "workflow.json"]):
        args = parser().parse_args(command + argv)
        assert args.cache == policy
        assert isinstance(make_cache(args.cache), kind)
    assert _options(parser().parse_args(["serve", *argv])).cache == policy  # start-up accepts it


def test_a_negative_cache_lru_is_refused_with_a_message(capsys):
    with pytest.raises(SystemExit):
        parser().parse_args(["serve", "--cache-lru", "-1"])
    assert "--cache-lru" in capsys.readouterr().err
