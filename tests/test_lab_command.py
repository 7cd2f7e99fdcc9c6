"""`make lab` serves JupyterLab on 127.0.0.1 only, and only with the token."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _status(url: str) -> int:
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            return response.status
    except urllib.error.HTTPError as error:
        return error.code


def _non_loopback_address() -> str | None:
    """An address of this machine other than 127.x, to prove the server is not bound to it."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        try:
            s.connect(("192.0.2.1", 9))  # TEST-NET-1: no packet is sent by a UDP connect
            address = s.getsockname()[0]
        except OSError:
            return None
    return None if address.startswith("127.") else address


@pytest.mark.skipif(not (ROOT / ".venv" / ".gradviz-installed").exists() or not shutil.which("make"),
                    reason="needs the Makefile's .venv (run `make test`)")
def test_make_lab_serves_api_status_on_localhost_with_token():
    port, token = _free_port(), "test-token-0123456789abcdef"
    env = {**os.environ, "PORT": str(port), "GRADVIZ_TOKEN": token}
    server = subprocess.Popen(["make", "lab"], cwd=ROOT, env=env, stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT, start_new_session=True)
    try:
        base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 90
        code = None
        while time.monotonic() < deadline and server.poll() is None:
            try:
                code = _status(f"{base}/api/status?token={token}")
                break
            except (urllib.error.URLError, ConnectionError, socket.timeout):
                time.sleep(0.5)
        assert code == 200, f"JupyterLab did not answer /api/status (exit {server.poll()})"
        assert _status(f"{base}/api/status") == 403  # no token
        assert _status(f"{base}/api/status?token=wrong") == 403
        other = _non_loopback_address()
        if other:
            with pytest.raises(OSError):
                socket.create_connection((other, port), timeout=2).close()
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        try:
            output, _ = server.communicate(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(server.pid, signal.SIGKILL)
            output, _ = server.communicate()
    assert f"http://127.0.0.1:{port}/lab/tree/notebooks?token={token}" in output.decode()
