"""Fuzzing the CLI with hypothesis: formulas, CSV contents, image bytes, config.json,
model.json, checkpoint JSON and what a run folder already holds.

The property, for every input: `descent` exits 0, or 2 with an error message; it never
raises a traceback or hangs; and no file outside --out is written, changed or removed
(a folder that already holds a run keeps every file that run did not write).

The CLI is called in-process (`descent.cli.main`), so an example costs milliseconds,
inside a sandbox folder that is also the working directory, with a SIGALRM deadline.
`make test` runs few examples per target (derandomized, ~60 s in all); `make fuzz`
(DESCENT_FUZZ=N) runs N per target with fresh randomness and prints the figures:
cases tried, tracebacks, hangs, files lost outside --out.
"""

import contextlib
import hashlib
import io
import json
import os
import shutil
import signal
import tempfile
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from descent.cli import main
from descent.commands.config import FitConfig, TrainConfig
from descent.commands.fit import fit_command
from descent.commands.train import train_command
from descent.io.checkpoints import _digest, list_checkpoints

NIST = Path(__file__).resolve().parents[1] / "bench" / "nist"
LONG = int(os.environ.get("DESCENT_FUZZ", "0"))  # examples per target under `make fuzz`
HANG_SECONDS = 120  # far beyond any example here (the slowest trains and plots in ~3 s)
FIGURES = {"cases": 0, "ran": 0, "tracebacks": 0, "hangs": 0, "lost": 0}


def fuzz(examples: int):
    """hypothesis settings: `examples` in `make test` (the same ones every run), LONG
    fresh ones under `make fuzz`."""
    return settings(
        max_examples=LONG or examples,
        derandomize=not LONG,
        deadline=None,
        database=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    )


@pytest.fixture(scope="module", autouse=True)
def report_figures(request):
    yield
    reporter = request.config.pluginmanager.get_plugin("terminalreporter")
    line = (
        f"fuzz: {FIGURES['cases']:,} cases tried ({FIGURES['ran']:,} ran, the rest refused), "
        f"tracebacks {FIGURES['tracebacks']}, "
        f"hangs {FIGURES['hangs']}, files lost or changed outside --out {FIGURES['lost']}"
    )
    capture = request.config.pluginmanager.get_plugin("capturemanager")
    if reporter is not None and capture is not None:
        with capture.global_and_fixture_disabled():
            reporter.write_line("\n" + line)


class Hang(BaseException):
    pass


def _alarm(signum, frame):
    raise Hang


def snapshot(folder: Path, skip: Path | None = None) -> dict[str, str]:
    """Every file under `folder` but those under `skip` -> the SHA-256 of its bytes."""
    files = {}
    for root, dirs, names in os.walk(folder):
        if skip is not None and Path(root) == skip:
            dirs[:] = []
            continue
        dirs[:] = [d for d in dirs if skip is None or Path(root, d) != skip]
        for name in names:
            path = Path(root, name)
            if not path.is_symlink():
                files[str(path.relative_to(folder))] = hashlib.sha256(path.read_bytes()).hexdigest()
    return files


def cli(argv: list[str], sandbox: Path, out: Path) -> int:
    """Run `descent argv` in `sandbox` (as working directory) and check the property."""
    before = snapshot(sandbox, skip=out)
    err, cwd = io.StringIO(), os.getcwd()
    old = signal.signal(signal.SIGALRM, _alarm)
    signal.setitimer(signal.ITIMER_REAL, HANG_SECONDS)
    os.chdir(sandbox)
    try:
        with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
            try:
                status = main(argv)
            except SystemExit as e:
                status = e.code
    except Hang:
        FIGURES["hangs"] += 1
        raise AssertionError(f"descent {argv} ran past {HANG_SECONDS} s") from None
    except BaseException:
        FIGURES["tracebacks"] += 1
        raise
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)
        os.chdir(cwd)
    FIGURES["cases"] += 1
    FIGURES["ran"] += status == 0
    assert status in (0, 2), f"exit status {status}: {err.getvalue()}"
    if status == 2:
        assert "error:" in err.getvalue() and "Traceback" not in err.getvalue()
    if snapshot(sandbox, skip=out) != before:
        FIGURES["lost"] += 1
        raise AssertionError(f"descent {argv} changed files outside --out")
    return status


@contextlib.contextmanager
def sandbox():
    with tempfile.TemporaryDirectory(prefix="descent-fuzz-") as folder:
        yield Path(folder)


# -- strategies ------------------------------------------------------------------------------

NUMBERS = st.one_of(
    st.integers(-(10**6), 10**6).map(str),
    st.floats(allow_nan=True, allow_infinity=True).map(repr),
    st.sampled_from(["1e308", "-1e-320", "0", "9**9**9", "2**70", "1_000", ".5"]),
)
LEAVES = st.one_of(
    st.sampled_from(["x", "a", "b", "c", "y", "t", "pi", "e", "exp", "__import__", "X"]),
    NUMBERS,
)
FUNCTIONS = ["exp", "log", "sqrt", "sin", "atan2", "abs", "tanh", "eval", "open", "print"]


def _compound(children):
    ops = st.sampled_from(["+", "-", "*", "/", "**", "//", "%", "@", " if ", ".", ","])
    return st.one_of(
        st.tuples(children, ops, children).map(lambda t: f"({t[0]}{t[1]}{t[2]})"),
        st.tuples(st.sampled_from(FUNCTIONS), children).map(lambda t: f"{t[0]}({t[1]})"),
        children.map(lambda s: f"-{s}"),
        children.map(lambda s: f"[{s}]"),
    )


FORMULAS = st.one_of(st.recursive(LEAVES, _compound, max_leaves=10), st.text(max_size=60))
JSON_VALUES = st.recursive(
    st.one_of(
        st.none(), st.booleans(), st.integers(-(2**70), 2**70),
        st.floats(allow_nan=False, allow_infinity=False), st.text(max_size=8),
        st.sampled_from([0, -1, 1, 10**9, 10**12, 1e300, -0.0, "", "auto", "NaN"]),
    ),
    lambda c: st.lists(c, max_size=3) | st.dictionaries(st.text(max_size=6), c, max_size=3),
    max_leaves=6,
)  # fmt: skip


def paths_in(doc, prefix=()):
    """Every path (a tuple of keys and indices) to a value inside a JSON document."""
    yield prefix
    items = (
        doc.items() if isinstance(doc, dict) else enumerate(doc) if isinstance(doc, list) else []
    )
    for key, value in items:
        yield from paths_in(value, (*prefix, key))


def mutate(doc, data) -> object:
    """Up to three edits of a JSON document: a value replaced, a key removed or added."""
    doc = json.loads(json.dumps(doc))
    for _ in range(data.draw(st.integers(1, 3))):
        paths = list(paths_in(doc))
        path = data.draw(st.sampled_from(paths))
        if not path:
            doc = data.draw(JSON_VALUES) if data.draw(st.booleans()) else doc
            continue
        parent = doc
        for key in path[:-1]:
            parent = parent[key]
        action = data.draw(st.sampled_from(["replace", "replace", "delete", "add"]))
        if action == "replace":
            parent[path[-1]] = data.draw(JSON_VALUES)
        elif action == "delete":
            del parent[path[-1]]
        elif isinstance(parent, dict):
            parent[data.draw(st.text(max_size=8))] = data.draw(JSON_VALUES)
    return doc


# -- prepared runs ---------------------------------------------------------------------------

MISRA = [str(NIST / "Misra1a.csv"), "--model", "b1*(1-exp(-b2*x))", "--y", "y"]


@pytest.fixture(scope="module")
def fit_run(tmp_path_factory):
    """A fit run that was interrupted after 7 of 40 steps, with checkpoints."""
    from descent.core.events import Callback, CancelFit, StopReason

    class Stop(Callback):
        def after_step(self):
            if self.learner.steps == 7:
                raise CancelFit(StopReason.INTERRUPTED, "interrupted")

    out = tmp_path_factory.mktemp("fuzz") / "fit"
    cfg = FitConfig(data=str(NIST / "Misra1a.csv"), model="b1*(1-exp(-b2*x))", y="y",
                    init={"b1": 500.0, "b2": 1e-4}, optimizer="lbfgs", epochs=40,
                    checkpoint_every="3", plots=False, quiet=True, out=str(out))  # fmt: skip
    fit_command(cfg, callbacks=[Stop()])
    return out


@pytest.fixture(scope="module")
def train_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("fuzz") / "train"
    train_command(TrainConfig(classes=["3", "7"], epochs=1, out=str(out), quiet=True))
    digit = out.parent / "digit.png"
    Image.fromarray(np.arange(784, dtype=np.uint8).reshape(28, 28)).save(digit)
    return out


def copy_run(run: Path, box: Path) -> Path:
    return Path(shutil.copytree(run, box / "run"))


# -- the targets -------------------------------------------------------------------------------


@fuzz(60)
@given(formula=FORMULAS)
def test_formulas(formula):
    with sandbox() as box:
        (box / "data.csv").write_text("x,y\n" + "".join(f"{i},{i * i + 1}\n" for i in range(12)))
        argv = ["fit", "data.csv", "--model", formula, "--y", "y", "--epochs", "30"]
        cli([*argv, "--no-plots", "--quiet", "--out", "out"], box, box / "out")


CELLS = st.one_of(NUMBERS, st.sampled_from(["", "NA", "nan", "1,5", '"3"', "x", " ", "1e999"]))
ROWS = st.lists(st.lists(CELLS, min_size=0, max_size=3).map(",".join), max_size=25)


@fuzz(50)
@given(text=st.one_of(ROWS.map(lambda rows: "\n".join(["x,y", *rows])), st.text(max_size=200)),
       binary=st.binary(max_size=200), use_binary=st.booleans())  # fmt: skip
def test_csv_contents(text, binary, use_binary):
    with sandbox() as box:
        path = box / "data.csv"
        path.write_bytes(binary) if use_binary else path.write_text(text, errors="surrogatepass")
        argv = ["fit", "data.csv", "--model", "a*x + b", "--y", "y", "--epochs", "20"]
        cli([*argv, "--no-plots", "--quiet", "--out", "out"], box, box / "out")


LABELS = st.text(
    st.characters(blacklist_characters="/\\\x00", blacklist_categories=("Cs",)),
    min_size=1,
    max_size=6,
).filter(lambda s: s not in (".", "..") and not s.startswith(".") and len(s.encode()) < 100)


@st.composite
def image_file(draw):
    """(name, bytes): random bytes, a cut-short PNG, or a small real image of any mode."""
    ext = draw(st.sampled_from([".png", ".png", ".jpg", ".gif", ".bmp", ".txt"]))
    kind = draw(st.sampled_from(["image", "image", "image", "bytes", "cut"]))
    if kind == "bytes":
        return ext, draw(st.binary(max_size=64))
    h, w = draw(st.integers(1, 8)), draw(st.integers(1, 8))
    mode = draw(st.sampled_from(["L", "RGB", "RGBA", "LA", "P", "1", "I;16"]))
    pixels = np.frombuffer(draw(st.binary(min_size=h * w * 4, max_size=h * w * 4)), np.uint8)
    array = pixels[: h * w * (4 if mode == "RGBA" else 3 if mode == "RGB" else 1)]
    shape = (h, w, 4) if mode == "RGBA" else (h, w, 3) if mode == "RGB" else (h, w)
    image = Image.fromarray(array.reshape(shape)).convert(mode)
    if ext not in (".png", ".txt"):  # JPEG, GIF and BMP take fewer modes than PNG
        image = image.convert("RGB" if mode in ("RGB", "RGBA") else "L")
    buf = io.BytesIO()
    image.save(buf, format="PNG" if ext in (".png", ".txt") else ext[1:].replace("jpg", "jpeg"))
    raw = buf.getvalue()
    return ext, raw[: draw(st.integers(8, len(raw)))] if kind == "cut" else raw


@fuzz(12)
@given(folders=st.dictionaries(LABELS, st.lists(image_file(), min_size=1, max_size=3),
                               min_size=1, max_size=3))  # fmt: skip
def test_image_bytes(folders):
    with sandbox() as box:
        for label, files in folders.items():
            (box / "images" / label).mkdir(parents=True)
            for i, (ext, raw) in enumerate(files):
                (box / "images" / label / f"{i}{ext}").write_bytes(raw)
        argv = ["train", "images", "--epochs", "1", "--valid-pct", "0.3", "--quiet"]
        cli([*argv, "--out", "out"], box, box / "out")


@fuzz(20)
@given(data=st.data())
def test_config_json(fit_run, data):
    config = json.loads((fit_run / "config.json").read_text())
    with sandbox() as box:
        run = copy_run(fit_run, box)
        if data.draw(st.integers(0, 9)) == 0:
            (run / "config.json").write_bytes(data.draw(st.binary(max_size=100)))
        else:
            (run / "config.json").write_text(json.dumps(mutate(config, data)))
        cli(["resume", "run", "--quiet"], box, run)


@fuzz(40)
@given(data=st.data())
def test_model_json(train_run, data):
    desc = json.loads((train_run / "model.json").read_text())
    with sandbox() as box:
        run = copy_run(train_run, box)
        shutil.copy(train_run.parent / "digit.png", box / "digit.png")
        (run / "model.json").write_text(json.dumps(mutate(desc, data)))
        cli(["predict", "run", "digit.png"], box, run)


@fuzz(20)
@given(data=st.data(), forge=st.booleans())
def test_checkpoint_json(fit_run, data, forge):
    with sandbox() as box:
        run = copy_run(fit_run, box)
        path = list_checkpoints(run / "checkpoints")[-1]
        doc = mutate(json.loads(path.read_text()), data)
        if forge and isinstance(doc, dict) and isinstance(doc.get("tensors"), str):
            body = {k: v for k, v in doc.items() if k != "sha256"}
            with contextlib.suppress(OSError, TypeError, ValueError):
                doc = {**body, "sha256": _digest(body, (path.parent / doc["tensors"]).read_bytes())}
        path.write_text(json.dumps(doc))
        cli(["resume", "run", "--quiet"], box, run)


USER_NAMES = st.sampled_from(
    ["config.json", "metrics.csv", "summary.json", "plots/loss.png", "notes.txt",
     "checkpoints/README", ".hidden", "model.json", "sub/data.csv", ".descent/run.json",
     ".descent/lock", "checkpoints/ckpt-e000001-b000000.json"]
)  # fmt: skip


@fuzz(20)
@given(files=st.dictionaries(USER_NAMES, st.binary(max_size=20), max_size=4),
       prior_run=st.booleans(), overwrite=st.booleans())  # fmt: skip
def test_what_the_out_folder_already_holds(files, prior_run, overwrite):
    """Whatever --out holds, a new run (with or without --overwrite) removes nothing the
    user put there: only a previous descent run's own files may go."""
    with sandbox() as box:
        out = box / "out"
        ours: set[str] = set()
        if prior_run:
            cli(["fit", *MISRA, "--no-plots", "--quiet", "--epochs", "3", "--out", "out"], box, out)
            ours = set(snapshot(out))
            files = {n: b for n, b in files.items() if n not in ours and not n.startswith(".")}
        for name, raw in files.items():
            (out / name).parent.mkdir(parents=True, exist_ok=True)
            (out / name).write_bytes(raw)
        mine = {k: v for k, v in snapshot(out).items() if k not in ours} if out.exists() else {}
        argv = ["fit", *MISRA, "--no-plots", "--quiet", "--epochs", "2", "--out", "out"]
        cli(argv + (["--overwrite"] if overwrite else []), box, out)
        after = snapshot(out)
        # .descent/lock is descent's own name: a claim writes its process id there
        lost = [n for n, digest in mine.items() if after.get(n) != digest and n != ".descent/lock"]
        if lost:
            FIGURES["lost"] += 1
        assert not lost, f"user files lost or changed: {lost}"


# -- the commands and options added since: grad, fit's --bounds/--fix/--sigma/--by, predict
# on a fit run, report ----------------------------------------------------------------------

NAMES = st.sampled_from(["x", "y", "a", "b", "c", "t", "z", "", " ", "1a", "pi", "for", "é"])
SOUND = st.one_of(st.integers(-5, 5).map(str), st.floats(-10, 10).map(repr))
VALUES = st.one_of(NUMBERS, st.sampled_from(["", " ", "x", "1:2", "1e999", "--", "0x10"]))


def mostly(draw, sound, hostile, one_in: int = 4):
    """A draw from `sound`, or one time in `one_in` from `hostile`: deep enough to reach the
    work, hostile enough to find the holes on the way."""
    return draw(hostile if draw(st.integers(1, one_in)) == one_in else sound)


GRAD_FORMULAS = {  # formula -> its variables
    "x**2": "x", "a*x + b": "xab", "exp(a*x)": "ax", "sin(x)*y": "xy", "log(x)": "x",
    "1/x": "x", "x**y": "xy", "sqrt(x) + a": "xa", "a*t**2 + b*t + c": "tabc", "tanh(x)*a": "xa",
}  # fmt: skip


@st.composite
def grad_point(draw, names: str):
    """--at values for `names`: numbers, or lists of one length (the book's rank-1
    tensor); a value, a name or the whole point is now and then anything."""
    if draw(st.integers(1, 12)) == 12:
        return draw(st.lists(st.text(max_size=12), max_size=2))
    count = draw(st.integers(1, 4))
    items = []
    for name in names:
        n = count if draw(st.booleans()) else 1
        values = [mostly(draw, SOUND, VALUES, 12) for _ in range(n)]
        items.append(f"{mostly(draw, st.just(name), NAMES, 12)}={','.join(values)}")
    return items


@fuzz(60)
@given(data=st.data(), extra=st.sets(st.sampled_from(
    ["--sum", "--data", "--plot", "--json", "--var"]), max_size=3))  # fmt: skip
def test_grad_formulas_and_points(data, extra):
    formula = mostly(data.draw, st.sampled_from(list(GRAD_FORMULAS)), FORMULAS)
    names = GRAD_FORMULAS.get(formula, "x")
    if "--data" in extra:  # x is the file's column, y its target; the rest are parameters
        names = names.replace("x", "").replace("y", "") or "a"
    point = data.draw(grad_point(names))
    with sandbox() as box:
        (box / "data.csv").write_text("x,y\n" + "".join(f"{i},{i * i + 1}\n" for i in range(8)))
        argv = ["grad", formula, *(a for value in point for a in ("--at", value))]
        argv += ["--sum"] if "--sum" in extra else []
        argv += ["--data", "data.csv", "--y", "y"] if "--data" in extra else []
        argv += ["--plot", "out/g.png"] if "--plot" in extra else []
        argv += ["--json", "out/g.json"] if "--json" in extra else []
        argv += ["--var", names[0]] if "--var" in extra else []
        cli([*argv, "--quiet"], box, box / "out")


PARAMS = st.sampled_from(["a", "b", "c"])


@st.composite
def ranges(draw):
    """--bounds NAME=LO:HI, mostly a sound range around the truth, now and then anything."""
    lo, hi = sorted([draw(SOUND), draw(SOUND)], key=float)
    sound = st.just(f"{draw(PARAMS)}={lo}:{hi}") | PARAMS.map(lambda n: f"{n}=-inf:inf")
    hostile = st.tuples(NAMES, VALUES, VALUES).map(lambda t: f"{t[0]}={t[1]}:{t[2]}")
    return mostly(draw, sound, hostile)


@st.composite
def holds(draw):
    """--fix / --init NAME=VALUE, mostly sound."""
    sound = st.tuples(PARAMS, SOUND).map(lambda t: f"{t[0]}={t[1]}")
    return mostly(draw, sound, st.tuples(NAMES, VALUES).map(lambda t: f"{t[0]}={t[1]}"))


SIGMAS = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True).map(repr),
    st.sampled_from(["0", "-1", "", "NA", "x", "1e-300", "1e300", "0.5", "1", "2"]),
)
GROUPS = st.sampled_from(["A", "B", "", "NA", "1", "1.0", "é", '"a,b"', " ", "C"])


@st.composite
def fit_table(draw, groups: bool = False):
    """x, y, s (sigma) and g (group) columns: mostly sound numbers, a few hostile cells."""
    n = draw(st.integers(0, 40))
    hostile = draw(st.integers(0, 3)) == 3  # a quarter of the tables have bad cells
    rows = []
    for i in range(n):
        bad = hostile and draw(st.integers(0, 9)) == 9
        x = draw(CELLS) if bad and draw(st.booleans()) else str(i)
        y = draw(CELLS) if bad and draw(st.booleans()) else f"{2 * i * i + 3 * i + 1 + i % 3}"
        s = draw(SIGMAS) if bad else f"{0.5 + i % 4}"
        g = (draw(GROUPS) if bad else "ABC"[i % draw(st.integers(1, 3))]) if groups else "A"
        rows.append(f"{x},{y},{s},{g}")
    return "x,y,s,g\n" + "\n".join(rows) + ("\n" if rows else "")


@st.composite
def starts(draw):
    """--init: none, every parameter (a, b, c) a sound value, or now and then anything."""
    sound = st.tuples(SOUND, SOUND, SOUND).map(lambda v: [f"a={v[0]}", f"b={v[1]}", f"c={v[2]}"])
    return mostly(draw, st.just([]) | sound, st.lists(holds(), max_size=3))


@fuzz(60)
@given(text=fit_table(), bounds=st.lists(ranges(), max_size=2),
       fix=st.lists(holds(), max_size=1), init=starts(),
       flags=st.sets(st.sampled_from(["--sigma", "--absolute-sigma", "--ci", "--sgd"]),
                     max_size=2))  # fmt: skip
def test_fit_bounds_fix_sigma(text, bounds, fix, init, flags):
    with sandbox() as box:
        (box / "data.csv").write_text(text)
        argv = ["fit", "data.csv", "--model", "a*x**2 + b*x + c", "--y", "y", "--epochs", "50"]
        argv += [a for b in bounds for a in ("--bounds", b)]
        argv += [a for f in fix for a in ("--fix", f)]
        argv += ["--init", ",".join(init)] if init else []
        argv += ["--sigma", "s"] if "--sigma" in flags else []
        argv += ["--absolute-sigma"] if "--absolute-sigma" in flags else []
        argv += ["--ci", "profile"] if "--ci" in flags else []
        argv += ["--optimizer", "sgd"] if "--sgd" in flags else []
        cli([*argv, "--no-plots", "--quiet", "--out", "out"], box, box / "out")


@fuzz(40)
@given(text=fit_table(groups=True), data=st.data(), fix=st.lists(holds(), max_size=1),
       sigma=st.booleans())  # fmt: skip
def test_fit_by_groups(text, data, fix, sigma):
    by = mostly(data.draw, st.just("g"), st.sampled_from(["x", "y", "s", "z", ""]), 8)
    with sandbox() as box:
        (box / "data.csv").write_text(text)
        argv = ["fit", "data.csv", "--model", "a*x**2 + b*x + c", "--y", "y", "--by", by]
        argv += [a for f in fix for a in ("--fix", f)] + (["--sigma", "s"] if sigma else [])
        cli([*argv, "--no-plots", "--quiet", "--out", "out"], box, box / "out")


@pytest.fixture(scope="module")
def finished_fit(tmp_path_factory):
    """A fit run that ran to its end: a model, its uncertainty and its report."""
    out = tmp_path_factory.mktemp("fuzz") / "done"
    fit_command(FitConfig(data=str(NIST / "Misra1a.csv"), model="b1*(1-exp(-b2*x))", y="y",
                          init={"b1": 500.0, "b2": 1e-4}, quiet=True, out=str(out)))  # fmt: skip
    return out


SOUND_X = st.lists(st.floats(0, 1000).map(repr), min_size=1, max_size=20)


@fuzz(30)
@given(data=st.data(), out=st.booleans())
def test_predict_tables_on_a_fit_run(finished_fit, data, out):
    level = mostly(data.draw, st.none() | st.floats(0.01, 0.99).map(repr), NUMBERS)
    sound = SOUND_X.map(lambda xs: "\n".join(["x", *xs]) + "\n")
    hostile = st.one_of(
        ROWS.map(lambda rows: "\n".join(["x", *rows])),
        ROWS.map(lambda rows: "\n".join(["t,y", *rows])),
        st.text(max_size=80),
    )
    text = mostly(data.draw, sound, hostile, 2)
    with sandbox() as box:
        run = copy_run(finished_fit, box)
        (box / "new.csv").write_text(text, errors="surrogatepass")
        argv = ["predict", "run", "new.csv"] + ([] if level is None else ["--level", level])
        cli(argv + (["--out", "out/p.csv"] if out else []), box, box / "out")
        assert snapshot(run) == snapshot(finished_fit)  # predict never writes the run


REPORT_FILES = ["metrics.csv", "summary.json", "params.json", "uncertainty.json",
                "model.json", "config.json", "plots/fit.png", "plots/loss.png"]  # fmt: skip


@fuzz(20)
@given(damage=st.dictionaries(st.sampled_from(REPORT_FILES), st.binary(max_size=60), max_size=3),
       data=st.data())  # fmt: skip
def test_report_of_a_damaged_run(finished_fit, damage, data):
    with sandbox() as box:
        run = copy_run(finished_fit, box)
        for name, raw in damage.items():
            if name.endswith(".json") and data.draw(st.booleans()):
                doc = mutate(json.loads((run / name).read_text()), data)
                raw = json.dumps(doc).encode()
            (run / name).write_bytes(raw)
        cli(["report", "run"], box, run)
