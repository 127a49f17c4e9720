"""Data-parallel training under torchrun (gloo, 2 processes on this machine): the same
trajectory as one process, stops agreed by every rank, resume, two "nodes" on loopback.
Every run is joined with a deadline and its processes killed if it passes."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

ROOT = Path(__file__).resolve().parents[1]
DEADLINE = 180  # seconds: a hang fails the test instead of the suite
SMALL = ["mnist-sample", "--classes", "3,7", "--no-deskew", "--quiet", "--device", "cpu"]


def env() -> dict:
    e = {k: v for k, v in os.environ.items() if k not in ("RANK", "WORLD_SIZE", "LOCAL_RANK")}
    e["PYTHONPATH"] = str(ROOT / "src") + os.pathsep + e.get("PYTHONPATH", "")
    e.setdefault("OMP_NUM_THREADS", "1")
    return e


def run(args: list[str], cwd: Path) -> subprocess.CompletedProcess:
    """A command joined with a deadline; its whole process group is killed after it."""
    p = subprocess.Popen(
        args, cwd=cwd, env=env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        start_new_session=True,
    )  # fmt: skip
    try:
        out, err = p.communicate(timeout=DEADLINE)
    except subprocess.TimeoutExpired:
        os.killpg(p.pid, signal.SIGKILL)
        out, err = p.communicate()
        pytest.fail(f"{args} hung past {DEADLINE} s:\n{out}\n{err}")
    return subprocess.CompletedProcess(args, p.returncode, out, err)


def torchrun(*args: str) -> list[str]:
    return [sys.executable, "-m", "torch.distributed.run", *args]


def descent(*args: str) -> list[str]:
    return [sys.executable, "-m", "descent", *args]


def history(run_dir: Path) -> list[dict]:
    rows = json.loads((run_dir / "summary.json").read_text())["history"]
    return [{k: v for k, v in r.items() if k != "time"} for r in rows]


def test_two_ranks_with_global_batch_b_follow_one_process_with_batch_b(tmp_path):
    # plain SGD, batches of 63 (shares of 32 and 31), a last batch of 53 (27 and 26)
    opts = [*SMALL, "--optimizer", "sgd", "--lr", "0.5", "--batch-size", "63", "--epochs", "3",
            "--patience", "0", "--autograd"]  # fmt: skip
    one = run(descent("train", *opts, "--out", "one"), tmp_path)
    two = run(torchrun("--standalone", "--nproc-per-node", "2", "-m", "descent", "train", *opts,
                       "--out", "two"), tmp_path)  # fmt: skip
    assert one.returncode == 0, one.stderr
    assert two.returncode == 0, two.stderr
    a, b = (
        load_file(tmp_path / "one" / "model.safetensors"),
        load_file(tmp_path / "two" / "model.safetensors"),
    )
    for name in a:
        torch.testing.assert_close(b[name], a[name], atol=1e-6, rtol=0)
    h1, h2 = history(tmp_path / "one"), history(tmp_path / "two")
    assert len(h1) == len(h2) == 3
    for r1, r2 in zip(h1, h2, strict=True):
        assert r1.keys() == r2.keys()
        for k in r1:
            assert r2[k] == pytest.approx(r1[k], rel=1e-6, abs=1e-7), k
    cfg = json.loads((tmp_path / "two" / "config.json").read_text())
    assert cfg["world_size"] == 2
    assert json.loads((tmp_path / "one" / "config.json").read_text())["world_size"] == 1


def _children(pid: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                found.append(int(entry.name))
    return found


def _rank_of(pid: int) -> int | None:
    try:
        environ = (Path("/proc") / str(pid) / "environ").read_bytes().split(b"\0")
    except OSError:
        return None
    for item in environ:
        if item.startswith(b"RANK="):
            return int(item[5:])
    return None


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="reads /proc")
def test_sigint_to_one_rank_stops_every_rank_then_resume_under_torchrun_finishes(tmp_path):
    loud = [o for o in SMALL if o != "--quiet"]  # its header says when the loop starts
    opts = [*loud, "--optimizer", "sgd", "--lr", "0.1", "--batch-size", "8", "--steps",
            "1000000", "--patience", "0", "--checkpoint-every", "0", "--out", "run"]  # fmt: skip
    p = subprocess.Popen(
        descent("train", *opts, "--nproc", "2"), cwd=tmp_path, env=env(),
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True,
    )  # fmt: skip
    try:
        t0, workers = time.monotonic(), {}
        while len(workers) < 2 and time.monotonic() - t0 < DEADLINE:
            workers = {_rank_of(c): c for c in _children(p.pid) if _rank_of(c) is not None}
            time.sleep(0.2)
        assert set(workers) == {0, 1}, "torchrun did not start two workers"
        lines = []
        for line in p.stdout:  # printed after every rank has built its DDP learner
            lines.append(line)
            if line.startswith("gradient:"):
                break
        time.sleep(1)  # inside the training loop
        os.kill(workers[1], signal.SIGINT)  # rank 1 only
        out, err = p.communicate(timeout=DEADLINE)
        out = "".join(lines) + out
    finally:
        if p.poll() is None:
            os.killpg(p.pid, signal.SIGKILL)
            p.communicate()
    assert p.returncode == 130, err
    assert "interrupted by SIGINT in another process" in out
    for pid in workers.values():
        assert (
            not Path(f"/proc/{pid}").exists()
            or "Z" in Path(f"/proc/{pid}/stat").read_text().split()[2]
        )
    saved = sorted((tmp_path / "run" / "checkpoints").glob("*.json"))
    assert len(saved) == 1
    steps = json.loads(saved[0].read_text())["state"]["steps"]
    resumed = run(torchrun("--standalone", "--nproc-per-node", "2", "-m", "descent", "resume",
                           "run", "--steps", str(steps + 20), "--quiet"), tmp_path)  # fmt: skip
    assert resumed.returncode == 0, resumed.stderr
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert summary["stopped"] == "max_epochs"


STOP_ON_ONE_RANK = """
import json, sys, torch
from descent import Learner
from descent.core.events import Callback, CancelFit
from descent.data.batches import Batches
from descent.distributed.group import Group

class StopOnRankOne(Callback):
    def after_batch(self):
        if self.learner.training and self.learner.steps == 7 and group.rank == 1:
            raise CancelFit("target_reached", "rank 1 reached its target")

group = Group.start(torch.device("cpu"))
g = torch.Generator().manual_seed(0)
x = torch.randn(100, 3, generator=g)
y = x @ torch.tensor([[1.0], [-2.0], [0.5]])
learn = Learner(torch.nn.Linear(3, 1), Batches(x, y, 10, seed=0), Batches(x, y, 25),
                optimizer="sgd", lr=0.1, callbacks=[StopOnRankOne()], progress=False,
                group=group)
result = learn.fit(5)
# a file per rank: two processes printing to one pipe can interleave their lines
with open(f"rank{group.rank}.json", "w") as f:
    json.dump({"rank": group.rank, "stopped": str(result.stopped), "steps": result.steps,
               "epochs": result.epochs, "message": result.message}, f)
learn.gradient = learn.opt = learn.preds = learn.loss = None
group.close()
"""


def test_a_stop_rule_met_on_one_rank_stops_every_rank_at_the_same_batch(tmp_path):
    script = tmp_path / "stop.py"
    script.write_text(STOP_ON_ONE_RANK)
    done = run(torchrun("--standalone", "--nproc-per-node", "2", str(script)), tmp_path)
    assert done.returncode == 0, done.stderr
    results = [json.loads((tmp_path / f"rank{r}.json").read_text()) for r in (0, 1)]
    assert [r["rank"] for r in results] == [0, 1]
    assert {r["stopped"] for r in results} == {"target_reached"}
    assert {r["steps"] for r in results} == {7}
    assert "another process stopped" in results[0]["message"]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_two_nodes_on_loopback_train_one_run(tmp_path):
    endpoint = f"127.0.0.1:{_free_port()}"
    node = torchrun("--nnodes", "2", "--nproc-per-node", "1", "--rdzv-backend", "c10d",
                    "--rdzv-endpoint", endpoint, "--rdzv-id", "descent-test", "-m", "descent",
                    "train", *SMALL, "--epochs", "2", "--patience", "0",
                    "--out", "run")  # fmt: skip
    procs = [
        subprocess.Popen(node, cwd=tmp_path, env=env(), stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True, start_new_session=True)
        for _ in range(2)
    ]  # fmt: skip
    try:
        outs = [p.communicate(timeout=DEADLINE) for p in procs]
    finally:
        for p in procs:
            if p.poll() is None:
                os.killpg(p.pid, signal.SIGKILL)
                p.communicate()
    assert [p.returncode for p in procs] == [0, 0], outs
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert summary["epochs"] == 2
    assert json.loads((tmp_path / "run" / "config.json").read_text())["world_size"] == 2
