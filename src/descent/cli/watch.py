"""`descent watch`: its options and how they become one command call."""

from __future__ import annotations

import argparse

from descent.cli.common import ExitStatus


def add_parser(sub: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    watch = sub.add_parser(
        "watch",
        parents=[common],
        help="the live page for run folders, finished or still going, overlaid",
        description=(
            "Serves the page of `--watch` for train and fit runs read from their folders: "
            "give run folders, or a folder of them such as runs/ (new runs there appear as "
            "they start). A run still going is followed through its checkpoints (every "
            "epoch by default for train). Curves of several runs are overlaid. The page is "
            "on 127.0.0.1 with a token in its address; it cannot stop these runs."
        ),
    )
    watch.add_argument("paths", nargs="+", metavar="RUN_DIR", help="run folders, or runs/")
    watch.add_argument("--port", type=int, default=0, help="default: a free port")
    watch.add_argument(
        "--host",
        default="127.0.0.1",
        help="the address to listen on (default 127.0.0.1; anything else prints a warning)",
    )
    watch.add_argument(
        "--interval", type=float, default=1.0, help="seconds between looks at the files"
    )
    watch.set_defaults(run=run_watch)


def run_watch(args: argparse.Namespace) -> int:
    from descent.commands.watch import watch_command

    watch_command(args.paths, host=args.host, port=args.port, interval=args.interval)
    return ExitStatus.SUCCESS
