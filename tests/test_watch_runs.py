"""Run folders on the page: report.html written by every run and by `descent report`,
and `descent watch` following finished and running runs from their files."""

import io
import json
import re
import shutil
import threading
import time
import urllib.request

import pytest
from rich.console import Console

from descent.cli import main
from descent.commands.config import TrainConfig
from descent.commands.train import train_command
from descent.commands.watch import watch_command
from descent.errors import ConfigError
from descent.report.rundata import read_metrics, run_events
from descent.watch.follow import RunFollower, find_runs
from descent.watch.log import EventLog

QUIET = Console(quiet=True)
TRAIN = dict(source="mnist-sample", classes=["3", "7"], epochs=3, batch_size=256, quiet=True)


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    """A train run of 3 epochs, finished."""
    out = tmp_path_factory.mktemp("runs") / "three"
    train_command(TrainConfig(**TRAIN, out=str(out)), QUIET)
    return out


def embedded_events(path):
    text = path.read_text()
    found = re.search(r'<script [^>]*id="descent-events">(.*?)</script>', text, re.S)
    return json.loads(found.group(1))


def test_every_train_run_leaves_a_report_with_its_history_weights_and_plots(finished):
    events = embedded_events(finished / "report.html")
    kinds = [e["type"] for e in events]
    assert kinds.count("epoch") == 3 and "weights" in kinds and kinds[-1] == "end"
    records = [e["record"] for e in events if e["type"] == "epoch"]
    assert records == read_metrics(finished / "metrics.csv")
    (weights,) = [e for e in events if e["type"] == "weights"]
    assert weights["shape"] == [1, 28, 28] and weights["labels"] == ["7 vs 3"]
    assert events[-1]["stopped"] == "max_epochs" and "valid_accuracy" in events[-1]["final"]
    assert events[0]["config"]["command"] == "train"
    assert (finished / "report.html").read_text().count("data:image/png;base64,") >= 4


def test_descent_report_rewrites_it_from_the_folder_alone(finished, tmp_path):
    out = tmp_path / "again.html"
    assert main(["report", str(finished), "--out", str(out)]) == 0
    assert embedded_events(out) == embedded_events(finished / "report.html")
    assert main(["report", str(tmp_path / "nothing")]) == 2


def test_the_follower_reads_a_running_run_from_its_checkpoints_then_its_end(finished, tmp_path):
    running = tmp_path / "runs" / "going"
    shutil.copytree(finished, running)
    for name in ("summary.json", "metrics.csv", "report.html"):
        (running / name).unlink()  # as while it trains: config, checkpoints, no end yet
    log = EventLog()
    follower = RunFollower(log, [tmp_path / "runs"])
    follower.poll()
    kinds = [e["type"] for e in log.events()]
    assert kinds.count("run") == 1 and kinds.count("epoch") == 3 and "end" not in kinds
    assert follower.poll() == 0  # nothing changed, nothing sent
    for name in ("summary.json", "metrics.csv"):
        shutil.copy(finished / name, running / name)
    follower.poll()
    kinds = [e["type"] for e in log.events()]
    assert kinds.count("epoch") == 3 and kinds.count("end") == 1 and kinds.count("run") == 1
    shutil.copytree(finished, tmp_path / "runs" / "later")  # a new run appears in runs/
    follower.poll()
    assert {e["run"] for e in log.events()} == {"going", "later"}


def test_find_runs_takes_run_folders_and_folders_of_them(finished, tmp_path):
    assert find_runs([finished]) == [finished]
    assert find_runs([finished.parent]) == [finished]
    assert find_runs([tmp_path]) == []


def read_stream(url, until, deadline):
    """Events from the page's stream until `until(events)` or the deadline."""
    events = []
    with urllib.request.urlopen(url, timeout=10) as stream:
        while time.monotonic() < deadline and not until(events):
            line = stream.readline().decode()
            if line.startswith("data: {") and '"type"' in line:
                events.append(json.loads(line[len("data: ") :]))
    return events


def test_descent_watch_serves_the_runs_of_a_folder_overlaid(finished, tmp_path):
    shutil.copytree(finished, tmp_path / "runs" / "a")
    shutil.copytree(finished, tmp_path / "runs" / "b")
    out, until = io.StringIO(), threading.Event()
    shown = {}
    server = threading.Thread(
        target=lambda: shown.update(n=watch_command([tmp_path / "runs"], out=out, until=until)),
        daemon=True,
    )
    server.start()
    try:
        deadline = time.monotonic() + 60
        while "watch: " not in out.getvalue() and time.monotonic() < deadline:
            time.sleep(0.05)
        url = re.search(r"watch: (\S+)", out.getvalue()).group(1).replace("/?", "/events?")
        events = read_stream(url, lambda ev: sum(e["type"] == "end" for e in ev) == 2, deadline)
    finally:
        until.set()
        server.join(30)
    assert not server.is_alive() and shown["n"] == 2
    assert {e["run"] for e in events if e["type"] == "end"} == {"a", "b"}
    assert sum(e["type"] == "epoch" for e in events) == 6


def test_descent_watch_says_what_it_needs(tmp_path):
    with pytest.raises(ConfigError, match="no train or fit run"):
        watch_command([tmp_path])
    with pytest.raises(ConfigError, match="no such folder"):
        watch_command([tmp_path / "missing"])


def test_run_events_of_a_folder_are_what_the_report_embeds(finished):
    assert run_events(finished) == embedded_events(finished / "report.html")


def test_lr_sweep_is_stopped_from_the_page_cleanly(tmp_path):
    """The page's Stop (a JSON POST with the token) ends an lr-sweep after the batch in
    progress: the epochs completed are kept and written, and the CLI would exit 130."""
    from descent.commands.lr_tools import lr_sweep_command
    from descent.watch.session import WatchSession

    cfg = TrainConfig(source="mnist-sample", classes=["3", "7"], batch_size=16, optimizer="sgd")
    out, done = io.StringIO(), {}
    with WatchSession(out=out) as watch:
        token = watch.server.token

        def press_stop():  # as the page does, once the first epoch is on the page
            deadline = time.monotonic() + 120
            while not any(e["type"] == "sweep" for e in watch.log.events()):
                assert time.monotonic() < deadline
                time.sleep(0.05)
            request = urllib.request.Request(
                f"http://127.0.0.1:{watch.server.port}/api/stop",
                data=json.dumps({"token": token}).encode(),
                headers={"Content-Type": "application/json"},
            )
            done["status"] = urllib.request.urlopen(request, timeout=10).status

        presser = threading.Thread(target=press_stop, daemon=True)
        presser.start()
        result = lr_sweep_command(
            cfg, [0.01, 0.1, 1.0], epochs=10_000, out=str(tmp_path / "sweep"), console=QUIET,
            watch=watch,
        )  # fmt: skip
        presser.join(30)
    sweep = result.sweep
    assert done["status"] == 202 and sweep.stopped == "interrupted"
    assert sweep.message.startswith("stopped from the page at epoch")
    assert 1 <= len(sweep.histories[0]) < 10_000
    saved = json.loads((tmp_path / "sweep" / "sweep.json").read_text())
    assert saved["stopped"] == "interrupted" and len(saved["histories"][0]) >= 1
    ends = [e for e in watch.log.events() if e["type"] == "end"]
    assert ends[-1]["stopped"] == "interrupted"


def test_a_session_off_loopback_warns_and_a_busy_port_is_a_clear_error():
    from descent.watch.session import WatchSession

    out = io.StringIO()
    with WatchSession(host="0.0.0.0", out=out) as watch:
        printed = out.getvalue()
        assert "warning: --host 0.0.0.0" in printed and "plain HTTP" in printed
        assert f"watch: http://0.0.0.0:{watch.server.port}/?token=" not in printed
        with pytest.raises(ConfigError, match="choose another --port"):
            WatchSession(port=watch.server.port)
    quiet = io.StringIO()
    with WatchSession(out=quiet) as watch:
        assert quiet.getvalue() == f"watch: {watch.url}\n"
        assert watch.url.startswith("http://127.0.0.1:")
