"""Slow clients against the documented production set-up: nginx (deploy/nginx.conf) in front of
`python main.py` (gunicorn, the default 2 workers x 8 threads).

Sockets that send part of a request and never finish it hold a gunicorn thread each; enough of
them stop the app from answering anyone, Slack included. Through the proxy, the app keeps
answering. nginx runs here as a subprocess with deploy/nginx.conf, changed only in where it
listens, where its upstream is and where it keeps its files.
"""

from __future__ import annotations

import http.client
import os
import shutil
import socket
import subprocess
import time
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Iterator

import pytest

from slack_standin.harness import free_port
from tests.support import PROJECT_ROOT

pytestmark = pytest.mark.slow

NGINX_CONF = PROJECT_ROOT / "deploy" / "nginx.conf"
SLOW_SOCKETS = 50
# What the attack sends: a request head without its end, and a body shorter than announced.
UNFINISHED_HEAD = b"GET /healthz HTTP/1.1\r\nHost: x\r\n"
UNFINISHED_BODY = (b"POST /slack/events HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                   b"Content-Length: 1000\r\n\r\n{\"type\":")


def nginx_binary() -> str:
    found = shutil.which("nginx") or next((p for p in ("/usr/sbin/nginx",) if os.path.exists(p)), None)
    if found is None:
        reason = ("nginx is not installed (Debian: apt-get install nginx), so the production set-up "
                  "(deploy/nginx.conf in front of gunicorn) cannot be run")
        if os.environ.get("REQUIRE_NGINX"):
            pytest.fail(f"{reason}; REQUIRE_NGINX is set")
        pytest.skip(reason)
    return found


def _swap(text: str, old: str, new: str) -> str:
    assert text.count(old) == 1, f"deploy/nginx.conf no longer has exactly one {old!r}"
    return text.replace(old, new)


def render_nginx_conf(directory: Path, *, listen_port: int, upstream_port: int) -> Path:
    """deploy/nginx.conf with only addresses and file locations changed; every limit stays."""
    text = NGINX_CONF.read_text()
    text = _swap(text, "listen 8080;", f"listen 127.0.0.1:{listen_port};")
    text = _swap(text, "server app:3000;", f"server 127.0.0.1:{upstream_port};")
    text = _swap(text, "access_log /dev/stdout app;", f"access_log {directory}/access.log app;")
    for kind in ("client_body", "proxy"):
        text = _swap(text, f"{kind}_temp_path /tmp/nginx-{kind.replace('_', '-')};", f"{kind}_temp_path {directory}/{kind};")
    # Modules the proxy does not use still want their folders: here, not in the system's.
    unused = "".join(f"    {kind}_temp_path {directory}/{kind};\n" for kind in ("fastcgi", "uwsgi", "scgi"))
    text = _swap(text, "http {\n", "http {\n" + unused)
    path = directory / "nginx.conf"
    path.write_text(text)
    return path


def nginx_command(conf: Path, directory: Path, *, test: bool = False) -> list[str]:
    main = f"pid {directory}/nginx.pid;" + (" user root;" if os.geteuid() == 0 else "")
    if not test:
        main = "daemon off; " + main
    return [nginx_binary(), "-e", "stderr", "-p", str(directory), "-c", str(conf), "-g", main] + (["-t"] if test else [])


@contextmanager
def running_nginx(directory: Path, upstream_port: int) -> Iterator[int]:
    directory.mkdir(exist_ok=True)
    port = free_port()
    conf = render_nginx_conf(directory, listen_port=port, upstream_port=upstream_port)
    log = open(directory / "nginx.log", "wb")
    process = subprocess.Popen(nginx_command(conf, directory), stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 10
        while True:
            assert process.poll() is None, (directory / "nginx.log").read_text()
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                assert time.monotonic() < deadline, "nginx did not start"
                time.sleep(0.05)
        yield port
    finally:
        process.terminate()
        process.wait(timeout=10)
        log.close()


@contextmanager
def slow_clients(port: int, count: int = SLOW_SOCKETS, sends: tuple[bytes, ...] = (UNFINISHED_HEAD, UNFINISHED_BODY)
                 ) -> Iterator[list[socket.socket]]:
    """`count` connections, each stuck in the middle of its request (taking turns at `sends`)."""
    sockets = []
    try:
        for n in range(count):
            sock = socket.create_connection(("127.0.0.1", port), timeout=5)
            sock.sendall(sends[n % len(sends)])
            sockets.append(sock)
        time.sleep(0.5)  # let the server take them up
        yield sockets
    finally:
        for sock in sockets:
            sock.close()


def healthz_seconds(port: int, timeout: float) -> float:
    """Time for GET /healthz to answer 200; raises socket.timeout when it takes longer than `timeout`."""
    started = time.monotonic()
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        conn.request("GET", "/healthz")
        response = conn.getresponse()
        response.read()
        assert response.status == 200
    finally:
        conn.close()
    return time.monotonic() - started


def test_the_shipped_nginx_conf_passes_nginx_t(tmp_path: Path) -> None:
    conf = render_nginx_conf(tmp_path, listen_port=free_port(), upstream_port=3000)
    done = subprocess.run(nginx_command(conf, tmp_path, test=True), capture_output=True, text=True, timeout=30)
    assert done.returncode == 0, done.stderr
    assert "syntax is ok" in done.stderr and "test is successful" in done.stderr


def stall_directly(port: int, step: int = 10, limit: int = 400) -> tuple[ExitStack, int]:
    """Open unfinished requests straight at gunicorn, `step` at a time, until /healthz goes
    unanswered; returns the open sockets and their number. (Which worker accepts a connection is
    a race one worker often wins many times in a row, so how many it takes varies.)"""
    stack = ExitStack()
    for opened in range(step, limit + 1, step):
        stack.enter_context(slow_clients(port, step, sends=(UNFINISHED_HEAD,)))
        try:
            healthz_seconds(port, timeout=1)
        except socket.timeout:
            return stack, opened
    stack.close()
    raise AssertionError(f"{limit} unfinished requests did not stall gunicorn")


def test_behind_nginx_slow_clients_do_not_stall_the_app(app_server_factory, sqlite_url, tmp_path: Path) -> None:
    nginx_binary()
    app = app_server_factory(sqlite_url)  # the defaults: 2 workers x 8 threads

    # Straight at gunicorn, unfinished requests hold its threads until it answers no one. This is
    # why the app must not face the internet without the proxy (and shows that the attack bites).
    held, enough = stall_directly(app.port)
    held.close()
    assert healthz_seconds(app.port, timeout=10) < 10  # those clients gone, the threads are free again

    # The same number (at least SLOW_SOCKETS) through nginx: every /healthz answers within a second.
    with running_nginx(tmp_path / "nginx", app.port) as proxy_port:
        with slow_clients(proxy_port, max(enough, SLOW_SOCKETS)):
            through_proxy = [healthz_seconds(proxy_port, timeout=5) for _ in range(5)]
    assert max(through_proxy) < 1.0, through_proxy
