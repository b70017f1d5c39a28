"""The server's terminal log, written in batches.

Under load the server logs two lines per prompt ("got prompt", "Prompt executed
in ..."), thousands a second.  Writing each one costs a system call, and the
thread making it lets go of the GIL for it, so the event loop or the worker
stalls until it gets it back: together the two lines took about 0.2 ms of a
trivial prompt's 1.5 ms of server CPU.  This handler keeps the standard library's records and
format (every handler, ``caplog`` included, still sees each record as it
happens) but appends the text to a buffer that a background thread writes out
``interval`` seconds after the first line of a burst: one write per burst.

Warnings and errors are written at once, after whatever is buffered, so they
are never late and the order of lines is kept.  ``flush()`` (called by
``logging.shutdown`` at exit) writes what is left.
"""

from __future__ import annotations

import collections
import logging
import threading
import time
from typing import TextIO

#: Seconds a line may wait for the lines that follow it.
INTERVAL = 0.05


class BatchedStreamHandler(logging.StreamHandler):
    def __init__(self, stream: TextIO | None = None, interval: float = INTERVAL):
        super().__init__(stream)
        self.interval = interval
        # A deque: appends and pops are atomic, so a line is queued without
        # taking a lock (the standard handler holds one around every emit, and
        # the event loop waited on it while the worker held it).
        self._pending: collections.deque[str] = collections.deque()
        self._due = threading.Event()
        self._writer: threading.Thread | None = None

    def handle(self, record: logging.LogRecord) -> logging.LogRecord | bool:
        result = self.filter(record)
        if result:
            self.emit(result if isinstance(result, logging.LogRecord) else record)
        return result

    def emit(self, record: logging.LogRecord) -> None:
        try:
            self._pending.append(self.format(record) + self.terminator)
            if record.levelno >= logging.WARNING:
                self.flush()
            elif not self._due.is_set():
                if self._writer is None:
                    self._start_writer()
                self._due.set()
        except RecursionError:
            raise
        except Exception:
            self.handleError(record)

    def flush(self) -> None:
        with self.lock:  # one writer at a time, so lines keep their order
            lines = []
            while self._pending:
                lines.append(self._pending.popleft())
            if lines:
                self.stream.write("".join(lines))
            if self.stream and hasattr(self.stream, "flush"):
                self.stream.flush()

    def _start_writer(self) -> None:
        with self.lock:
            if self._writer is None:
                self._writer = threading.Thread(target=self._write_loop, name="loom-log", daemon=True)
                self._writer.start()

    def _write_loop(self) -> None:
        while True:
            self._due.wait()
            time.sleep(self.interval)  # the rest of the burst joins this write
            self._due.clear()
            try:
                self.flush()
            except Exception:  # a closed stream at exit: nothing to tell
                pass
