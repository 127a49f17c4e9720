"""report.html: the live page as one self-contained file, for after the run.

    write_report("runs/demo/report.html", log.events(), plots={"loss": png_bytes})
    write_report(path, {"run": "demo", "config": cfg, "history": rows,
                        "stopped": "early_stopping", "message": "...", "final": {...}})

It is the same page (index.html, watch.css, watch.js and the vendored uPlot) with
every asset inlined and the run's events embedded as JSON, plus the given plots as
base64 images: it opens from file:// with no network request (its Content-Security-
Policy forbids any), so it can be mailed, archived or opened offline.
"""

from __future__ import annotations

import base64
import html
import json
import os
import re
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import torch

from descent.errors import ConfigError
from descent.watch.callback import weight_images
from descent.watch.log import finite

STATIC = Path(__file__).parent / "static"
# The report may load nothing: only inline scripts and styles, and data: images.
REPORT_CSP = (
    "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; "
    "img-src data:; base-uri 'none'; form-action 'none'"
)

RunData = Mapping[str, Any]
Plots = Mapping[str, bytes | str | Path]


def write_report(
    path: str | Path,
    source: Sequence[Mapping[str, Any]] | RunData,
    *,
    plots: Plots | None = None,
) -> Path:
    """Write report.html for `source` (a list of events, e.g. `log.events()`, or one
    run's data, see `events_from_run`) to `path`, atomically. Returns the path."""
    text = render_report(source, plots=plots)
    path = Path(path)
    _write_atomic(path, text.encode("utf-8"))
    return path


def render_report(
    source: Sequence[Mapping[str, Any]] | RunData, *, plots: Plots | None = None
) -> str:
    """The report's HTML text (see write_report)."""
    events = events_from_run(source) if isinstance(source, Mapping) else [dict(e) for e in source]
    page = (STATIC / "index.html").read_text(encoding="utf-8")
    data = json.dumps(finite(events), separators=(",", ":"), allow_nan=False)
    data = data.replace("<", "\\u003c")  # nothing in the data can close the <script>

    def inline(match: re.Match) -> str:
        tag, name = match.group(1), match.group(2)
        content = (STATIC / name).read_text(encoding="utf-8")
        end = "</script" if tag == "script" else "</style"
        if end in content.lower():
            raise ValueError(f"{name} contains {end!r} and cannot be inlined")
        if tag == "link":
            return f"<style>\n{content}\n</style>"
        events_tag = ""
        if name == "watch.js":  # the data goes just before the script that reads it
            events_tag = f'<script type="application/json" id="descent-events">{data}</script>\n'
        return f"{events_tag}<script>\n{content}\n</script>"

    page = re.sub(r'<(link) rel="stylesheet" href="static/([\w./-]+)">', inline, page)
    page = re.sub(r'<(script) src="static/([\w./-]+)"></script>', inline, page)
    csp = f'<meta http-equiv="Content-Security-Policy" content="{REPORT_CSP}">'
    page = page.replace('<meta charset="utf-8">', f'<meta charset="utf-8">\n{csp}', 1)
    page = page.replace("<title>descent watch</title>", "<title>descent report</title>", 1)
    return page.replace("<!--plots-->", _plots_section(plots or {}), 1)


def events_from_run(data: RunData) -> list[dict]:
    """One run's data as the events the page draws.

    Keys (all optional but `history`): run, title, task, config, history (per-epoch
    records), stopped, message, final ({name: value}), params ({name: value}),
    data ((x, y) points of a curve fit), curve ((x, y) of the fitted function),
    weights ((k, n_pixels) tensor), labels (a name per weight image)."""
    run = str(data.get("run", "run"))
    history = [dict(r) for r in data.get("history", [])]
    events: list[dict] = [
        {
            "type": "run",
            "run": run,
            "title": data.get("title", run),
            "task": data.get("task", "train"),
            "config": dict(data.get("config", {})),
        }
    ]
    events += [{"type": "epoch", "run": run, "record": r} for r in history]
    last = history[-1]["epoch"] if history else 0
    if data.get("data") is not None:
        x, y = data["data"]
        events.append({"type": "data", "run": run, "x": _floats(x), "y": _floats(y)})
    if data.get("curve") is not None:
        x, y = data["curve"]
        events.append(
            {"type": "curve", "run": run, "epoch": last, "x": _floats(x), "y": _floats(y)}
        )
    if data.get("params") is not None:
        values = {k: float(v) for k, v in data["params"].items()}
        events.append({"type": "params", "run": run, "epoch": last, "values": values})
    if data.get("weights") is not None:
        pictures = weight_images(torch.as_tensor(data["weights"]), labels=data.get("labels"))
        events.append({"type": "weights", "run": run, "epoch": last, **pictures})
    if data.get("stopped") is not None:
        final = dict(data.get("final") or (history[-1] if history else {}))
        events.append(
            {
                "type": "end",
                "run": run,
                "stopped": data["stopped"],
                "message": data.get("message", ""),
                "epochs": len(history),
                "final": final,
            }
        )
    return events


def _plots_section(plots: Plots) -> str:
    if not plots:
        return ""
    figures = []
    for name, image in plots.items():
        raw = Path(image).read_bytes() if isinstance(image, (str, Path)) else bytes(image)
        if raw.startswith(b"\x89PNG\r\n\x1a\n"):
            mime = "image/png"
        elif raw.lstrip()[:5] in (b"<svg ", b"<?xml"):
            mime = "image/svg+xml"  # an <img> never runs an SVG's scripts
        else:
            raise ConfigError(f"plot {name!r} is neither PNG nor SVG; report.html embeds those")
        src = f"data:{mime};base64,{base64.b64encode(raw).decode('ascii')}"
        label = html.escape(str(name))
        figures.append(
            f'<figure><img src="{src}" alt="{label}"><figcaption>{label}</figcaption></figure>'
        )
    body = "\n".join(figures)
    return (
        '<section id="plots-card" class="card wide">\n<h2>Plots</h2>\n'
        f'<div class="plots">\n{body}\n</div>\n</section>'
    )


def _floats(values: Any) -> list[float]:
    if isinstance(values, torch.Tensor):
        return values.detach().reshape(-1).double().cpu().tolist()
    return [float(v) for v in values]


def _write_atomic(path: Path, data: bytes) -> None:
    """Temporary file in the same folder, fsync, rename: a reader sees the old report
    or the new one, never half of one. (checkpoint.atomic_write_bytes does the same;
    use it from io/ once the layers land.)"""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
