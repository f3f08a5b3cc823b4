"""Native lifetimes under threads and files: sessions of ended threads are freed, close()
waits for a call in progress, and a model loaded from a path does not depend on the file.

The thread tests run in a child process: a crash there (the defect they guard against)
fails the test instead of killing the test run, and /proc/self/status then measures only
what the test itself did."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
from conftest import tiny_classifier

import xnor_edge

needs_default = pytest.mark.skipif(xnor_edge.default_model_path() is None, reason="no default model")


def _child(code: str, timeout: float = 120) -> str:
    r = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True, timeout=timeout
    )
    assert r.returncode == 0, f"child exited with {r.returncode}:\n{r.stdout}\n{r.stderr[-3000:]}"
    return r.stdout


@needs_default
@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="needs /proc")
def test_sessions_of_ended_threads_do_not_pile_up():
    """A server that runs each request in a new thread: 500 short-lived threads call run on
    the default model with 2 threads per session. Their sessions (each with a worker
    thread and scratch memory) must not pile up until close(): a thread's session is
    reused after it ends, and of a burst of concurrent threads' sessions at most
    IDLE_SESSIONS stay."""
    out = _child(
        """
        import threading, numpy as np, xnor_edge

        def status():
            fields = dict(line.split(":", 1) for line in open("/proc/self/status"))
            return int(fields["Threads"]), int(fields["VmRSS"].split()[0]) // 1024

        m = xnor_edge.load(xnor_edge.default_model_path(), num_threads=2)
        x = np.zeros(m.input_shape, np.float32)
        want = m.run(x)
        threads0, rss0 = status()
        results = []
        for _ in range(500):
            t = threading.Thread(target=lambda: results.append(m.run(x)))
            t.start()
            t.join()
        threads1, rss1 = status()
        assert len(results) == 500 and all(np.array_equal(r, want) for r in results)
        burst = [threading.Thread(target=lambda: [m.run(x) for _ in range(3)]) for _ in range(16)]
        for t in burst:
            t.start()
        for t in burst:
            t.join()
        alive = len(m._sessions)
        assert alive <= xnor_edge.model.IDLE_SESSIONS + 1, alive  # + the main thread's own
        assert status()[0] <= threads0 + 8, status()
        print(threads0, threads1, rss0, rss1, alive)
        m.close()
        """
    )
    threads0, threads1, rss0, rss1, alive = map(int, out.split())
    assert threads1 <= threads0 + 8, f"OS threads {threads0} -> {threads1}"
    assert rss1 <= rss0 + 20, f"RSS {rss0} -> {rss1} MB"
    assert alive >= 2  # the burst's sessions were kept for reuse, up to IDLE_SESSIONS


@needs_default
@pytest.mark.parametrize("num_threads", [1, 2])
def test_close_waits_for_a_call_in_progress(num_threads):
    """One thread runs the default model in a loop while another closes its session (then,
    in a second round, the model): no crash, no deadlock; the runner's next call raises
    ClosedError."""
    out = _child(
        f"""
        import random, threading, time, numpy as np, xnor_edge
        from xnor_edge import ClosedError

        m = xnor_edge.load(xnor_edge.default_model_path(), num_threads={num_threads})
        x = np.zeros(m.input_shape, np.float32)
        want = m.run(x)

        def runner(run, outcome):
            try:
                while True:
                    if not np.array_equal(run(x), want):
                        outcome.append("wrong output")
                        return
                    outcome.append("ran")
            except ClosedError:
                outcome.append("closed")
            except BaseException as e:
                outcome.append(repr(e))

        random.seed(0)
        for i in range(20):
            s = m.session()
            outcome = []
            t = threading.Thread(target=runner, args=(s.run, outcome))
            t.start()
            time.sleep(random.uniform(0.0, 0.01))
            s.close()
            t.join(60)
            assert not t.is_alive(), "runner hung"
            assert outcome[-1] == "closed" and set(outcome[:-1]) <= {{"ran"}}, outcome[-3:]
        for i in range(5):
            m = xnor_edge.load(xnor_edge.default_model_path(), num_threads={num_threads})
            outcomes = [[] for _ in range(2)]
            ts = [threading.Thread(target=runner, args=(m.run, o)) for o in outcomes]
            for t in ts:
                t.start()
            time.sleep(random.uniform(0.0, 0.01))
            m.close()
            for t in ts:
                t.join(60)
                assert not t.is_alive(), "runner hung"
            for o in outcomes:
                assert o[-1] == "closed" and set(o[:-1]) <= {{"ran"}}, o[-3:]
        print("ok")
        """
    )
    assert out.strip() == "ok"


def _mapped(path: Path) -> bool:
    return str(path.resolve()) in Path("/proc/self/maps").read_text()


@pytest.mark.skipif(not Path("/proc/self/maps").exists(), reason="needs /proc")
def test_load_from_path_reads_the_file_and_mmap_is_an_option(tmp_path, rng):
    """load(path) keeps nothing of the file: overwriting it in place, replacing or deleting
    it leaves the model's outputs as they were. load(path, mmap=True) maps the file."""
    p = tmp_path / "m.xnor"
    first, other = tiny_classifier(seed=0), tiny_classifier(seed=1)
    assert len(first) == len(other) and first != other
    p.write_bytes(first)
    x = rng.normal(size=(12, 12, 3)).astype(np.float32)
    with xnor_edge.load(other) as m_other:
        y_other = m_other.run(x)
    m = xnor_edge.load(p)
    assert not _mapped(p)
    y = m.run(x)
    assert not np.array_equal(y, y_other)
    with xnor_edge.load(p, mmap=True) as mm:
        assert _mapped(p)
        np.testing.assert_array_equal(mm.run(x), y)
    with open(p, "r+b") as f:  # rewritten in place
        f.write(other)
    np.testing.assert_array_equal(m.run(x), y)
    with xnor_edge.load(p) as m2:  # the file did change
        np.testing.assert_array_equal(m2.run(x), y_other)
    (tmp_path / "new.xnor").write_bytes(b"x" * 64)  # replaced by a short file (SIGBUS if mapped)
    os.replace(tmp_path / "new.xnor", p)
    np.testing.assert_array_equal(m.run(x), y)
    p.unlink()
    np.testing.assert_array_equal(m.run(x), y)
    m.close()
    with pytest.raises(ValueError, match="mmap=True needs a model file path"):
        xnor_edge.load(first, mmap=True)
    for mmap in (False, True):
        with pytest.raises(xnor_edge.ModelError, match="no such file") as ei:
            xnor_edge.load(p, mmap=mmap)
        assert str(p) in str(ei.value)
        (tmp_path / "bad.xnor").write_bytes(first[:100])
        with pytest.raises(xnor_edge.ModelError, match=r"(?i)truncat|size") as ei:
            xnor_edge.load(tmp_path / "bad.xnor", mmap=mmap)
        assert str(tmp_path / "bad.xnor") in str(ei.value)
