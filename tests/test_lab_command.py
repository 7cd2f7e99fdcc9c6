"""`gradviz lab` and `make lab` serve JupyterLab on 127.0.0.1 only, only with a token that no
other user can read, only on a port they checked, and never without authentication."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

import pytest

from gradviz_lab import lab

ROOT = Path(__file__).resolve().parents[1]
TOKEN = "test-token-0123456789abcdef"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


_status = lab.http_status  # the same probe `gradviz lab` uses: GET, the token in a header


def _post(url: str, token: str) -> bytes:
    request = urllib.request.Request(url, data=b"{}", method="POST",
                                     headers={"Authorization": f"token {token}"})
    with urllib.request.urlopen(request, timeout=30) as response:
        return response.read()


def _non_loopback_address() -> str | None:
    """An address of this machine other than 127.x, to prove the server is not bound to it."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        try:
            s.connect(("192.0.2.1", 9))  # TEST-NET-1: no packet is sent by a UDP connect
            address = s.getsockname()[0]
        except OSError:
            return None
    return None if address.startswith("127.") else address


def _gradviz(*args: str) -> list[str]:
    return [sys.executable, "-m", "gradviz_lab.cli", *args]


def _environment(**changes: str | None) -> dict:
    env = {**os.environ}
    env.pop("GRADVIZ_TOKEN", None)
    for key, value in changes.items():
        if value is None:
            env.pop(key, None)
        else:
            env[key] = value
    return env


class Output:
    """Collects a process's output lines from a thread, so a test can wait for one of them."""

    def __init__(self, process: subprocess.Popen) -> None:
        self.lines: list[str] = []
        self.thread = threading.Thread(target=self._read, args=(process,), daemon=True)
        self.thread.start()

    def _read(self, process: subprocess.Popen) -> None:
        for line in process.stdout:
            self.lines.append(line)

    def wait_for(self, text: str, process: subprocess.Popen, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if any(text in line for line in self.lines):
                return True
            if process.poll() is not None:
                self.thread.join(timeout=5)
                return any(text in line for line in self.lines)
            time.sleep(0.2)
        return False

    @property
    def text(self) -> str:
        return "".join(self.lines)


def _stop(process: subprocess.Popen) -> None:
    """SIGTERM to `gradviz lab` alone: it must stop its server itself."""
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


# --------------------------------------------------------------------------------------------
# Decisions made before anything starts
# --------------------------------------------------------------------------------------------


def test_token_is_fresh_unless_given_and_never_empty_or_short():
    first, second = lab.lab_token({}), lab.lab_token({})
    assert first != second and len(first) >= 32
    assert lab.lab_token({"GRADVIZ_TOKEN": TOKEN}) == TOKEN
    with pytest.raises(lab.LabError, match="set but empty: refusing to start JupyterLab without a real token"):
        lab.lab_token({"GRADVIZ_TOKEN": ""})
    with pytest.raises(lab.LabError, match="only 6 characters"):
        lab.lab_token({"GRADVIZ_TOKEN": "secret"})


def test_a_taken_port_is_refused_and_a_free_one_is_chosen():
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        assert not lab.port_is_free(port)
        with pytest.raises(lab.LabError, match=f"port {port} on 127.0.0.1 is already in use"):
            lab.choose_port(port)
    free = lab.choose_port(None)
    assert lab.FIRST_PORT <= free < lab.FIRST_PORT + 100 and lab.port_is_free(free)


def test_the_server_command_line_holds_no_token(tmp_path):
    command = " ".join(lab.server_command(tmp_path, 8888, "/lab"))
    assert "token" not in command.lower()
    assert "--ServerApp.ip=127.0.0.1" in command and "--ServerApp.port_retries=0" in command


def test_kernels_get_encrypted_sockets_where_jupyter_can_and_no_option_where_it_cannot(monkeypatch):
    import zmq
    from jupyter_client.manager import KernelManager

    option = "--KernelManager.transport_encryption=auto"
    supported = hasattr(KernelManager, "transport_encryption") and zmq.has("curve")
    assert (option in lab.server_command(Path("."), 8888, "/lab")) == supported
    monkeypatch.setattr(zmq, "has", lambda feature: feature != "curve")  # pyzmq without Curve
    assert lab.kernel_encryption_options() == []
    monkeypatch.undo()
    if supported:  # an older jupyter_client, which has no such setting
        monkeypatch.delattr(KernelManager, "transport_encryption")
        assert lab.kernel_encryption_options() == []


def _run_code_in_kernel(port: int, kernel_id: str, code: str, timeout: float = 60.0) -> str:
    """Execute code in a kernel of the server through its websocket (as JupyterLab does) and
    return what it printed."""
    import asyncio
    import json
    import uuid

    from tornado.httpclient import HTTPRequest
    from tornado.websocket import websocket_connect

    async def run() -> str:
        request = HTTPRequest(f"ws://127.0.0.1:{port}/api/kernels/{kernel_id}/channels",
                              headers={"Authorization": f"token {TOKEN}"})
        socket_ = await websocket_connect(request)
        msg_id = uuid.uuid4().hex
        header = {"msg_id": msg_id, "username": "test", "session": uuid.uuid4().hex,
                  "msg_type": "execute_request", "version": "5.3", "date": ""}
        content = {"code": code, "silent": False, "store_history": False, "user_expressions": {},
                   "allow_stdin": False}
        await socket_.write_message(json.dumps({"header": header, "parent_header": {}, "metadata": {},
                                                "channel": "shell", "content": content}))
        printed = []
        while True:
            message = json.loads(await socket_.read_message())
            if message.get("parent_header", {}).get("msg_id") != msg_id:
                continue
            if message["msg_type"] == "stream":
                printed.append(message["content"]["text"])
            if message["msg_type"] == "status" and message["content"]["execution_state"] == "idle":
                socket_.close()
                return "".join(printed)

    return asyncio.run(asyncio.wait_for(run(), timeout))


def test_dry_run_prints_the_url_and_starts_and_copies_nothing(tmp_path):
    port = _free_port()
    done = subprocess.run(_gradviz("lab", str(tmp_path / "course"), "--port", str(port), "--dry-run"),
                          env=_environment(GRADVIZ_TOKEN=TOKEN), capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert f"http://127.0.0.1:{port}/lab/tree/notebooks?token={TOKEN}" in done.stdout
    assert not (tmp_path / "course").exists() and lab.port_is_free(port)


def test_port_taken_prints_no_url_and_starts_no_server(tmp_path):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        done = subprocess.run(_gradviz("lab", str(tmp_path), "--no-copy", "--port", str(port)),
                              env=_environment(GRADVIZ_TOKEN=TOKEN), capture_output=True, text=True, timeout=60)
    assert done.returncode == 1
    assert "already in use" in done.stderr
    assert "http://" not in done.stdout + done.stderr  # no URL that would reach the other server


@pytest.mark.parametrize("token", ["", "short"])
def test_an_empty_or_short_token_never_starts_a_server(tmp_path, token):
    port = _free_port()
    done = subprocess.run(_gradviz("lab", str(tmp_path), "--no-copy", "--port", str(port)),
                          env=_environment(GRADVIZ_TOKEN=token), capture_output=True, text=True, timeout=60)
    assert done.returncode == 1 and "refusing to start JupyterLab without a real token" in done.stderr
    assert "http://" not in done.stdout and lab.port_is_free(port)


# --------------------------------------------------------------------------------------------
# A real, short-lived server
# --------------------------------------------------------------------------------------------


@pytest.mark.slow
def test_gradviz_lab_serves_only_with_its_token_which_no_process_list_shows(tmp_path):
    port, runtime = _free_port(), tmp_path / "runtime"
    server = subprocess.Popen(_gradviz("lab", str(tmp_path / "course"), "--port", str(port)),
                              env=_environment(GRADVIZ_TOKEN=TOKEN, JUPYTER_RUNTIME_DIR=str(runtime)),
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                              start_new_session=True)
    output = Output(server)
    try:
        assert output.wait_for("gradviz-lab: open", server, timeout=90), output.text[-3000:]
        # a kernel runs code, over encrypted sockets where this Jupyter can encrypt them
        kernel = json.loads(_post(f"http://127.0.0.1:{port}/api/kernels", TOKEN))
        assert _run_code_in_kernel(port, kernel["id"], "print(6 * 7)") == "42\n"
        connection = json.loads((runtime / f"kernel-{kernel['id']}.json").read_text())
        if lab.kernel_encryption_options():
            assert {"curve_publickey", "curve_secretkey"} <= connection.keys()
            assert "without encryption" not in output.text, output.text[-3000:]
        assert f"http://127.0.0.1:{port}/lab/tree/notebooks?token={TOKEN}" in output.text
        assert "copied" in output.text and (tmp_path / "course" / "notebooks").is_dir()
        base = f"http://127.0.0.1:{port}"
        assert _status(f"{base}/api/contents", TOKEN) == 200
        assert _status(f"{base}/api/contents") in (401, 403)  # no token
        assert _status(f"{base}/api/contents", "wrong-token-0123456789") in (401, 403)
        processes = subprocess.run(["ps", "-eo", "args"], capture_output=True, text=True, check=True).stdout
        assert "jupyterlab" in processes and TOKEN not in processes
        other = _non_loopback_address()
        if other:
            with pytest.raises(OSError):
                socket.create_connection((other, port), timeout=2).close()
    finally:
        _stop(server)
    # SIGTERM to `gradviz lab` stopped its server too (it runs in a session of its own)
    deadline = time.monotonic() + 20
    while not lab.port_is_free(port) and time.monotonic() < deadline:
        time.sleep(0.3)
    assert lab.port_is_free(port), "the JupyterLab server outlived `gradviz lab`"


@pytest.mark.slow
def test_a_server_that_answers_without_a_token_is_stopped_and_no_url_printed(tmp_path):
    """A Jupyter config that turns authentication off (here an empty token in a config file) is
    caught by the check after start-up: the server is stopped, no URL is printed."""
    config = tmp_path / "config"
    config.mkdir()
    (config / "jupyter_server_config.json").write_text('{"IdentityProvider": {"token": ""}}')
    port = _free_port()
    done = subprocess.run(_gradviz("lab", str(tmp_path), "--no-copy", "--port", str(port)),
                          env=_environment(GRADVIZ_TOKEN=TOKEN, JUPYTER_CONFIG_DIR=str(config)),
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 1, done.stdout[-2000:] + done.stderr[-2000:]
    assert "gradviz-lab: open" not in done.stdout
    assert "without a token" in done.stderr or "did not answer" in done.stderr or "exited" in done.stderr
    deadline = time.monotonic() + 20
    while not lab.port_is_free(port) and time.monotonic() < deadline:
        time.sleep(0.3)
    assert lab.port_is_free(port)


@pytest.mark.skipif(not (ROOT / ".venv" / ".gradviz-installed").exists() or not shutil.which("make"),
                    reason="needs the Makefile's .venv (run `make test`)")
def test_make_lab_serves_a_workspace_copy_on_localhost_with_token(tmp_path):
    port = _free_port()
    env = _environment(PORT=str(port), GRADVIZ_TOKEN=TOKEN, WORKSPACE=str(tmp_path / "workspace"))
    server = subprocess.Popen(["make", "lab"], cwd=ROOT, env=env, stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT, text=True, start_new_session=True)
    output = Output(server)
    try:
        assert output.wait_for("gradviz-lab: open", server, timeout=120), output.text[-3000:]
        assert f"http://127.0.0.1:{port}/lab/tree/notebooks?token={TOKEN}" in output.text
        assert (tmp_path / "workspace" / "exercises" / "01_occlusion.ipynb").is_file()
        assert _status(f"http://127.0.0.1:{port}/api/status", TOKEN) == 200
        assert _status(f"http://127.0.0.1:{port}/api/status") == 403
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(server.pid, signal.SIGKILL)
            server.wait()


@pytest.mark.skipif(not (ROOT / ".venv" / ".gradviz-installed").exists() or not shutil.which("make"),
                    reason="needs the Makefile's .venv (run `make test`)")
def test_make_lab_with_an_empty_token_refuses_to_start(tmp_path):
    """`make lab GRADVIZ_TOKEN=` used to start JupyterLab with authentication off."""
    port = _free_port()
    done = subprocess.run(["make", "lab", "GRADVIZ_TOKEN=", f"PORT={port}", f"WORKSPACE={tmp_path}"], cwd=ROOT,
                          env=_environment(), capture_output=True, text=True, timeout=120)
    assert done.returncode != 0
    assert "refusing to start JupyterLab without a real token" in done.stderr
    assert "http://" not in done.stdout and lab.port_is_free(port)
    recipe = subprocess.run(["make", "-n", "lab", f"WORKSPACE={tmp_path}"], cwd=ROOT, capture_output=True, text=True)
    assert "gradviz lab" in recipe.stdout and "token" not in recipe.stdout.lower()  # none on a command line
