"""A `descent fit --by` run folder as the events the page draws (report.html, `descent
watch`): the same `run`, `groups` and `end` events its live feed sent
(watch/groups.py), read back from its files alone.

    config.json     the run event (task "groups")
    summary.json    the groups' table (its "groups" rows), how they stopped, why
    groups.csv      the table, while summary.json is not written yet

The sampled groups' curves are not redrawn here: plots/groups.png, which the run
drew, shows them in the report.
"""

from __future__ import annotations

import csv
import io
import math
from pathlib import Path
from typing import Any

from descent.errors import DescentError

ROWS = 20  # groups listed, as on the live page (groups.csv has them all)


def is_groups_run(config: dict) -> bool:
    """config.json of a `descent fit --by` run."""
    return config.get("command") == "fit" and bool(config.get("by"))


def groups_events(folder: Path, config: dict, summary: dict | None, run: str, title: str) -> list:
    """The events of the --by run in `folder` (config.json already read); `title` is
    the run's ("fit y = formula")."""
    names = _names(summary, folder)
    events: list[dict] = [
        {
            "type": "run",
            "run": run,
            "title": f"{title} by {config.get('by')} · {run}",
            "task": "groups",
            "config": config,
            "names": names,
        }
    ]
    rows = _rows(summary, folder, names)
    if rows is None:
        return events
    counts: dict[str, int] = {}
    for r in rows:
        counts[r["stopped"]] = counts.get(r["stopped"], 0) + 1
    events.append(
        {
            "type": "groups",
            "run": run,
            "step": None,
            "names": names,
            "n_groups": len(rows),
            "counts": counts,
            "rows": [
                {k: r[k] for k in ("group", "params", "rss", "stopped") if k in r}
                | ({"at_bound": r["at_bound"]} if r.get("at_bound") else {})
                for r in rows[:ROWS]
            ],
            "samples": [],
        }
    )
    if summary is not None:
        final: dict[str, Any] = dict(counts)
        final["groups"] = len(rows)
        if summary.get("seconds") is not None:
            final["seconds"] = summary["seconds"]
        events.append(
            {
                "type": "end",
                "run": run,
                "stopped": "interrupted" if summary.get("interrupted") else "finished",
                "message": str(summary.get("message", "")),
                "epochs": 0,
                "final": final,
            }
        )
    return events


def _names(summary: dict | None, folder: Path) -> list[str]:
    groups = (summary or {}).get("groups")
    if isinstance(groups, list) and groups and isinstance(groups[0].get("params"), dict):
        return [str(n) for n in groups[0]["params"]]
    header = _csv_rows(folder)
    if not header:
        return []
    cols = list(header[0])
    return [c for c in cols[1:] if f"{c}_stderr" in cols]


def _rows(summary: dict | None, folder: Path, names: list[str]) -> list[dict] | None:
    """summary.json's rows (checked: dicts with a group, params and stopped), else
    groups.csv's; None when neither can be read yet."""
    groups = (summary or {}).get("groups")
    if isinstance(groups, list):
        rows = []
        for r in groups:
            if not (isinstance(r, dict) and isinstance(r.get("params"), dict)):
                raise DescentError(f"{folder / 'summary.json'}: a group row is not a table row")
            rows.append(
                {
                    "group": str(r.get("group")),
                    "params": {n: _float(r["params"].get(n)) for n in names},
                    "rss": _float(r.get("rss")),
                    "stopped": str(r.get("stopped", "")),
                    "at_bound": r.get("at_bound") if isinstance(r.get("at_bound"), dict) else {},
                }
            )
        return rows
    table = _csv_rows(folder)
    if table is None:
        return None
    return [
        {
            "group": r.get("group", ""),
            "params": {n: _float(r.get(n)) for n in names},
            "rss": _float(r.get("rss")),
            "stopped": r.get("stopped", ""),
            "at_bound": dict(
                item.split("=", 1) for item in (r.get("at_bound") or "").split() if "=" in item
            ),
        }
        for r in table
    ]


def _csv_rows(folder: Path) -> list[dict] | None:
    path = folder / "groups.csv"
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        return None
    return list(csv.DictReader(io.StringIO(text)))


def _float(v: Any) -> float:
    """A number from JSON or a CSV cell; NaN for null, "" or anything else."""
    if v is None or v == "" or isinstance(v, bool):
        return math.nan
    try:
        return float(v)
    except (TypeError, ValueError):
        return math.nan
