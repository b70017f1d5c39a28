"""How saved files are named, as ComfyUI names them: a prefix's ``%date:yyyy-MM-dd%``,
``%width%``… variables filled in, and the next counter after the highest
``{prefix}_NNNNN_`` already in the folder."""

from __future__ import annotations

import os
import re
import time
from pathlib import Path


def highest_counter(folder: Path, filename: str) -> int:
    """The highest ``N`` among ``{filename}_N...`` files in ``folder`` (0 if none),
    read the way ComfyUI reads it (the digits up to the next ``_``)."""
    highest = 0
    lead = filename + "_"
    try:
        names = os.listdir(folder)
    except OSError:
        return 0
    for name in names:
        if name.startswith(lead):
            digits = name[len(lead):].split("_", 1)[0]
            if digits.isdigit():
                highest = max(highest, int(digits))
    return highest


_DATE_TOKEN = re.compile(r"yyyy|yy|MM|M|dd|d|hh|h|mm|m|ss|s")


def _format_date(pattern: str, now: time.struct_time) -> str:
    values = {
        "yyyy": f"{now.tm_year:04}", "yy": f"{now.tm_year % 100:02}",
        "MM": f"{now.tm_mon:02}", "M": str(now.tm_mon),
        "dd": f"{now.tm_mday:02}", "d": str(now.tm_mday),
        "hh": f"{now.tm_hour:02}", "h": str(now.tm_hour),
        "mm": f"{now.tm_min:02}", "m": str(now.tm_min),
        "ss": f"{now.tm_sec:02}", "s": str(now.tm_sec),
    }
    return _DATE_TOKEN.sub(lambda match: values[match.group(0)], pattern)


def expand_prefix(prefix: str, width: int = 0, height: int = 0, now: time.struct_time | None = None) -> str:
    """Fill in a save prefix's variables (ComfyUI's server- and editor-side ones)."""
    if "%" not in prefix:
        return prefix
    now = now or time.localtime()
    simple = {
        "width": str(width), "height": str(height), "year": str(now.tm_year),
        "month": f"{now.tm_mon:02}", "day": f"{now.tm_mday:02}", "hour": f"{now.tm_hour:02}",
        "minute": f"{now.tm_min:02}", "second": f"{now.tm_sec:02}",
    }

    def substitute(match: re.Match[str]) -> str:
        token = match.group(1)
        if token.startswith("date:"):
            return _format_date(token[5:], now)
        return simple.get(token, match.group(0))

    return re.sub(r"%([^%/]+)%", substitute, prefix)
