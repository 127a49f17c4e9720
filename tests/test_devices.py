"""--device and --threads: the choice, the header, device-free files; on CUDA (marked
`cuda`, skipped without a GPU) a run trained on the GPU resumes and predicts on the CPU
and the other way round."""

from __future__ import annotations

import json
import os

import pytest
import torch
from safetensors import safe_open

from descent import Learner
from descent.cli import main
from descent.data.batches import Batches
from descent.distributed.devices import resolve_device
from descent.distributed.process import Process
from descent.distributed.threads import (
    default_threads,
    others_running,
    prepare_openmp,
    set_threads,
)
from descent.errors import ConfigError

SMALL = ["train", "mnist-sample", "--classes", "3,7", "--no-deskew", "--epochs", "2",
         "--patience", "0"]  # fmt: skip


def test_auto_is_the_cpu_here_and_a_missing_gpu_is_a_clear_error():
    if not torch.cuda.is_available():
        assert resolve_device("auto") == torch.device("cpu")
        with pytest.raises(ConfigError, match="no CUDA GPU"):
            resolve_device("cuda")
    with pytest.raises(ConfigError, match="unknown --device 'tpu'"):
        resolve_device("tpu")


def test_float64_work_passes_mps_over_and_refuses_it_by_name(monkeypatch):
    import descent.distributed.devices as devices

    monkeypatch.setattr(devices, "mps_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert resolve_device("auto") == torch.device("mps")
    assert resolve_device("auto", float64=True) == torch.device("cpu")
    with pytest.raises(ConfigError, match="--device mps: a fit computes in float64"):
        resolve_device("mps", float64=True)


def test_bad_device_and_threads_options_exit_2(tmp_path, capsys):
    with pytest.raises(SystemExit) as e:
        main([*SMALL, "--device", "gpu0", "--out", str(tmp_path / "a")])
    assert e.value.code == 2
    assert "gpu0" in capsys.readouterr().err
    assert main([*SMALL, "--threads", "0", "--out", str(tmp_path / "b")]) == 2
    assert "--threads must be at least 1" in capsys.readouterr().err
    assert not (tmp_path / "b").exists()


def test_process_reads_torchruns_variables():
    p = Process.from_env(
        {"RANK": "3", "WORLD_SIZE": "4", "LOCAL_RANK": "1", "LOCAL_WORLD_SIZE": "2"}
    )
    assert (p.rank, p.world_size, p.local_rank, p.local_world_size) == (3, 4, 1, 2)
    assert p.distributed and not p.is_main
    assert Process.from_env({}) == Process()
    with pytest.raises(ConfigError, match="WORLD_SIZE"):
        Process.from_env({"RANK": "2", "WORLD_SIZE": "2"})
    with pytest.raises(ConfigError, match="RANK='x'"):
        Process.from_env({"RANK": "x"})


def test_default_threads_share_the_cores_not_busy_among_local_processes(tmp_path):
    cores = len(os.sched_getaffinity(0))
    assert default_threads(Process(), busy=0) == cores
    assert default_threads(Process(), busy=cores) == 1  # every core busy: one thread
    assert default_threads(Process(), busy=1) == max(1, cores - 1)
    # torchrun's processes share the cores; the run's own processes are not "busy"
    assert default_threads(Process(0, 2, 0, 2), busy=5) == max(1, cores // 2)
    loadavg = tmp_path / "loadavg"
    loadavg.write_text("2.63 1.67 1.32 3/86 8357\n")  # this reader and 2 others running
    assert others_running(loadavg) == 2
    loadavg.write_text("garbage")
    assert others_running(loadavg) == 0
    assert others_running(tmp_path / "missing") == 0
    env = {}
    prepare_openmp(env)
    assert env == {"GOMP_SPINCOUNT": "10000"}
    for mine in ({"OMP_WAIT_POLICY": "ACTIVE"}, {"GOMP_SPINCOUNT": "0"}):
        env = dict(mine)
        prepare_openmp(env)
        assert env == mine  # the user's choice stays


def test_omp_num_threads_is_the_default_when_set(monkeypatch):
    before = torch.get_num_threads()
    try:
        monkeypatch.setenv("OMP_NUM_THREADS", "1")
        assert set_threads() == 1 and torch.get_num_threads() == 1
        monkeypatch.setenv("OMP_NUM_THREADS", "x")  # not a count: the default
        assert set_threads() == default_threads()
    finally:
        torch.set_num_threads(before)


def test_header_names_device_and_threads_and_files_are_device_free(tmp_path, capsys):
    out = tmp_path / "run"
    assert main([*SMALL, "--device", "cpu", "--threads", "1", "--out", str(out)]) == 0
    assert "device cpu, 1 thread" in capsys.readouterr().out
    cfg = json.loads((out / "config.json").read_text())
    assert (cfg["device"], cfg["threads"], cfg["world_size"]) == ("cpu", 1, 1)
    files = [out / "model.safetensors", *sorted((out / "checkpoints").glob("*.safetensors"))]
    assert len(files) >= 2
    for path in files:  # safetensors stores no device: every tensor loads on the CPU
        with safe_open(path, framework="pt", device="cpu") as f:
            for key in f.keys():  # noqa: SIM118 - safe_open is no dict
                assert f.get_tensor(key).device.type == "cpu"


def test_learner_device_moves_model_and_data_once():
    x, y = torch.randn(40, 3), torch.randn(40, 1)
    model = torch.nn.Linear(3, 1)
    learn = Learner(model, Batches(x, y, 8), device="cpu", progress=False)
    assert learn.device == torch.device("cpu")
    assert learn.train_batches.x.device.type == "cpu"


@pytest.mark.cuda
def test_a_cuda_run_matches_the_cpu_run_and_checkpoints_cross_devices(tmp_path, capsys):
    opts = [*SMALL, "--optimizer", "sgd", "--lr", "0.5", "--autograd", "--checkpoint-every", "1"]
    # resumed on the other device than the one that wrote the checkpoint
    assert main([*opts, "--device", "cpu", "--out", str(tmp_path / "cpu")]) == 0
    assert main([*opts, "--device", "cuda", "--out", str(tmp_path / "gpu")]) == 0
    assert "device cuda:0" in capsys.readouterr().out
    from safetensors.torch import load_file

    a = load_file(tmp_path / "cpu" / "model.safetensors")
    b = load_file(tmp_path / "gpu" / "model.safetensors")
    for k in a:
        torch.testing.assert_close(b[k], a[k], atol=1e-5, rtol=1e-5)
    # written on the GPU, extended on the CPU; written on the CPU, extended on the GPU
    assert main(["resume", str(tmp_path / "gpu"), "--epochs", "3", "--device", "cpu"]) == 0
    cfg = json.loads((tmp_path / "cpu" / "config.json").read_text())
    assert cfg["device"] == "cpu"
    assert main(["resume", str(tmp_path / "cpu"), "--epochs", "3", "--device", "cuda"]) == 0


@pytest.mark.cuda
def test_learner_on_cuda_keeps_data_there_and_equals_cpu():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(200, 5, generator=g)
    y = x @ torch.randn(5, 1, generator=g)
    results = {}
    for dev in ("cpu", "cuda"):
        model = torch.nn.Linear(5, 1)
        torch.nn.init.zeros_(model.weight)
        torch.nn.init.zeros_(model.bias)
        learn = Learner(model, Batches(x, y, 32, seed=0), optimizer="sgd", lr=0.1,
                        device=dev, progress=False)  # fmt: skip
        assert learn.train_batches.x.device.type == dev
        learn.fit(3)
        results[dev] = model.weight.detach().cpu()
    torch.testing.assert_close(results["cuda"], results["cpu"], atol=1e-5, rtol=1e-5)


def _groups_table(path):
    rows = ["g,t,y"] + [f"{g},{t},{(g + 1) * 0.5 * t + g}" for g in range(3) for t in range(6)]
    path.write_text("\n".join(rows) + "\n")
    return ["fit", str(path), "--model", "a*t + b", "--y", "y", "--by", "g", "--no-plots"]


def test_fit_by_refuses_mps_before_any_folder_and_runs_on_the_cpu(tmp_path, capsys):
    args = _groups_table(tmp_path / "g.csv")
    for how in ([], ["--by", "g"]):  # a single fit is float64 too
        argv = [a for a in args if a not in ("--by", "g")] + how
        assert main([*argv, "--device", "mps", "--out", str(tmp_path / "m")]) == 2
        assert "float64" in capsys.readouterr().err
        assert not (tmp_path / "m").exists()
    assert main([*args, "--device", "cpu", "--out", str(tmp_path / "c")]) == 0
    assert "on cpu" in capsys.readouterr().out


@pytest.mark.cuda
def test_fit_by_on_cuda_equals_the_cpu(tmp_path, capsys):
    args = _groups_table(tmp_path / "g.csv")
    for dev in ("cpu", "cuda"):
        assert main([*args, "--device", dev, "--out", str(tmp_path / dev)]) == 0
    assert "on cuda" in capsys.readouterr().out
    cpu = (tmp_path / "cpu" / "groups.csv").read_text().splitlines()
    gpu = (tmp_path / "cuda" / "groups.csv").read_text().splitlines()
    assert cpu[0] == gpu[0]
    for a, b in zip(cpu[1:], gpu[1:], strict=True):
        for u, v in zip(a.split(","), b.split(","), strict=True):
            try:
                assert float(u) == pytest.approx(float(v), rel=1e-9, abs=1e-12)
            except ValueError:
                assert u == v
