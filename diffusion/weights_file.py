"""Reading weight files tensor by tensor, without pickle and without double memory.

``.safetensors`` is parsed here (8-byte header length, JSON header, raw data) and
each tensor is read with plain file reads straight into its own buffer: no mmap, so
the process never holds both a mapped copy and a loaded copy of the file.  Every
inconsistency (short file, offsets past the end, unknown dtype) becomes a
:class:`ModelLoadError` naming the file and what is wrong.
``.ckpt``/``.pt`` files go through ``torch.load(weights_only=True)`` only.
"""

from __future__ import annotations

import json
import os
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

from .errors import ModelLoadError

_MAX_HEADER = 100 * 1024 * 1024


def _dtypes():
    import torch

    return {
        "F64": torch.float64, "F32": torch.float32, "F16": torch.float16, "BF16": torch.bfloat16,
        "I64": torch.int64, "I32": torch.int32, "I16": torch.int16, "I8": torch.int8,
        "U8": torch.uint8, "BOOL": torch.bool,
        "F8_E4M3": getattr(torch, "float8_e4m3fn", None), "F8_E5M2": getattr(torch, "float8_e5m2", None),
    }


@dataclass(frozen=True)
class TensorInfo:
    dtype: str
    shape: tuple[int, ...]
    start: int
    end: int


class SafetensorsFile:
    """Header of a .safetensors file; tensors are read on demand."""

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        try:
            size = self.path.stat().st_size
            with open(self.path, "rb") as f:
                head = f.read(8)
                if len(head) < 8:
                    raise ModelLoadError(f"{self.path.name}: not a safetensors file (only {size} bytes)")
                (length,) = struct.unpack("<Q", head)
                if length > _MAX_HEADER or 8 + length > size:
                    raise ModelLoadError(
                        f"{self.path.name}: not a safetensors file, or truncated "
                        f"(header claims {length} bytes, file has {size})")
                raw = f.read(length)
        except OSError as exc:
            raise ModelLoadError(f"cannot read {self.path}: {exc.strerror or exc}") from exc
        try:
            header = json.loads(raw)
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise ModelLoadError(f"{self.path.name}: not a safetensors file (header is not JSON)") from exc
        if not isinstance(header, dict):
            raise ModelLoadError(f"{self.path.name}: not a safetensors file (header is not a JSON object)")
        self.metadata: dict[str, str] = header.pop("__metadata__", None) or {}
        self.data_start = 8 + length
        data_size = size - self.data_start
        self.tensors: dict[str, TensorInfo] = {}
        for name, info in header.items():
            try:
                start, end = (int(x) for x in info["data_offsets"])
                tensor = TensorInfo(str(info["dtype"]), tuple(int(d) for d in info["shape"]), start, end)
            except (KeyError, TypeError, ValueError) as exc:
                raise ModelLoadError(f"{self.path.name}: malformed header entry for tensor {name!r}") from exc
            if end > data_size or start > end:
                raise ModelLoadError(
                    f"{self.path.name} is truncated: tensor {name!r} needs bytes {start}..{end} "
                    f"but the file holds only {data_size} bytes of data")
            self.tensors[name] = tensor

    def keys(self) -> list[str]:
        return list(self.tensors)

    def shapes(self) -> dict[str, tuple[int, ...]]:
        return {name: info.shape for name, info in self.tensors.items()}

    def read(self, names: list[str] | None = None, dtype=None) -> Iterator[tuple[str, "torch.Tensor"]]:  # noqa: F821
        """Yield (name, tensor) for the given names (all by default), in file order.

        With ``dtype``, floating-point tensors are cast one at a time as they are read,
        so a cast never holds two copies of the whole model.
        """
        import torch

        dtypes = _dtypes()
        wanted = self.tensors if names is None else {n: self.tensors[n] for n in names}
        order = sorted(wanted.items(), key=lambda item: item[1].start)
        with open(self.path, "rb", buffering=0) as f:
            for name, info in order:
                dtype = dtypes.get(info.dtype)
                if dtype is None:
                    raise ModelLoadError(f"{self.path.name}: tensor {name!r} has unsupported dtype {info.dtype}")
                tensor = torch.empty(info.shape, dtype=dtype)
                nbytes = tensor.numel() * tensor.element_size()
                if nbytes != info.end - info.start:
                    raise ModelLoadError(
                        f"{self.path.name}: tensor {name!r} has {info.end - info.start} bytes for shape "
                        f"{list(info.shape)} {info.dtype}")
                if nbytes:
                    f.seek(self.data_start + info.start)
                    # flatten first: a 0-dim tensor (kohya's ``alpha``) cannot be viewed as bytes directly
                    view = memoryview(tensor.reshape(-1).view(torch.uint8).numpy())
                    got = 0
                    while got < nbytes:
                        n = f.readinto(view[got:])
                        if not n:
                            raise ModelLoadError(f"{self.path.name} is truncated inside tensor {name!r}")
                        got += n
                if dtype is not None and tensor.is_floating_point() and tensor.dtype != dtype:
                    tensor = tensor.to(dtype)
                yield name, tensor


def load_state_dict(path: str | os.PathLike) -> dict[str, "torch.Tensor"]:  # noqa: F821
    """All tensors of a weights file (safetensors, or a pickle-free torch file)."""
    path = Path(path)
    if path.suffix.lower() in (".ckpt", ".pt", ".pth", ".bin"):
        return _load_torch_file(path)
    return dict(SafetensorsFile(path).read())


def _load_torch_file(path: Path) -> dict:
    import pickle

    import torch

    try:
        data = torch.load(path, map_location="cpu", weights_only=True, mmap=False)
    except (pickle.UnpicklingError, RuntimeError, EOFError, OSError, ValueError) as exc:
        raise ModelLoadError(
            f"{path.name}: cannot be read as a weights-only torch file ({str(exc).splitlines()[0]})") from exc
    if isinstance(data, dict) and isinstance(data.get("state_dict"), dict):
        data = data["state_dict"]
    if not isinstance(data, dict):
        raise ModelLoadError(f"{path.name}: holds a {type(data).__name__}, not a dict of tensors")
    return {k: v for k, v in data.items() if isinstance(v, torch.Tensor)}
