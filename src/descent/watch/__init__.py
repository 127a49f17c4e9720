"""Watching a run: the live page (an event log, a callback that feeds it, a local
server with a Stop button) and the self-contained report.html.

    from descent.watch.log import EventLog
    from descent.watch.callback import WatchFeed, StopRequest, SweepFeed
    from descent.watch.server import WatchServer
    from descent.watch.report import write_report
"""

PAGE_REASON = "stopped from the page"  # the reason a Stop from the page gives the loop
