"""A throwaway JupyterLab server for the browser test.

It listens on 127.0.0.1 on a free port with a random token, serves a temporary root directory and
keeps every piece of Jupyter state (config, settings, workspaces, runtime files, IPython profile)
in a temporary directory too, so the test neither reads nor changes the user's own setup.
"""

from __future__ import annotations

import json
import os
import secrets
import socket
import subprocess
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from gradviz_lab.lab import server_command

# User settings for the JupyterLab frontend, written into the isolated settings directory.
LAB_SETTINGS: dict[str, dict[str, object]] = {
    # No news prompt or update check: the toast would cover outputs and the fetch needs internet.
    "@jupyterlab/apputils-extension/notification": {
        "fetchNews": "false",
        "checkForUpdates": False,
        "doNotDisturbMode": True,
    },
    # Keep every cell attached to the page, so off-screen outputs are rendered and screenshot-able.
    "@jupyterlab/notebook-extension/tracker": {"windowingMode": "none"},
}


@dataclass
class JupyterLab:
    """A running server: its base URL, token, process and log file."""

    url: str
    token: str
    process: subprocess.Popen
    log_path: Path

    def notebook_url(self, name: str) -> str:
        """The address that opens notebook ``name`` (relative to the root dir) in JupyterLab."""
        return f"{self.url}/lab/tree/{name}?token={self.token}"

    def request(self, path: str, method: str = "GET", timeout: float = 5.0) -> bytes:
        """One authenticated REST call, e.g. ``request("/api/status")``."""
        req = urllib.request.Request(
            f"{self.url}{path}", method=method, headers={"Authorization": f"token {self.token}"}
        )
        with urllib.request.urlopen(req, timeout=timeout) as response:
            return response.read()

    def log_tail(self, lines: int = 40) -> str:
        text = self.log_path.read_text(errors="replace") if self.log_path.exists() else ""
        return "\n".join(text.splitlines()[-lines:])

    def stop(self, timeout: float = 20.0) -> None:
        """Shut down cleanly (kernels included) through the API; kill the process if that fails."""
        if self.process.poll() is None:
            try:
                self.request("/api/shutdown", method="POST")
            except (OSError, urllib.error.URLError):
                self.process.terminate()
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout)


def free_port() -> int:
    """A port nobody listens on right now (the OS picks it)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def isolated_environment(state_dir: Path) -> dict[str, str]:
    """The server's environment: ours, with every Jupyter/IPython state directory under state_dir."""
    env = dict(os.environ)
    for variable, sub in [
        ("JUPYTER_CONFIG_DIR", "config"),
        ("JUPYTER_DATA_DIR", "data"),  # extensions still come from sys.prefix/share/jupyter
        ("JUPYTER_RUNTIME_DIR", "runtime"),
        ("JUPYTERLAB_SETTINGS_DIR", "lab-settings"),
        ("JUPYTERLAB_WORKSPACES_DIR", "lab-workspaces"),
        ("IPYTHONDIR", "ipython"),
    ]:
        env[variable] = str(state_dir / sub)
        (state_dir / sub).mkdir(parents=True, exist_ok=True)
    for plugin, values in LAB_SETTINGS.items():
        path = state_dir / "lab-settings" / f"{plugin}.jupyterlab-settings"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(values))
    # The test process may have chosen Agg (tests/conftest.py); the kernel must get the inline
    # backend a student gets, or plt.show() inside a dashboard would draw nothing.
    env.pop("MPLBACKEND", None)
    return env


def start_jupyterlab(root_dir: Path, state_dir: Path, timeout: float = 120.0) -> JupyterLab:
    """Start ``jupyter lab`` from this Python's environment and wait until /api/status answers."""
    port, token = free_port(), secrets.token_hex(24)
    # `gradviz lab`'s own command line (127.0.0.1, no token in it, encrypted kernel sockets where
    # Jupyter can), plus no update check: the fetch needs internet.
    command = [*server_command(root_dir, port, "/lab"),
               "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate"]
    env = isolated_environment(state_dir)
    env["JUPYTER_TOKEN"] = token  # through the environment: a command line is visible in `ps`
    log_path = state_dir / "jupyterlab.log"
    with open(log_path, "wb") as log:
        process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=env)
    lab = JupyterLab(f"http://127.0.0.1:{port}", token, process, log_path)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"JupyterLab exited with code {process.returncode}:\n{lab.log_tail()}")
        try:
            lab.request("/api/status", timeout=2.0)
            return lab
        except (OSError, urllib.error.URLError):
            time.sleep(0.5)
    lab.stop()
    raise RuntimeError(f"JupyterLab did not answer /api/status within {timeout:.0f} s:\n{lab.log_tail()}")
