"""The live page's server: the standard library's ThreadingHTTPServer, in a daemon thread.

    server = WatchServer(log, request_stop=stop).start()
    print(f"watch: {server.url}")       # http://127.0.0.1:PORT/?token=...
    ...
    server.close()

Routes (every one behind the Host check):

    GET  /?token=T           the page
    GET  /static/NAME        the page's own assets, from the package (no token: they
                             are the same for everyone)
    GET  /events?token=T     Server-Sent Events: the log from the start (or from
                             Last-Event-ID + 1 when the browser reconnects), then new
                             events as they come, at most `push_interval` apart; when
                             the log is closed and sent, `event: bye` ends the stream
    GET  /files/ROOT/PATH?token=T   a file under one of the `files` folders (run folders)
    POST /api/stop           JSON {"token": T}: calls request_stop("stopped from the page")

Security model:
- it listens on 127.0.0.1 unless given another `host` (the CLI warns then);
- a per-run random token (secrets.token_urlsafe) guards the page, its data and Stop;
- a request whose Host header is not this server's own address (127.0.0.1:PORT,
  localhost:PORT, [::1]:PORT or the configured host) gets 403: a DNS-rebinding page
  cannot read the data or stop the run even from the browser of the same machine;
- Stop needs the token and `Content-Type: application/json`, and refuses a foreign
  Origin: a cross-site form cannot send JSON, and a cross-site script cannot send it
  without a CORS preflight, which this server never grants;
- files are served only from the package's static folder and the given folders; a
  path with `..`, `.`, a backslash, an absolute path, an encoded `%2e%2e` or a symbolic
  link anywhere under the root gets 404.
"""

from __future__ import annotations

import hmac
import json
import os
import secrets
import stat
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, unquote, urlsplit

from descent.report.html import STATIC  # the page's files (report.html inlines the same)
from descent.watch import PAGE_REASON
from descent.watch.log import EventLog

LOOPBACK = ("127.0.0.1", "localhost", "::1")
CONTENT_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".json": "application/json",
    ".png": "image/png",
    ".svg": "image/svg+xml",
    ".csv": "text/csv; charset=utf-8",
    ".txt": "text/plain; charset=utf-8",
}
# The page loads only its own scripts, styles and images, and talks only to this server.
CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)
MAX_BODY = 4096  # bytes of a Stop request's JSON


class WatchServer:
    """Serves the live page for `log`. `request_stop(reason)` is called (from a server
    thread) when the page's Stop is pressed; without it the page has no Stop button.

    Args:
        log: the EventLog to stream.
        host: the address to listen on (127.0.0.1; anything else is the caller's choice).
        port: 0 picks a free port.
        token: the secret of the page's URL (default: a new random one).
        request_stop: the callable behind Stop (StopRequest, or the CLI's Ctrl-C path).
        files: folders the page may read files from, by name (/files/NAME/...).
        extra_hosts: further names the page may be opened by (with --host 0.0.0.0:
            the machine's name or address), checked against the Host header.
        push_interval: the least time between two pushes to one page, seconds.
        heartbeat: seconds of silence after which the stream sends a comment.
    """

    def __init__(
        self,
        log: EventLog,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        token: str | None = None,
        request_stop: Callable[[str], None] | None = None,
        files: Mapping[str, str | Path] | None = None,
        extra_hosts: Sequence[str] = (),
        push_interval: float = 0.2,
        heartbeat: float = 15.0,
    ) -> None:
        self.log, self.host = log, host
        self.token = token or secrets.token_urlsafe(24)
        self.request_stop = request_stop
        self.files = {name: Path(folder) for name, folder in (files or {}).items()}
        self.extra_hosts = list(extra_hosts)
        self.push_interval, self.heartbeat = push_interval, heartbeat
        self.closing = threading.Event()
        self.streams: dict[int, int] = {}  # open event streams: id -> events sent up to
        self.stop_requests = 0  # accepted Stop requests (tests, the CLI's message)
        self.refused = 0  # requests answered 403
        self.httpd = _Server((host, port), _Handler)
        self.httpd.watch = self
        self.port = self.httpd.server_address[1]
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        """The page's address, token included: what the CLI prints."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}/?token={self.token}"

    def allowed_hosts(self) -> set[str]:
        """Host headers this server answers: its own address, never another name."""
        names = {"127.0.0.1", "localhost", "[::1]"}
        for name in [self.host, *self.extra_hosts]:
            if name not in LOOPBACK and name not in ("0.0.0.0", "::"):
                names.add(f"[{name}]" if ":" in name else name)
        return {f"{n}:{self.port}".lower() for n in names}

    def start(self) -> WatchServer:
        serve = self.httpd.serve_forever
        self._thread = threading.Thread(
            target=serve, kwargs={"poll_interval": 0.2}, daemon=True, name=f"watch:{self.port}"
        )
        self._thread.start()
        return self

    def close(self, drain: float = 5.0) -> None:
        """Stop serving: open event streams end, the socket is closed. When the log is
        closed (the run is over), open pages first get its last events and the end of
        the stream (`bye`, after which a stream ends by itself), for at most `drain`
        seconds."""
        deadline = time.monotonic() + drain
        while self.log.closed and self.streams and time.monotonic() < deadline:
            time.sleep(0.02)
        self.closing.set()
        self.log.wake()
        if self._thread is not None:
            self.httpd.shutdown()
            self._thread.join(timeout=5)
            self._thread = None
        self.httpd.server_close()

    def __enter__(self) -> WatchServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()


class _Server(ThreadingHTTPServer):
    daemon_threads = True  # an open event stream never keeps the process alive
    allow_reuse_address = False  # two runs never share a port
    watch: WatchServer


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    server_version = "descent-watch"
    sys_version = ""
    timeout = 30  # seconds a socket may block: a page that stops reading is dropped

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002
        pass  # the terminal belongs to the training run

    # -- dispatch ----------------------------------------------------------------------
    def do_GET(self) -> None:  # noqa: N802
        watch = self.server.watch
        if not self._host_ok():
            return self._refuse(HTTPStatus.FORBIDDEN, "unknown Host")
        url = urlsplit(self.path)
        path = url.path
        if path == "/":
            if not self._token_ok(url.query):
                return self._refuse(HTTPStatus.FORBIDDEN, "open the address with its ?token=")
            return self._send_file(STATIC / "index.html")
        if path.startswith("/static/"):
            found = safe_path(STATIC, path[len("/static/") :])
            return self._send_file(found) if found else self._not_found()
        if path == "/events":
            if not self._token_ok(url.query):
                return self._refuse(HTTPStatus.FORBIDDEN, "a token is needed")
            return self._stream(watch)
        if path.startswith("/files/"):
            if not self._token_ok(url.query):
                return self._refuse(HTTPStatus.FORBIDDEN, "a token is needed")
            name, _, rest = path[len("/files/") :].partition("/")
            root = watch.files.get(unquote(name))
            found = safe_path(root, rest) if root is not None else None
            return self._send_file(found) if found else self._not_found()
        return self._not_found()

    def do_POST(self) -> None:  # noqa: N802
        watch = self.server.watch
        if not self._host_ok():
            return self._refuse(HTTPStatus.FORBIDDEN, "unknown Host")
        url = urlsplit(self.path)
        if url.path != "/api/stop":
            return self._not_found()
        ctype = self.headers.get("Content-Type", "").split(";")[0].strip().lower()
        if ctype != "application/json":
            return self._refuse(HTTPStatus.FORBIDDEN, "Stop takes a JSON request")
        origin = self.headers.get("Origin")
        if origin is not None and urlsplit(origin).netloc.lower() not in watch.allowed_hosts():
            return self._refuse(HTTPStatus.FORBIDDEN, "a request from another site")
        body = self._json_body()
        token = body.get("token") if isinstance(body, dict) else None
        if not (isinstance(token, str) and _same(token, watch.token)):
            return self._refuse(HTTPStatus.FORBIDDEN, "a token is needed")
        if watch.request_stop is None:
            return self._send_json(HTTPStatus.CONFLICT, {"ok": False, "error": "nothing to stop"})
        watch.stop_requests += 1
        watch.request_stop(PAGE_REASON)
        watch.log.append({"type": "note", "run": None, "text": "stop requested from the page"})
        return self._send_json(HTTPStatus.ACCEPTED, {"ok": True})

    # -- checks ------------------------------------------------------------------------
    def _host_ok(self) -> bool:
        host = self.headers.get("Host", "").strip().lower()
        return host in self.server.watch.allowed_hosts()

    def _token_ok(self, query: str) -> bool:
        given = parse_qs(query).get("token", [""])[0]
        return _same(given, self.server.watch.token)

    def _json_body(self) -> object:
        try:
            length = int(self.headers.get("Content-Length", "0"))
        except ValueError:
            return None
        if not 0 < length <= MAX_BODY:
            return None
        try:
            return json.loads(self.rfile.read(length))
        except ValueError:
            return None

    # -- answers -----------------------------------------------------------------------
    def _headers(self, status: int, ctype: str, length: int | None = None) -> None:
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        if length is not None:
            self.send_header("Content-Length", str(length))
        self.send_header("Cache-Control", "no-store")
        self.send_header("X-Content-Type-Options", "nosniff")
        self.send_header("Referrer-Policy", "no-referrer")
        self.send_header("X-Frame-Options", "DENY")
        self.send_header("Content-Security-Policy", CSP)
        self.end_headers()

    def _send_bytes(self, status: int, ctype: str, data: bytes) -> None:
        self._headers(status, ctype, len(data))
        self.wfile.write(data)

    def _send_json(self, status: int, obj: object) -> None:
        self._send_bytes(status, "application/json", json.dumps(obj).encode())

    def _refuse(self, status: HTTPStatus, why: str) -> None:
        if status == HTTPStatus.FORBIDDEN:
            self.server.watch.refused += 1
        self._send_bytes(status, "text/plain; charset=utf-8", f"{status.phrase}: {why}\n".encode())

    def _not_found(self) -> None:
        self._refuse(HTTPStatus.NOT_FOUND, "no such file")

    def _send_file(self, path: Path) -> None:
        ctype = CONTENT_TYPES.get(path.suffix.lower(), "application/octet-stream")
        self._send_bytes(HTTPStatus.OK, ctype, path.read_bytes())

    def _stream(self, watch: WatchServer) -> None:
        """The event stream: replay from the start (or after Last-Event-ID), then follow."""
        try:
            index = int(self.headers.get("Last-Event-ID", "-1")) + 1
        except ValueError:
            index = 0
        self._headers(HTTPStatus.OK, "text/event-stream; charset=utf-8")
        hello = {"can_stop": watch.request_stop is not None, "replay": index == 0}
        key = id(self)
        watch.streams[key] = index
        try:
            self.wfile.write(f"retry: 2000\nevent: hello\ndata: {json.dumps(hello)}\n\n".encode())
            self.wfile.flush()
            quiet_since = time.monotonic()
            while not watch.closing.is_set():
                batch, index = watch.log.encoded_since(index)
                if batch:
                    chunk = "".join(f"id: {i}\ndata: {text}\n\n" for i, text in batch)
                    self.wfile.write(chunk.encode())
                    self.wfile.flush()
                    watch.streams[key] = index
                    quiet_since = time.monotonic()
                    # at most one push per interval: a fast loop's events go out in batches
                    watch.closing.wait(watch.push_interval)
                    continue
                watch.streams[key] = index
                if watch.log.closed and index >= len(watch.log):
                    # the run is over and the page has everything: it closes its stream
                    self.wfile.write(b"event: bye\ndata: {}\n\n")
                    self.wfile.flush()
                    return
                if time.monotonic() - quiet_since >= watch.heartbeat:
                    self.wfile.write(b": ping\n\n")  # finds a closed page, keeps proxies open
                    self.wfile.flush()
                    quiet_since = time.monotonic()
                watch.log.wait(index, timeout=min(watch.heartbeat, 1.0))
        except (BrokenPipeError, ConnectionResetError, TimeoutError):
            pass  # the page went away
        finally:
            watch.streams.pop(key, None)


def safe_path(root: str | Path, relative: str) -> Path | None:
    """The regular file `root/relative` (percent-decoded once), or None when it is
    outside `root`, absent, or reached through a symbolic link.

    Refused: empty segments (so no absolute path), "." and "..", backslashes, NUL,
    and anything whose real path is not under the real `root`."""
    text = unquote(relative)
    parts = text.split("/")
    if not text or any(p in ("", ".", "..") or "\\" in p or "\x00" in p for p in parts):
        return None
    base = Path(root).resolve()
    path = base
    try:
        for part in parts:  # walk down: a link anywhere on the way is refused
            path = path / part
            mode = os.lstat(path).st_mode
            if stat.S_ISLNK(mode):
                return None
        if not stat.S_ISREG(mode) or not path.resolve().is_relative_to(base):
            return None
    except (OSError, ValueError):
        return None
    return path


def _same(given: str, token: str) -> bool:
    return hmac.compare_digest(given.encode(), token.encode())
