"""Watching a run: the live page (an event log, the callbacks that feed it, a local
server with a Stop button), and `descent watch` for run folders. The page's files and
report.html are report/'s (the layer below): this layer serves them live.

    from descent.watch.log import EventLog
    from descent.watch.callback import WatchFeed, StopRequest, SweepFeed
    from descent.watch.server import WatchServer
    from descent.watch.session import WatchSession
"""

PAGE_REASON = "stopped from the page"  # the reason a Stop from the page gives the loop
