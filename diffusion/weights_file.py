"""Reading weight files tensor by tensor, without pickle and without double memory.

``.safetensors`` is parsed here (8-byte header length, JSON header, raw data) and
each tensor is read with plain file reads straight into its final memory, allocated in
the dtype the caller computes in (a stored fp16/bf16/fp8 tensor is converted chunk by
chunk on the way in): the file is never memory-mapped, so the process never holds both
a mapped copy and a loaded copy of it, nor a stored-dtype copy beside the cast one.
Big reads put all their tensors in one block of memory mapped tensor by tensor
(:class:`_Arena`) while a thread keeps the disk reading ahead (:class:`_Prefetch`):
``bench/loading.py`` measures the result against reading the file's bytes.  Every
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
from .interrupt_hooks import check_interrupt

_MAX_HEADER = 100 * 1024 * 1024
#: Bytes converted per step when a tensor is cast while read: small enough to stay in
#: the CPU cache between the read and the conversion.
_CHUNK = 4 * 1024 * 1024
#: Elements per conversion step: torch's parallel grain size (see :func:`_convert`).
_SLICE = 32768


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

        With ``dtype``, every floating-point tensor comes back in ``dtype`` whatever the
        file stores (fp32, fp16, bf16, fp8): it is allocated in ``dtype`` once and the
        file's bytes are converted into it a small chunk at a time, so a cast costs no
        second copy of the tensor and the file is read exactly once.  Integer and bool
        tensors keep their stored type.
        """
        dtypes = _dtypes()
        wanted = self.tensors if names is None else {n: self.tensors[n] for n in names}
        order = sorted(wanted.items(), key=lambda item: item[1].start)
        prefetch = _Prefetch.start(self.path, [(self.data_start + i.start, self.data_start + i.end) for _, i in order])
        try:
            with open(self.path, "rb", buffering=0) as f:
                yield from self._read_all(f, order, dtype, dtypes, prefetch)
        finally:
            if prefetch is not None:
                prefetch.stop()

    def _read_all(self, f, order, dtype, dtypes, prefetch=None):
        import torch

        staging = None  # reused by every cast: bytes as stored, converted chunk by chunk
        arena = _Arena.for_tensors([(info, dtypes.get(info.dtype), dtype) for _, info in order])
        for name, info in order:
            check_interrupt()  # a load stops between tensors when the prompt is interrupted
            stored = dtypes.get(info.dtype)
            if stored is None:
                raise ModelLoadError(f"{self.path.name}: tensor {name!r} has unsupported dtype {info.dtype}")
            item = stored.itemsize
            nbytes = item * _numel(info.shape)
            if nbytes != info.end - info.start:
                raise ModelLoadError(
                    f"{self.path.name}: tensor {name!r} has {info.end - info.start} bytes for shape "
                    f"{list(info.shape)} {info.dtype}")
            target = dtype if dtype is not None and stored.is_floating_point else stored
            tensor = arena.take(info.shape, target) if arena else torch.empty(info.shape, dtype=target)
            if prefetch is not None:
                prefetch.reached(self.data_start + info.start)
            if nbytes:
                f.seek(self.data_start + info.start)
                # flatten first: a 0-dim tensor (kohya's ``alpha``) cannot be viewed as bytes directly
                flat = tensor.reshape(-1)
                if target == stored:
                    self._read_into(f, memoryview(flat.view(torch.uint8).numpy()), name)
                else:
                    if staging is None:
                        staging = torch.empty(_CHUNK, dtype=torch.uint8)
                    per_chunk = _CHUNK // item
                    for first in range(0, flat.numel(), per_chunk):
                        count = min(per_chunk, flat.numel() - first)
                        raw = staging[: count * item]
                        self._read_into(f, memoryview(raw.numpy()), name)
                        _convert(flat[first:first + count], raw.view(stored))
            yield name, tensor

    def _read_into(self, f, view: memoryview, name: str) -> None:
        got, nbytes = 0, len(view)
        while got < nbytes:
            n = f.readinto(view[got:])
            if not n:
                raise ModelLoadError(f"{self.path.name} is truncated inside tensor {name!r}")
            got += n


class _Prefetch:
    """A thread that asks the kernel to read the file's next bytes into the page cache
    (``posix_fadvise(WILLNEED)``, a window at a time) while the loader converts what it
    has: with a cold cache the disk and the CPU then work at the same time, so a load
    takes about as long as reading the file.  Nothing is copied: on a warm cache each
    call only finds the pages already there."""

    WINDOW = 32 * 1024 * 1024
    MINIMUM = 64 * 1024 * 1024
    #: How far ahead of the reader it may get: enough to keep the disk busy, little
    #: enough that the pages are still cached when the reader gets there even when the
    #: model fills most of memory (an SDXL load otherwise read much of its file twice).
    AHEAD = 512 * 1024 * 1024

    def __init__(self, path: Path, ranges: list[tuple[int, int]]):
        import threading

        self.path, self.ranges = path, ranges
        self.position = ranges[0][0] if ranges else 0
        self.moved = threading.Condition()
        self.stopped = threading.Event()
        self.thread = threading.Thread(target=self._run, name=f"prefetch {path.name}", daemon=True)
        self.thread.start()

    @classmethod
    def start(cls, path: Path, ranges: list[tuple[int, int]]) -> "_Prefetch | None":
        if not hasattr(os, "posix_fadvise") or sum(end - start for start, end in ranges) < cls.MINIMUM:
            return None
        return cls(path, ranges)

    def _run(self) -> None:
        # contiguous runs of the requested tensors, merged, walked in file order
        spans: list[list[int]] = []
        for start, end in sorted(self.ranges):
            if spans and start <= spans[-1][1] + 4096:
                spans[-1][1] = max(spans[-1][1], end)
            else:
                spans.append([start, end])
        try:
            fd = os.open(self.path, os.O_RDONLY)
        except OSError:
            return  # the reader reports the error
        try:
            for start, end in spans:
                for offset in range(start, end, self.WINDOW):
                    with self.moved:
                        self.moved.wait_for(lambda: self.stopped.is_set() or offset < self.position + self.AHEAD)
                    if self.stopped.is_set():
                        return
                    os.posix_fadvise(fd, offset, min(self.WINDOW, end - offset), os.POSIX_FADV_WILLNEED)
        except OSError:
            pass  # only a hint
        finally:
            os.close(fd)

    def reached(self, offset: int) -> None:
        """The reader is at ``offset``: the prefetch may run up to AHEAD past it."""
        if offset >= self.position + self.WINDOW:
            with self.moved:
                self.position = offset
                self.moved.notify()

    def stop(self) -> None:
        with self.moved:
            self.stopped.set()
            self.moved.notify()


class _Arena:
    """One block of memory for all the tensors of one read, each tensor's pages mapped
    in one call just before it is filled.

    Filling freshly allocated memory costs a page fault per 4 KiB page; for a model of
    several GiB the faults cost more than reading the file (measured here: 0.9-1.7 s per
    GiB touched, 0.5-0.9 s mapped in bulk with ``MADV_POPULATE_WRITE``).  Mapping tensor
    by tensor (rather than the whole block up front) lets the disk prefetch run while
    the pages are mapped.  The tensors are views of the block, which lives as long as any
    of them does.  Linux only; elsewhere, and for small reads, tensors are allocated one
    by one."""

    MINIMUM = 64 * 1024 * 1024
    ALIGN = 64

    def __init__(self, nbytes: int):
        import mmap

        import torch

        self.block = mmap.mmap(-1, nbytes, flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS)
        self.memory = torch.frombuffer(self.block, dtype=torch.uint8)
        self.used = 0
        self.populate = True

    @classmethod
    def for_tensors(cls, items) -> "_Arena | None":
        import mmap

        if not hasattr(mmap, "MAP_POPULATE"):  # Linux
            return None
        total = 0
        for info, stored, dtype in items:
            if stored is None:
                return None  # the read reports the unsupported dtype
            target = dtype if dtype is not None and stored.is_floating_point else stored
            total += _aligned(_numel(info.shape) * target.itemsize, cls.ALIGN)
        return cls(total) if total >= cls.MINIMUM else None

    def take(self, shape: tuple[int, ...], dtype) -> "torch.Tensor":  # noqa: F821
        import mmap

        nbytes = _numel(shape) * dtype.itemsize
        if self.populate and nbytes >= mmap.PAGESIZE:
            start = self.used - self.used % mmap.PAGESIZE
            try:
                self.block.madvise(_MADV_POPULATE_WRITE, start, _aligned(self.used + nbytes, mmap.PAGESIZE) - start)
            except (OSError, ValueError):  # kernels before 5.14: pages fault in as they are written
                self.populate = False
        block = self.memory[self.used:self.used + nbytes]
        self.used += _aligned(nbytes, self.ALIGN)
        return block.view(dtype).view(shape)


_MADV_POPULATE_WRITE = 23  # Linux ≥ 5.14; not in Python's mmap module


def _aligned(n: int, align: int) -> int:
    return -(-n // align) * align


def _convert(target, source) -> None:
    """``target.copy_(source)`` in slices of :data:`_SLICE` elements.

    Each slice is below torch's parallel grain, so it runs on this thread: a dtype
    conversion is memory-bound, and on a busy machine a parallel region per chunk costs
    more waiting for the other threads (measured: 10x slower under load) than it gains."""
    for start in range(0, target.numel(), _SLICE):
        target[start:start + _SLICE].copy_(source[start:start + _SLICE])


def _numel(shape: tuple[int, ...]) -> int:
    n = 1
    for d in shape:
        n *= d
    return n


def load_state_dict(path: str | os.PathLike, dtype=None) -> dict[str, "torch.Tensor"]:  # noqa: F821
    """All tensors of a weights file (safetensors, or a pickle-free torch file); with
    ``dtype``, the floating-point ones in that dtype."""
    path = Path(path)
    if path.suffix.lower() in (".ckpt", ".pt", ".pth", ".bin"):
        state = _load_torch_file(path)
        if dtype is not None:
            state = {k: v.to(dtype) if v.is_floating_point() else v for k, v in state.items()}
        return state
    return dict(SafetensorsFile(path).read(dtype=dtype))


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
