"""Process handling for the systems under test: trees, memory, pinning, stopping, py-spy summaries."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from bench.peers import (
    CLOCK_TICKS,
    CpuSample,
    cpu_sample,
    foreign_share,
    memory,
    pin,
    process_tree,
    spawn,
    stop_all,
    summarize_stacks,
)

ENTRY = "thread (7): MainThread;<module> (ccr-fast:6);MPServer._spawn_rsgi_worker (granian/server/mp.py:317)"
COLLAPSED = f"""\
{ENTRY};handle (ccr_fast/server/messages.py:79);send (aiohttp/client.py:930) 6
{ENTRY};handle (ccr_fast/server/messages.py:80);translate (ccr_fast/protocol/openai_request.py:54) 3
thread (7): MainThread;getrandbits (random.py:805) 1
thread (7): MainThread;__init__ (<string>:9) 1
{ENTRY} 10
thread (9) 500
thread (9);_schedule (granian/_futures.py:96) 2
"""


def test_summarize_stacks() -> None:
    summary = summarize_stacks(COLLAPSED)
    # Granian's I/O thread (mostly without Python frames) is left out; the loop thread is summarised
    assert summary["thread"] == "thread (7): MainThread"
    assert summary["entry"] == "MPServer._spawn_rsgi_worker (granian/server/mp.py)"
    assert summary["samples"] == 21
    assert summary["native_share"] == 10 / 21
    assert summary["self"][0] == {"name": "send (aiohttp/client.py)", "share": 6 / 21}
    inclusive = {row["name"]: row["share"] for row in summary["inclusive"]}
    # two lines of one function count together, once per stack
    assert inclusive["handle (ccr_fast/server/messages.py)"] == pytest.approx(9 / 21)
    packages = {row["name"]: row["share"] * 21 for row in summary["self_by_package"]}
    assert packages == pytest.approx(
        {"aiohttp": 6, "ccr_fast.protocol": 3, "random": 1, "(no source file)": 1}
    )


def test_summarize_empty_profile() -> None:
    assert summarize_stacks("") == {"samples": 0}


#: a parent with one child; on SIGTERM the parent stops the child and exits, as Granian's master does
PARENT = """
import signal, subprocess, sys, time
child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
signal.signal(signal.SIGTERM, lambda *_: (child.terminate(), child.wait(), sys.exit(0)))
print("ready", flush=True)
time.sleep(60)
"""


def test_spawned_tree_memory_and_stop(tmp_path: Path) -> None:
    cpus = {min(os.sched_getaffinity(0))}
    server = spawn("parent", [sys.executable, "-c", PARENT], port=0, workdir=tmp_path, cpus=cpus)
    try:
        deadline = time.monotonic() + 10
        while "ready" not in server.tail() and time.monotonic() < deadline:
            time.sleep(0.01)
        tree = server.pids()
        assert tree[0] == server.proc.pid and len(tree) == 2
        child = tree[1]
        assert os.sched_getaffinity(child) == cpus
        everything = os.sched_getaffinity(0)
        pin(tree, everything)
        assert os.sched_getaffinity(child) == everything
        used = memory(server.proc.pid)
        assert len(used["processes"]) == 2
        assert used["rss_mb"] > 1 and used["pss_mb"] > 0
    finally:
        stop_all([server])
    assert server.proc.poll() is not None
    assert process_tree(child) == []


def test_process_tree_of_a_missing_process() -> None:
    assert process_tree(2**22 + 12345) == []


def test_foreign_share_arithmetic() -> None:
    start = CpuSample(at=10.0, busy=1000, ours=300)
    # 2 s on 2 CPUs at 100 ticks/s = 400 ticks of capacity; 250 busy, 150 of them ours
    assert foreign_share(start, CpuSample(12.0, 1250, 450), cpus=2, hz=100) == 0.25
    assert foreign_share(start, CpuSample(12.0, 1100, 450), cpus=2, hz=100) == 0.0  # clamped
    assert foreign_share(start, start, cpus=2, hz=100) == 0.0


def test_cpu_sample_counts_this_process_as_ours() -> None:
    before = cpu_sample([])
    spent = os.times()
    while os.times().user - spent.user < 0.1:  # 0.1 s of CPU in this very process
        pass
    after = cpu_sample([])
    assert after.ours - before.ours >= 0.1 * CLOCK_TICKS - 2
    assert after.busy - before.busy >= after.ours - before.ours - 2


def test_a_zombie_is_not_part_of_a_tree() -> None:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:  # exited but not reaped yet: a zombie
        if Path(f"/proc/{child.pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z":
            break
        time.sleep(0.01)
    try:
        assert child.pid not in process_tree(os.getpid())
        assert process_tree(child.pid) == []
    finally:
        child.wait()
