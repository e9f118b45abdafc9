"""The one staged runner of every job: decode ahead, network in the caller, write behind.

`predict` (a folder of images, chunk after chunk), `video` (frame after frame, through
the focal lock and the stabiliser) and the Ray actors (which run those same jobs) all
have the same shape: reading and decoding inputs is CPU work, the forward pass wants the
caller's thread (torch's own threads, CUDA streams, a Ctrl-C that lands where it should),
writing files is CPU and disk work again. Run one after the other, a folder takes as long
as the three added up; here the three overlap:

- the *source* iterator (decoding, preparing network inputs) runs in a thread, at most
  `ahead` items in front of the network, so memory stays flat on a folder of any size;
- the *network* transform runs in the caller's thread, pulling from the decoder;
- *write* runs in one writer thread, at most `behind` results after the network;
- what `write` returns is yielded in the caller's thread, in input order, so callbacks
  and reports never run in a worker thread and come in the order of a plain loop.

An exception in any stage reaches the caller at its place in that order. Closing the
generator (Ctrl-C, a crash, `break`) stops both threads: the write under way is finished
(files are atomic, never half written), nothing new is started. `threaded=False` is the
plain loop, the same stages one after the other in the caller's thread.
"""

from __future__ import annotations

import queue
import threading
from collections import deque
from collections.abc import Callable, Generator, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from typing import TypeVar

S = TypeVar("S")
R = TypeVar("R")
W = TypeVar("W")

DEFAULT_AHEAD = 2
"""Items the decoder keeps ready in front of the network (chunks for predict, frames for video)."""
DEFAULT_BEHIND = 2
"""Results the network may be ahead of the writer before it waits for it."""
_POLL_S = 0.1
"""How often a waiting decoder thread looks whether the job was stopped."""
_JOIN_S = 5.0
"""How long a stopped job waits for the decoder thread (it may be inside one slow read)."""


class _End:
    """The decoder's last message: the source is exhausted, or failed with `error`."""

    def __init__(self, error: BaseException | None = None) -> None:
        self.error = error


def decode_ahead(
    source: Iterable[S], ahead: int = DEFAULT_AHEAD, stop: threading.Event | None = None, name: str = "decode"
) -> Generator[S, None, None]:
    """Iterate `source` in a thread at most `ahead` items in front of the consumer; its errors are raised here.

    The thread takes a slot before it pulls (decodes) the next item and the consumer frees it
    when it takes one, so at most `ahead` items wait decoded beside the one being consumed.
    """
    closed = threading.Event()  # the consumer is gone (done, failed or interrupted)
    ready: queue.SimpleQueue[S | _End] = queue.SimpleQueue()
    slots = threading.Semaphore(max(1, ahead))

    def stopped() -> bool:
        return closed.is_set() or (stop is not None and stop.is_set())

    def work() -> None:
        try:
            iterator = iter(source)
            while True:
                while not slots.acquire(timeout=_POLL_S):
                    if stopped():
                        break
                if stopped():  # stopped by the consumer or by a stage: end the stream here
                    break
                try:
                    item = next(iterator)
                except StopIteration:
                    break
                ready.put(item)
            ready.put(_End())
        except BaseException as exc:  # never lost in this thread: raised in the consumer's turn
            ready.put(_End(exc))

    thread = threading.Thread(target=work, name=f"sharpdepth-{name}", daemon=True)
    thread.start()
    try:
        while not isinstance(message := ready.get(), _End):
            slots.release()
            yield message
        if message.error is not None:
            raise message.error
    finally:
        closed.set()
        thread.join(_JOIN_S)


class _AfterFailure(Exception):
    """A write skipped because an earlier one failed (that failure reaches the caller first)."""


def write_behind(
    results: Iterable[R], write: Callable[[R], W], behind: int = DEFAULT_BEHIND, stop: threading.Event | None = None
) -> Generator[W, None, None]:
    """`write` every result in one writer thread, at most `behind` results late; yields in order.

    One writer thread: the file writers may run beside the other stages, not beside each other.
    """
    writer = ThreadPoolExecutor(max_workers=1, thread_name_prefix="sharpdepth-write")
    pending: deque[Future[W]] = deque()
    failed = threading.Event()

    def write_in_turn(result: R) -> W:
        if failed.is_set():  # nothing is written after a failed write: the files stay a prefix
            raise _AfterFailure
        try:
            return write(result)
        except BaseException:
            failed.set()
            raise

    try:
        for result in results:
            pending.append(writer.submit(write_in_turn, result))
            while pending and (len(pending) > behind or pending[0].done()):
                yield pending.popleft().result()
        while pending:
            yield pending.popleft().result()
    finally:
        if stop is not None:
            stop.set()
        writer.shutdown(wait=True, cancel_futures=True)


def run_staged(
    source: Iterable[S],
    network: Callable[[Iterator[S]], Iterator[R]],
    write: Callable[[R], W],
    *,
    ahead: int = DEFAULT_AHEAD,
    behind: int = DEFAULT_BEHIND,
    threaded: bool = True,
    stop: threading.Event | None = None,
    decoder_name: str = "decode",
) -> Generator[W, None, None]:
    """source (decoder thread) -> network (caller) -> write (writer thread) -> yielded in order.

    `network` maps the stream of decoded items to the stream of results (not necessarily one
    for one: video batches frames and holds some back for the stabiliser). `stop`, if given,
    is set when the run ends for any reason, and may be set by a stage to stop the others.
    """
    stop = stop or threading.Event()
    if not threaded:
        try:
            for result in network(iter(source)):
                yield write(result)
        finally:
            stop.set()
        return
    yield from write_behind(network(decode_ahead(source, ahead, stop, decoder_name)), write, behind, stop)
