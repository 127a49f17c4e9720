"""The live page's server over real sockets: who may stop a run (token, Host, JSON from
this page only), which files it serves (nothing outside its folders), and the event
stream (replay, then follow; resume after Last-Event-ID)."""

import http.client
import json
import os
import socket

import pytest

from descent.watch.log import EventLog
from descent.watch.server import WatchServer, safe_path


@pytest.fixture
def served(tmp_path):
    run = tmp_path / "run"
    (run / "plots").mkdir(parents=True)
    (run / "plots" / "loss.png").write_bytes(b"\x89PNG\r\n\x1a\nfake")
    (tmp_path / "secret.txt").write_text("outside the run folder")
    os.symlink(tmp_path / "secret.txt", run / "link.txt")  # a link inside pointing outside
    os.symlink(run / "plots" / "loss.png", run / "inner.png")  # even one pointing inside
    os.symlink(tmp_path, run / "up")  # a linked folder
    stops = []
    log = EventLog()
    with WatchServer(log, request_stop=stops.append, files={"run": run}) as server:
        yield server, stops, log


def request(server, method, path, body=None, headers=None, host=None):
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
    conn.putrequest(method, path, skip_host=True, skip_accept_encoding=True)
    conn.putheader("Host", host if host is not None else f"127.0.0.1:{server.port}")
    for k, v in (headers or {}).items():
        conn.putheader(k, v)
    data = body.encode() if isinstance(body, str) else body
    if data is not None:
        conn.putheader("Content-Length", str(len(data)))
    conn.endheaders(data)
    resp = conn.getresponse()
    out = resp.status, resp.read()
    conn.close()
    return out


def stop(server, token=None, ctype="application/json", host=None, origin=None, body=None):
    headers = {"Content-Type": ctype} if ctype else {}
    if origin:
        headers["Origin"] = origin
    if body is None:
        body = json.dumps({"token": server.token if token is None else token})
    return request(server, "POST", "/api/stop", body, headers, host)[0]


# -- Stop: only this page, with the token, as JSON -------------------------------------------
def test_stop_with_the_token_as_json_calls_request_stop(served):
    server, stops, log = served
    assert stop(server) == 202
    assert stops == ["stopped from the page"] and server.stop_requests == 1
    assert log.events()[-1]["text"] == "stop requested from the page"


@pytest.mark.parametrize(
    "case",
    [
        dict(body="{}"),  # no token
        dict(token=""),
        dict(token="not-the-token"),
        dict(host="evil.example:80"),  # DNS rebinding: the attacker's name, our address
        dict(host="evil.example"),
        dict(host=""),
        dict(ctype="application/x-www-form-urlencoded"),  # what a cross-site <form> sends
        dict(ctype="text/plain"),  # the other content type a form (or no-cors fetch) can send
        dict(ctype="multipart/form-data; boundary=x"),
        dict(ctype=None),
        dict(origin="http://evil.example"),
        dict(body="not json"),
    ],
    ids=lambda c: ",".join(f"{k}={v!r}" for k, v in c.items()),
)
def test_stop_is_refused_and_the_run_goes_on(served, case):
    server, stops, _ = served
    if case.get("ctype", "application/json") != "application/json" and "body" not in case:
        case = {**case, "body": f"token={server.token}"}  # a form carrying the right token
    assert stop(server, **case) == 403
    assert stops == [] and server.stop_requests == 0


def test_a_form_post_with_the_token_from_another_origin_is_refused(served):
    server, stops, _ = served
    status = stop(
        server,
        ctype="application/x-www-form-urlencoded",
        origin="http://evil.example",
        body=f"token={server.token}",
    )
    assert status == 403 and stops == []


def test_stop_without_a_run_to_stop_is_a_conflict(tmp_path):
    with WatchServer(EventLog()) as server:
        assert stop(server) == 409


# -- the page and its data need the token; every request needs our Host --------------------------
def test_the_page_and_its_data_need_the_token(served):
    server, _, _ = served
    assert request(server, "GET", "/")[0] == 403
    assert request(server, "GET", "/?token=wrong")[0] == 403
    status, body = request(server, "GET", f"/?token={server.token}")
    assert status == 200 and b"static/watch.js" in body
    assert request(server, "GET", "/events")[0] == 403
    assert request(server, "GET", "/files/run/plots/loss.png")[0] == 403
    assert request(server, "GET", f"/files/run/plots/loss.png?token={server.token}")[0] == 200
    assert request(server, "GET", "/static/watch.js")[0] == 200  # the same for everyone


@pytest.mark.parametrize(
    "host", ["evil.example", "evil.example:{port}", "127.0.0.1:9", "localhost"]
)
def test_a_foreign_host_header_gets_403_everywhere(served, host):
    server, _, _ = served
    host = host.format(port=server.port)
    for path in ["/?token=" + server.token, "/static/watch.js", f"/events?token={server.token}"]:
        assert request(server, "GET", path, host=host)[0] == 403


@pytest.mark.parametrize("host", ["127.0.0.1:{port}", "localhost:{port}", "LOCALHOST:{port}"])
def test_our_own_host_names_are_accepted(served, host):
    server, _, _ = served
    assert request(server, "GET", "/static/watch.css", host=host.format(port=server.port))[0] == 200


# -- files: nothing outside the allowed folders ---------------------------------------------
TRAVERSALS = [
    "../secret.txt",
    "%2e%2e/secret.txt",
    "%2E%2E%2Fsecret.txt",
    "plots/../../secret.txt",
    "plots/%2e%2e/%2e%2e/secret.txt",
    "%252e%252e/secret.txt",  # double encoding stays a (missing) name
    "..%5csecret.txt",  # a backslash
    "/etc/passwd",
    "%2Fetc%2Fpasswd",
    "//etc/passwd",
    "./plots/loss.png",
    "link.txt",  # a symlink pointing outside
    "inner.png",  # a symlink pointing inside: refused too
    "up/secret.txt",  # through a linked folder
    "plots",  # a folder
    "plots/",
    "plots/loss.png%00.txt",
    "",
]


@pytest.mark.parametrize("rest", TRAVERSALS)
def test_traversal_attempts_get_404(served, rest):
    server, _, _ = served
    for prefix in ("/files/run/", "/static/"):
        assert request(server, "GET", f"{prefix}{rest}?token={server.token}")[0] == 404


def test_unknown_file_roots_and_paths_get_404(served):
    server, _, _ = served
    token = server.token
    for path in ["/files/nope/plots/loss.png", "/files/%2e%2e/secret.txt", "/favicon.ico", "/../"]:
        assert request(server, "GET", f"{path}?token={token}")[0] == 404


def test_safe_path_accepts_plain_files_under_the_root(tmp_path):
    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "b.png").write_bytes(b"x")
    assert safe_path(tmp_path, "a/b.png") == tmp_path.resolve() / "a" / "b.png"
    assert safe_path(tmp_path, "a%2Fb.png") == tmp_path.resolve() / "a" / "b.png"
    assert safe_path(tmp_path, "a/../a/b.png") is None


# -- the event stream -------------------------------------------------------------------------
def read_events(sock_file, n):
    """The next n data events of an SSE stream (skipping comments and the hello)."""
    events, ids, current = [], [], {}
    while len(events) < n:
        line = sock_file.readline().decode().rstrip("\n")
        if line.startswith("id: "):
            current["id"] = int(line[4:])
        elif line.startswith("event: "):
            current["event"] = line[7:]
        elif line.startswith("data: "):
            current["data"] = json.loads(line[6:])
        elif line == "" and current:
            if current.get("event") is None and "data" in current:
                events.append(current["data"])
                ids.append(current["id"])
            current = {}
    return events, ids


def open_stream(server, last_id=None):
    sock = socket.create_connection(("127.0.0.1", server.port), timeout=10)
    extra = f"Last-Event-ID: {last_id}\r\n" if last_id is not None else ""
    host = f"127.0.0.1:{server.port}"
    sock.sendall(
        f"GET /events?token={server.token} HTTP/1.1\r\nHost: {host}\r\n{extra}\r\n".encode()
    )
    f = sock.makefile("rb")
    assert f.readline().startswith(b"HTTP/1.0 200")
    while f.readline() not in (b"\r\n", b""):
        pass
    return sock, f


def test_the_stream_replays_the_history_then_follows_the_log(served):
    server, _, log = served
    for e in range(3):
        log.append({"type": "epoch", "run": "a", "record": {"epoch": e + 1}})
    sock, f = open_stream(server)
    try:
        events, ids = read_events(f, 3)
        assert [e["record"]["epoch"] for e in events] == [1, 2, 3] and ids == [0, 1, 2]
        log.append({"type": "epoch", "run": "a", "record": {"epoch": 4}})
        events, ids = read_events(f, 1)
        assert events[0]["record"]["epoch"] == 4 and ids == [3]
    finally:
        sock.close()
    sock, f = open_stream(server, last_id=2)  # a reconnecting browser: no duplicates
    try:
        events, ids = read_events(f, 1)
        assert ids == [3]
    finally:
        sock.close()


def test_close_ends_open_streams_and_frees_the_port():
    log = EventLog()
    server = WatchServer(log).start()
    sock, f = open_stream(server)
    server.close()
    rest = f.read()  # returns once the server has ended the stream
    assert rest.startswith(b"retry: 2000") and b"id:" not in rest  # the hello, then the end
    sock.close()
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", server.port), timeout=2).close()


def test_it_listens_on_loopback_by_default_and_the_url_carries_the_token():
    with WatchServer(EventLog()) as server:
        assert server.httpd.server_address[0] == "127.0.0.1"
        assert server.url == f"http://127.0.0.1:{server.port}/?token={server.token}"
        assert len(server.token) >= 32
