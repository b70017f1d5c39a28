"""The server's terminal log is written in batches: info lines a moment later in
one write, warnings and errors at once, nothing lost at exit."""

from __future__ import annotations

import io
import logging
import time

from server.log_output import BatchedStreamHandler


class CountingStream(io.StringIO):
    def __init__(self) -> None:
        super().__init__()
        self.writes = 0

    def write(self, text: str) -> int:
        self.writes += 1
        return super().write(text)


def _logger(handler: logging.Handler) -> logging.Logger:
    handler.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
    log = logging.getLogger(f"test_log_output.{id(handler)}")
    log.propagate = False
    log.setLevel(logging.INFO)
    log.addHandler(handler)
    return log


def _wait_for(condition, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.005)


def test_info_lines_of_a_burst_arrive_together_in_one_write_in_order():
    stream = CountingStream()
    log = _logger(BatchedStreamHandler(stream, interval=0.05))
    log.info("got prompt")
    log.info("Prompt executed in %.2f seconds", 0.01)
    assert stream.getvalue() == ""
    _wait_for(lambda: stream.getvalue())
    name = log.name
    assert stream.getvalue() == f"INFO {name}: got prompt\nINFO {name}: Prompt executed in 0.01 seconds\n"
    assert stream.writes == 1


def test_a_warning_is_written_at_once_after_the_lines_before_it():
    stream = CountingStream()
    log = _logger(BatchedStreamHandler(stream, interval=60))
    log.info("got prompt")
    log.error("!!! Exception during processing !!! boom")
    name = log.name
    assert stream.getvalue() == f"INFO {name}: got prompt\nERROR {name}: !!! Exception during processing !!! boom\n"


def test_flush_writes_what_is_still_waiting():
    stream = CountingStream()
    handler = BatchedStreamHandler(stream, interval=60)
    log = _logger(handler)
    log.info("got prompt")
    handler.flush()
    assert stream.getvalue() == f"INFO {log.name}: got prompt\n"


def test_lines_logged_from_many_threads_at_once_are_all_written_each_thread_in_order():
    import threading

    stream = CountingStream()
    handler = BatchedStreamHandler(stream, interval=0.001)
    log = _logger(handler)

    def chatter(thread: int) -> None:
        for n in range(500):
            log.info("thread %d line %d", thread, n)

    threads = [threading.Thread(target=chatter, args=(t,)) for t in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    handler.flush()
    lines = stream.getvalue().splitlines()
    assert len(lines) == 2000
    for thread in range(4):
        mine = [line for line in lines if f"thread {thread} " in line]
        assert mine == [f"INFO {log.name}: thread {thread} line {n}" for n in range(500)]
