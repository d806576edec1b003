"""Encoding overlapped with rendering: a consumer in a worker thread, fed through a bounded queue.

`run_in_background(consume, items)` runs ``consume(iterator)`` (e.g. the video encoder) in a
worker thread while the calling thread produces ``items`` (e.g. render + paste chunk by chunk)
and hands them over through a queue of at most ``max_pending`` items, so memory stays bounded by
``max_pending + 2`` chunks (queued, being encoded, being produced) however long the video is.

The producer stays in the calling thread (torch, progress bars and the caller's generator see
no thread change); only the consumer moves. The items reach the consumer unchanged and in order,
so the output equals the sequential path's byte for byte. Errors cross over: a producer error
stops the consumer and is re-raised as is; a consumer error stops the producer (its generator is
closed) and is re-raised in the calling thread.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable, Iterable, Iterator
from typing import Any, TypeVar

__all__ = ["run_in_background", "ProducerFailed"]

T = TypeVar("T")
R = TypeVar("R")

_DONE = object()
_POLL_S = 0.05  # how often a blocked hand-over checks whether the other side has stopped


class ProducerFailed(RuntimeError):
    """Raised inside the consumer when the producer failed (the producer's error is re-raised
    in the calling thread, this one only unwinds the consumer)."""


class _Failure:
    def __init__(self, error: BaseException) -> None:
        self.error = error


def run_in_background(consume: Callable[[Iterator[T]], R], items: Iterable[T], max_pending: int = 2,
                      name: str = "difftted-writer") -> R:
    """``consume(iter(items))`` with ``consume`` in a worker thread, ``items`` pulled here.

    Args:
        consume: takes an iterator of the items and returns a result (e.g. a written path).
        items: any iterable; a generator is closed if the consumer stops early.
        max_pending: items produced but not yet taken by the consumer, >= 1.
        name: the worker thread's name.

    Returns:
        what ``consume`` returned.
    """
    if not callable(consume):
        raise TypeError(f"consume must be callable, got {type(consume).__name__}")
    if isinstance(max_pending, bool) or not isinstance(max_pending, int) or max_pending < 1:
        raise ValueError(f"max_pending must be an int >= 1, got {max_pending!r}")
    handover: queue.Queue = queue.Queue(maxsize=max_pending)
    outcome: dict[str, Any] = {}
    stopped = threading.Event()

    def feed() -> Iterator[T]:
        while True:
            item = handover.get()
            if item is _DONE:
                return
            if isinstance(item, _Failure):
                raise ProducerFailed("the producer failed; its error is raised in the calling thread") from item.error
            yield item

    def work() -> None:
        try:
            outcome["value"] = consume(feed())
        except BaseException as err:  # noqa: BLE001 - handed to the calling thread
            outcome["error"] = err
        finally:
            stopped.set()

    worker = threading.Thread(target=work, name=name, daemon=True)
    worker.start()
    try:
        for item in items:
            if not _put(handover, item, stopped):
                break
        else:
            _put(handover, _DONE, stopped)
    except BaseException as err:
        _put(handover, _Failure(err), stopped)
        worker.join()
        raise
    finally:
        close = getattr(items, "close", None)
        if stopped.is_set() and callable(close):
            close()
    worker.join()
    if "error" in outcome:
        raise outcome["error"]
    if "value" not in outcome:  # pragma: no cover - work() always records one of the two
        raise RuntimeError("the background consumer ended without a result")
    return outcome["value"]


def _put(handover: queue.Queue, item: object, stopped: threading.Event) -> bool:
    """Block until the item is queued (True) or the consumer has stopped (False)."""
    while not stopped.is_set():
        try:
            handover.put(item, timeout=_POLL_S)
            return True
        except queue.Full:
            continue
    return False
