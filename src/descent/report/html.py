"""report.html: the live page as one self-contained file, for after the run.

    write_run_report("runs/train-20250101-120000")      # -> its report.html
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
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from descent.errors import ConfigError
from descent.io.files import atomic_write_bytes
from descent.report.events import finite
from descent.report.rundata import events_from_run, run_events

# The page: index.html, watch.css, watch.js and the vendored uPlot (MIT, its licence
# beside it). watch/server.py serves these files live; here they are inlined.
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
    atomic_write_bytes(path, text.encode("utf-8"))
    return path


def write_run_report(
    run_dir: str | Path,
    path: str | Path | None = None,
    plots: Sequence[str | Path] | None = None,
) -> Path:
    """report.html of the run in `run_dir`, from its files alone (report/rundata.py),
    with the run's PNG plots inline: `plots` (what the run drew), or every PNG and SVG
    in its plots/ folder; written to `path` (default: run_dir/report.html). What
    `descent report` and every train and fit run do."""
    folder = Path(run_dir)
    if plots is None:
        plots_dir = folder / "plots"
        plots = sorted(plots_dir.iterdir()) if plots_dir.is_dir() else []
    shown = {Path(p).name: Path(p) for p in plots if Path(p).suffix.lower() in (".png", ".svg")}
    return write_report(path or folder / "report.html", run_events(folder), plots=shown)


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
