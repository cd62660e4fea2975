"""Sweeps on real engines: the local process pool, a real Ray head on 127.0.0.1, submitit's local
executor (the slurm code path) — every cell's numbers equal across executors (same seeds, one torch
thread per cell, CPU determinism); a driver killed by SIGINT or SIGKILL loses at most the cells in
flight and a rerun runs exactly the missing ones; a cell that raises is recorded and counted.

Every sweep runs as a subprocess (``python -m empirics.cli sweep ...``), as a user runs it.  The
8 digits cells train 2 epochs and attack for 1 (about 3 s each on one core).
"""

from __future__ import annotations

import collections
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
TINY = ROOT / "sweeps" / "digits_tiny.toml"
# RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0: Ray's single-node mode, in which it takes 127.0.0.1 as the
# node's address.  Without it `ray start --node-ip-address 127.0.0.1` replaces the loopback address
# by the machine's outward one and its raylet, agents and GCS listen on every interface.
ENV = dict(os.environ, MPLBACKEND="Agg", OMP_NUM_THREADS="1", RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER="0")


def _cmd(spec, out, *extra):
    return [sys.executable, "-m", "empirics.cli", "sweep", str(spec), "--out", str(out), *extra]


def _sweep(spec, out, *extra):
    # stdout to a file: submitit's local jobs inherit the driver's descriptors and outlive it
    log = Path(out).with_suffix(".log")
    with open(log, "a") as fh:
        p = subprocess.run(_cmd(spec, out, *extra), env=ENV, stdout=fh, stderr=subprocess.STDOUT)
    return p.returncode, log.read_text()


def _results(out) -> dict:
    """key -> (status, result) of every record under OUT/records."""
    got = {}
    for f in sorted((Path(out) / "records").glob("*.json")):
        d = json.loads(f.read_text())
        got[d["key"]] = (d["status"], d["result"])
    return got


def _free_ports(n: int) -> list[int]:
    """n distinct free ports on 127.0.0.1 (all held open while choosing, so none is handed out twice)."""
    socks = [socket.socket() for _ in range(n)]
    try:
        for s in socks:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


def _listening_elsewhere(pid_group: int) -> list[str]:
    """Local addresses (hex, as /proc/net/tcp{,6} writes them) on which a process of that group
    listens beyond loopback: the group's socket inodes from /proc/PID/fd, matched against the
    kernel's TCP tables in state LISTEN (0A)."""
    inodes = set()
    for d in Path("/proc").iterdir():
        try:
            if not (d.name.isdigit() and os.getpgid(int(d.name)) == pid_group):
                continue
            for fd in (d / "fd").iterdir():
                link = os.readlink(fd)
                if link.startswith("socket:["):
                    inodes.add(link[8:-1])
        except (ProcessLookupError, PermissionError, FileNotFoundError):
            pass  # a process that ended meanwhile
    loopback = ("0100007F", "00000000000000000000000001000000", "0000000000000000FFFF00000100007F")
    bad = []
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            f = line.split()
            local, state, inode = f[1], f[3], f[9]
            if state == "0A" and inode in inodes and local.rsplit(":", 1)[0] not in loopback:
                bad.append(local)
    return bad


def _local(spec, out):
    """The reference numbers: the local executor, 2 workers × 1 torch thread."""
    rc, log = _sweep(spec, out, "--workers", "2", "--threads", "1")
    assert rc == 0, log[-3000:]
    got = _results(out)
    assert got and all(s == "ok" for s, _ in got.values()), got
    assert f"this run: {len(got)} cells ran ({len(got)} ok, 0 failed, 0 error), 0 were already done" in log
    return got


@pytest.fixture
def ray_head():
    """A real Ray head on 127.0.0.1 (its own process group, stopped at the end)."""
    pytest.importorskip("ray")  # the [ray] extra (CI installs it)
    port, client, dash, agent = _free_ports(4)  # no fixed default port: tests run in parallel
    # Ray's client server needs the `ray[client]` extra (grpcio): `ray start` refuses a client port
    # without it (the plain `ray` that the [ray] extra installs), and with it defaults to 10001.
    import importlib.util
    client_args = ["--ray-client-server-port", str(client)] if importlib.util.find_spec("grpc") else []
    tmp = tempfile.mkdtemp(prefix="ray", dir="/tmp")  # short: Ray's socket paths must fit 107 bytes
    ray_bin = Path(sys.executable).with_name("ray")
    log = open(Path(tmp) / "head.log", "w+")  # what `ray start` printed, shown if the head does not come up
    head = subprocess.Popen([str(ray_bin), "start", "--head", "--block", "--port", str(port), "--node-ip-address",
                             "127.0.0.1", "--num-cpus", "2", "--include-dashboard=false", "--disable-usage-stats",
                             *client_args, "--dashboard-port", str(dash),
                             "--dashboard-agent-listen-port", str(agent), "--temp-dir", tmp],
                            stdout=log, stderr=subprocess.STDOUT, start_new_session=True, env=ENV)
    try:
        while True:  # no clock: wait while the head runs and its GCS port is not yet open
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                if head.poll() is not None:
                    log.flush()
                    errs = sorted(Path(tmp).glob("session_*/logs/*.err"))
                    tail = "".join(f"\n--- {e.name}\n" + e.read_text(errors="replace")[-1500:] for e in errs[:6])
                    raise RuntimeError(f"the Ray head did not start (exit {head.poll()}):\n"
                                       f"{Path(log.name).read_text()[-3000:]}{tail}")
                time.sleep(0.5)
        yield f"127.0.0.1:{port}"
        assert not _listening_elsewhere(head.pid), "the Ray head listened beyond 127.0.0.1"
    finally:
        head.send_signal(signal.SIGTERM)  # `ray start --block` stops what it started
        try:
            head.wait(timeout=30)
        except subprocess.TimeoutExpired:
            pass
        try:
            os.killpg(head.pid, signal.SIGKILL)  # anything of that head still alive (our own group only)
        except ProcessLookupError:
            pass
        log.close()
        import shutil
        shutil.rmtree(tmp, ignore_errors=True)


def test_ray_and_submitit_executors_equal_local(ray_head, tmp_path):
    """One reference run on the local executor (8 cells), then (a) the same sweep through a real Ray
    head, every cell equal; (b) 4 of its cells through the slurm code path on submitit's local
    executor: submission returns at once, --status follows the jobs and aggregates, same numbers,
    and a second submission submits nothing.  (One test, so the reference runs once under xdist.)"""
    local = _local(TINY, tmp_path / "local")
    assert len(local) == 8

    out = tmp_path / "ray"
    rc, log = _sweep(TINY, out, "--executor", "ray", "--address", ray_head, "--threads", "1")
    assert rc == 0, log[-3000:]
    got = _results(out)
    assert set(got) == set(local)
    diff = [k for k in got if got[k] != local[k]]
    assert not diff, f"cells whose numbers differ between ray and local: {diff}"
    res = json.loads((out / "results.json").read_text())
    assert res["sweep"]["run"]["ray"]["cluster_resources"]["CPU"] == 2.0  # it joined our head, not a new cluster

    pytest.importorskip("submitit")  # the [slurm] extra (CI installs it)
    spec = tmp_path / "half.toml"  # 4 of the 8 cells (one process each: keep the machine's load small)
    spec.write_text(TINY.read_text().replace("seed = [0, 1, 2, 3]", "seed = [0, 1]"))
    out = tmp_path / "slurm"
    rc, log = _sweep(spec, out, "--executor", "slurm-local", "--threads", "1", "--time", "20")
    assert rc == 0 and "4 of 4 cells submitted" in log, log[-3000:]
    state = json.loads((out / "sweep" / "slurm.json").read_text())
    assert state["cluster"] == "local" and len(state["jobs"]) == 4
    from empirics.sweep.executors import job_states
    while len(_results(out)) < 4 and "RUNNING" in job_states(state, state["jobs"]).values():
        time.sleep(1)  # no clock: wait while a job runs; every job gone means every record is written
    assert len(_results(out)) == 4, f"the submitit jobs ended with {len(_results(out))} of 4 records"
    rc, log = _sweep(spec, out, "--status")
    assert rc == 0 and "4 cells: 4 ok" in log, log[-2000:]
    got = _results(out)
    assert set(got) <= set(local) and len(got) == 4
    assert got == {k: local[k] for k in got}
    rc, log = _sweep(spec, out, "--executor", "slurm-local")  # nothing left: nothing submitted
    assert rc == 0 and "0 of 4 cells submitted" in log


KILL_SPEC = """
[sweep]
experiment = "train"
name = "kill-test"
[grid]
seed = [0, 1, 2, 3, 4, 5, 6, 7]
[settings]
dataset = "digits"
sigma = 0.1
epochs = 4
lr = 0.003
attacks = []
eval_train = false
"""


def test_killed_driver_loses_only_cells_in_flight(tmp_path):
    """SIGINT, then SIGKILL, mid-sweep; the third run finishes: every cell ends exactly once."""
    spec = tmp_path / "kill.toml"
    spec.write_text(KILL_SPEC)
    out = tmp_path / "out"
    recs = out / "records"

    def n():
        return len(list(recs.glob("*.json"))) if recs.is_dir() else 0

    def start():
        # SIGINT back to its default in the child: a shell's background job (`cmd &`) inherits SIGINT
        # ignored, and Python then installs no KeyboardInterrupt handler (the sweep ran to the end)
        return subprocess.Popen(_cmd(spec, out, "--workers", "2", "--threads", "1"), env=ENV,
                                stdout=open(tmp_path / "log.txt", "a"), stderr=subprocess.STDOUT,
                                preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))

    def wait_for(k, p):
        while n() < k:
            assert p.poll() is None, "the sweep ended before it could be interrupted"
            time.sleep(0.05)

    p = start()
    wait_for(1, p)
    p.send_signal(signal.SIGINT)
    assert p.wait() == 130
    k1 = n()
    time.sleep(3)
    assert n() == k1 < 8  # no worker outlived the driver
    p = start()
    wait_for(k1 + 1, p)
    p.kill()
    p.wait()
    k2 = n()
    time.sleep(3)
    assert n() == k2 < 8  # the workers died with the driver (no orphan writes a record later)
    p = start()
    assert p.wait() == 0
    log = (tmp_path / "log.txt").read_text()
    assert f"this run: {8 - k2} cells ran ({8 - k2} ok, 0 failed, 0 error), {k2} were already done" in log
    assert n() == 8 and all(s == "ok" for s, _ in _results(out).values())
    ev = [json.loads(line) for f in (out / "sweep" / "events").glob("*.jsonl") for line in f.read_text().splitlines()]
    ends = collections.Counter(e["key"] for e in ev if e["event"] == "end")
    starts = collections.Counter(e["key"] for e in ev if e["event"] == "start")
    assert sorted(ends.values()) == [1] * 8  # every cell finished exactly once
    assert sum(starts.values()) - 8 <= 4  # restarted: only cells in flight at a kill (2 workers × 2 kills)
    print(f"records after SIGINT {k1}, after SIGKILL {k2}, final 8; third run ran {8 - k2}; cells started twice or "
          f"more: {sum(v > 1 for v in starts.values())}, finished more than once: {sum(v > 1 for v in ends.values())}")


ERROR_SPEC = """
[sweep]
experiment = "train"
name = "error-test"
[grid]
lam = [0.0, 0.01]
[settings]
dataset = "digits"
sigma = 0.1
epochs = 2
lr = 0.003
k_per_class = 500
bottleneck = 2  # 5,000 components of 2 × 2 covariances pass the memory guard; CEM then refuses 500 per class
attacks = []
eval_train = false
"""


def test_a_cell_that_raises_is_recorded_and_counted(tmp_path):
    """CEM with 500 components per class raises in the worker (digits has ~140 images per class):
    recorded as error with its message, the other cell finishes, exit status 1; a rerun retries it."""
    spec = tmp_path / "err.toml"
    spec.write_text(ERROR_SPEC)
    out = tmp_path / "out"
    rc, log = _sweep(spec, out, "--workers", "2", "--threads", "1")
    assert rc == 1, log[-3000:]
    got = _results(out)
    assert sorted(s for s, _ in got.values()) == ["error", "ok"]
    err = next(json.loads(f.read_text()) for f in (out / "records").glob("*.json")
               if json.loads(f.read_text())["status"] == "error")
    assert "k_per_class" in err["reason"] and err["config"]["train"]["defenses"][-1]["name"] == "cem"
    assert "this run: 2 cells ran (1 ok, 0 failed, 1 error)" in log
    assert "1 ok, 0 failed (near chance or diverged: valid, excluded from tables), 1 error" in log
    res = json.loads((out / "results.json").read_text())
    assert res["sweep"]["counts"] == {"ok": 1, "failed": 0, "error": 1, "missing": 0}
    rc, log = _sweep(spec, out, "--workers", "2", "--threads", "1")
    assert rc == 1 and "this run: 1 cells ran (0 ok, 0 failed, 1 error), 1 were already done" in log
