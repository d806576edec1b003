"""difftted.pipeline.writer_thread: the consumer runs in a worker thread, items arrive unchanged and in order,
memory stays bounded, errors cross over; and the talking video is the same with and without it."""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest

from difftted.pipeline.writer_thread import ProducerFailed, run_in_background


def test_items_arrive_in_order_in_another_thread() -> None:
    seen, threads = [], set()

    def consume(items):
        for item in items:
            threads.add(threading.current_thread().name)
            seen.append(item)
        return len(seen)

    assert run_in_background(consume, (i * i for i in range(50)), max_pending=3) == 50
    assert seen == [i * i for i in range(50)]
    assert threads == {"difftted-writer"} and threading.current_thread().name not in threads


def test_at_most_max_pending_items_wait() -> None:
    produced, consumed = [0], [0]
    most_ahead = [0]

    def items():
        for i in range(30):
            produced[0] += 1
            most_ahead[0] = max(most_ahead[0], produced[0] - consumed[0])
            yield i

    def consume(iterator):
        for _ in iterator:
            time.sleep(0.002)  # a slow encoder: the producer runs ahead until the queue is full
            consumed[0] += 1

    run_in_background(consume, items(), max_pending=2)
    assert consumed[0] == 30
    # queued (2) + the one the consumer holds + the one being produced
    assert 2 <= most_ahead[0] <= 2 + 2


def test_producer_error_is_raised_and_stops_the_consumer() -> None:
    got = []

    def items():
        yield 1
        raise KeyError("render failed")

    def consume(iterator):
        try:
            for item in iterator:
                got.append(item)
        except ProducerFailed:
            got.append("stopped")
            raise

    with pytest.raises(KeyError, match="render failed"):
        run_in_background(consume, items())
    assert got == [1, "stopped"]


def test_consumer_error_is_raised_and_closes_the_producer() -> None:
    closed = []

    def items():
        try:
            for i in range(1000):
                yield i
        finally:
            closed.append(True)

    def consume(iterator):
        next(iterator)
        raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):
        run_in_background(consume, items(), max_pending=1)
    assert closed == [True]


def test_rejects_bad_arguments() -> None:
    with pytest.raises(ValueError, match="max_pending must be an int >= 1, got 0"):
        run_in_background(list, [1], max_pending=0)
    with pytest.raises(TypeError, match="consume must be callable"):
        run_in_background("list", [1])


def test_talking_video_is_the_same_with_the_writer_thread(tmp_path) -> None:
    from difftted.audio.speech import Speech
    from difftted.pipeline.output import write_talking_video
    from tps.video import read_video

    rng = np.random.default_rng(0)
    base = rng.integers(0, 256, (1, 32, 48, 3), dtype=np.uint8)
    chunks = [np.clip(base.astype(int) + 9 * k, 0, 255).astype(np.uint8).repeat(3, axis=0) for k in range(4)]
    t = np.arange(int(16000 * 12 / 25)) / 16000
    speech = Speech((0.3 * np.sin(2 * np.pi * 220 * t)).astype(np.float32), 16000)
    paths = {}
    for background in (False, True):
        paths[background] = write_talking_video(tmp_path / f"v_{background}.mp4", iter(chunks), 25.0, speech,
                                                background=background)
    frames = {k: read_video(p)[0] for k, p in paths.items()}
    assert frames[True].shape == (12, 32, 48, 3)
    assert np.array_equal(frames[True], frames[False])
    assert np.abs(frames[True][0].astype(int) - frames[True][-1].astype(int)).max() > 10  # the frames differ
