"""`--watch`: one command's live page. The event log, the page's Stop and the server,
started before the data are read and closed when the command ends.

    with WatchSession(port=0) as watch:          # prints "watch: http://127.0.0.1:..."
        train_command(cfg, watch=watch)          # adds watch.callbacks(run id, ...)

Commands ask for the callbacks of each run they train: `callbacks(run, ...)` gives a
WatchFeed for that run id and the session's StopRequest, so one page can follow several
runs of one command (`fit --by` gives each group its own id: call it once per group, or
append that group's events under its id), and one Stop stops the run in progress.
`sweep(run, ...)` gives lr-sweep its feed and stop check.

Stop from the page is the Ctrl-C path: StopRequest raises CancelFit("interrupted") at
the next training batch boundary, the Checkpointer writes its checkpoint, the command
prints how to resume, and the CLI exits 130.
"""

from __future__ import annotations

import contextlib
import errno
import socket
import sys
from collections.abc import Callable, Mapping
from typing import Any, TextIO

from descent.core.events import Callback, CancelFit, StopReason
from descent.errors import ConfigError
from descent.report.rundata import run_title
from descent.watch.callback import StopRequest, SweepFeed, WatchFeed
from descent.watch.log import EventLog
from descent.watch.server import LOOPBACK, WatchServer

HOST_WARNING = (
    "warning: --host {host}: the page, and its Stop button, can be reached from other "
    "machines by whoever has its address with the token; the traffic is plain HTTP "
    "(use the default 127.0.0.1 and an SSH tunnel instead where you can)"
)


class WatchSession:
    """The live page of one command: an EventLog, a StopRequest and a WatchServer.

    Args:
        host: where to listen (127.0.0.1; anything else prints a warning).
        port: 0 picks a free port.
        out: where the address (and the warning) are printed.
        batch_interval, image_interval: the feeds' rates (seconds), see WatchFeed.
        can_stop: False for a page of runs it cannot stop (`descent watch`): no Stop.
    """

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        out: TextIO | None = None,
        batch_interval: float = 0.5,
        image_interval: float = 1.0,
        can_stop: bool = True,
    ) -> None:
        if not 0 <= port <= 65535:
            raise ConfigError(f"--port {port}: give a port from 1 to 65535, or 0 for a free one")
        if not host.strip():
            raise ConfigError(
                "--host '': give an address to listen on: 127.0.0.1 (this machine only, the "
                "default) or 0.0.0.0 (every interface)"
            )
        self.host, self.out = host, out or sys.stdout
        self.batch_interval, self.image_interval = batch_interval, image_interval
        self.log = EventLog()
        self.stop = StopRequest()
        try:
            self.server = WatchServer(
                self.log,
                host=host,
                port=port,
                request_stop=self.stop if can_stop else None,
                extra_hosts=_own_names() if host not in LOOPBACK else (),
            )
        except OSError as e:
            raise _listen_error(host, port, e) from None

    @property
    def url(self) -> str:
        return self.server.url

    def start(self) -> WatchSession:
        self.server.start()
        say = lambda text: print(text, file=self.out, flush=True)  # noqa: E731
        if self.host not in LOOPBACK:
            say(HOST_WARNING.format(host=self.host))
        if self.host in ("0.0.0.0", "::"):  # every interface: this machine's loopback too
            port, token = self.server.port, self.server.token
            say(f"watch: http://127.0.0.1:{port}/?token={token}")
            say(f"watch (other machines): http://{socket.gethostname()}:{port}/?token={token}")
        else:
            say(f"watch: {self.url}")
        return self

    def callbacks(
        self, run: str, *, config: Mapping[str, Any] | None = None, **feed: Any
    ) -> list[Callback]:
        """The feed of run `run` (WatchFeed's options in `feed`) and the page's Stop."""
        options = {
            "title": f"{run_title(config)} · {run}" if config else run,
            "batch_interval": self.batch_interval,
            "image_interval": self.image_interval,
            **feed,
        }
        return [WatchFeed(self.log, run, config=config, **options), self.stop]

    def sweep(
        self, run: str, *, title: str | None = None, config: Mapping[str, Any] | None = None
    ) -> tuple[SweepFeed, Callable[[int, int], None]]:
        """lr_sweep's `on_epoch` feed and its `on_batch` check of the page's Stop."""
        feed = SweepFeed(self.log, run, title=title or f"lr-sweep · {run}", config=config)
        stop = self.stop

        def check(epoch: int, batch: int) -> None:
            if stop.reason is not None:
                reason, stop.reason = stop.reason, None
                raise CancelFit(StopReason.INTERRUPTED, f"{reason} at epoch {epoch}, batch {batch}")

        return feed, check

    def close(self) -> None:
        """The command is over: the page gets the last events, then the server stops."""
        self.log.close()
        self.server.close()

    def __enter__(self) -> WatchSession:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()


def _own_names() -> list[str]:
    """This machine's name and addresses: the Host headers a page opened from another
    machine sends when the server listens on all interfaces."""
    names = {socket.gethostname(), socket.getfqdn()}
    with contextlib.suppress(OSError):
        names.update(socket.gethostbyname_ex(socket.gethostname())[2])
    return sorted(n for n in names if n)


def _listen_error(host: str, port: int, e: OSError) -> ConfigError:
    """Why the server could not listen, naming the option that is wrong."""
    if isinstance(e, socket.gaierror) or e.errno == errno.EADDRNOTAVAIL:
        return ConfigError(  # the name does not resolve, or is not this machine's
            f"--host {host}: not an address of this machine ({e.strerror or e}); give "
            "127.0.0.1 (the default), 0.0.0.0 (every interface) or one of its own addresses"
        )
    return ConfigError(
        f"--watch cannot listen on {host}:{port}: {e.strerror or e}; "
        "choose another --port (0 picks a free one)"
    )
