"""``gradviz lab [DIR]``: JupyterLab on your copy of the course, on 127.0.0.1, with a fresh token.

Pure Python, so it works where ``make`` does not (Windows, macOS without developer tools). In order:

1. the token: a fresh random one (``secrets.token_hex``), or ``GRADVIZ_TOKEN`` if set. An empty
   or short one is refused: the server never starts without authentication.
2. the port: ``--port N`` is checked before anything starts (taken: an error, and no URL); without
   it, the first free port from 8888 up.
3. the course: ``gradviz course DIR`` (a copy that never overwrites your changes); ``--no-copy``
   serves DIR as it is (instructors editing a clone's sources: ``make lab-sources``).
4. JupyterLab, bound to 127.0.0.1. The token reaches it in its environment (``JUPYTER_TOKEN``), not
   on its command line, where every user of the machine could read it with ``ps``. Its kernels
   talk to it over encrypted sockets (CurveZMQ) where the installed Jupyter can
   (``kernel_encryption_options``).
5. the URL is printed only once the server answers with that token, and only after checking that it
   refuses a request without it; otherwise the server is stopped and the command fails.

``--dry-run`` prints the URL it would serve and starts nothing.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import secrets
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

from .course import DEFAULT_DIR, copy_course

HOST = "127.0.0.1"
FIRST_PORT = 8888
MIN_TOKEN_LENGTH = 16
STARTUP_SECONDS = 120.0  # a first start on a slow laptop can take a while; it usually takes seconds


class LabError(RuntimeError):
    """JupyterLab was not started, or was stopped, for the reason given."""


def lab_token(environ: dict[str, str] | None = None) -> str:
    """The token to require: ``GRADVIZ_TOKEN`` if set (it must be long enough), else a fresh one."""
    environ = os.environ if environ is None else environ
    if "GRADVIZ_TOKEN" not in environ:
        return secrets.token_hex(24)
    token = environ["GRADVIZ_TOKEN"]
    if len(token) < MIN_TOKEN_LENGTH:
        raise LabError(
            f"GRADVIZ_TOKEN is set but {'empty' if not token else f'only {len(token)} characters long'}: "
            f"refusing to start JupyterLab without a real token. Unset it to get a fresh random token, "
            f"or set it to at least {MIN_TOKEN_LENGTH} random characters."
        )
    return token


def port_is_free(port: int) -> bool:
    """True if nothing listens on 127.0.0.1:port (checked by binding it, as the server will)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as tornado does: TIME_WAIT is no obstacle
        try:
            probe.bind((HOST, port))
        except OSError:
            return False
    return True


def choose_port(port: int | None) -> int:
    """``port`` if it is free (an error if not), else the first free port from 8888."""
    if port is not None:
        if not 1 <= port <= 65535:
            raise LabError(f"--port must be between 1 and 65535, got {port}")
        if not port_is_free(port):
            raise LabError(
                f"port {port} on {HOST} is already in use (another JupyterLab?): nothing was started. "
                f"Choose another with --port, or leave --port out to take the first free one."
            )
        return port
    for candidate in range(FIRST_PORT, FIRST_PORT + 100):
        if port_is_free(candidate):
            return candidate
    raise LabError(f"no free port between {FIRST_PORT} and {FIRST_PORT + 99} on {HOST}; give one with --port")


def start_path(root: Path) -> str:
    """The page to open: the lessons' folder when there is one."""
    return "/lab/tree/notebooks" if (root / "notebooks").is_dir() else "/lab"


def lab_url(port: int, token: str, path: str) -> str:
    return f"http://{HOST}:{port}{path}?token={token}"


def kernels_can_be_encrypted() -> bool:
    """Whether this Jupyter can encrypt the traffic between a kernel and its client.

    A kernel listens on 127.0.0.1 sockets and checks a key on every message, but the messages
    themselves (your code, its outputs) travel in plain text that other processes on the machine
    can read, and ipykernel 7 says so on every start ("Kernel is running over TCP without
    encryption"). From jupyter_client 8.9 the kernel manager can hand each kernel CurveZMQ keys
    (``KernelManager.transport_encryption``); ``auto`` does it for the kernels whose kernelspec
    says they support it and leaves the others as they were. Older Jupyter, or a pyzmq built
    without Curve (which would refuse ``auto``), cannot: the kernels run as before."""
    try:
        import zmq
        from jupyter_client.manager import KernelManager
    except ImportError:
        return False
    return hasattr(KernelManager, "transport_encryption") and zmq.has("curve")


def kernel_encryption_config() -> dict[str, dict[str, str]]:
    """The kernel manager's setting that encrypts its kernels' sockets where Jupyter can, as a
    traitlets config ({} where it cannot): for JupyterLab's command line and for nbclient."""
    return {"KernelManager": {"transport_encryption": "auto"}} if kernels_can_be_encrypted() else {}


def kernel_encryption_options() -> list[str]:
    """``kernel_encryption_config`` as JupyterLab's command-line options."""
    return [f"--{owner}.{name}={value}" for owner, settings in kernel_encryption_config().items()
            for name, value in settings.items()]


def server_command(root: Path, port: int, path: str) -> list[str]:
    """The JupyterLab command line: no token in it (it travels in the environment)."""
    command = [
        sys.executable, "-m", "jupyterlab", "--no-browser",
        f"--ServerApp.ip={HOST}", f"--ServerApp.port={port}", "--ServerApp.port_retries=0",
        f"--ServerApp.root_dir={root}", f"--ServerApp.default_url={path}",
        *kernel_encryption_options(),
    ]
    if hasattr(os, "geteuid") and os.geteuid() == 0:
        command.append("--allow-root")  # containers often run as root
    return command


def http_status(url: str, token: str | None = None) -> int | None:
    """The HTTP status of GET url (None if nothing answers), the token sent in a header."""
    request = urllib.request.Request(url, headers={"Authorization": f"token {token}"} if token else {})
    try:
        with urllib.request.urlopen(request, timeout=2) as response:
            return response.status
    except urllib.error.HTTPError as error:
        return error.code
    except (urllib.error.URLError, ConnectionError, TimeoutError, socket.timeout):
        return None


def wait_until_serving(server: subprocess.Popen, port: int, token: str, timeout: float) -> None:
    """Return once *this* server answers with the token and refuses without it; else raise."""
    base = f"http://{HOST}:{port}"
    deadline = time.monotonic() + timeout
    while http_status(f"{base}/api/status", token) != 200:
        if server.poll() is not None:
            raise LabError(f"JupyterLab exited (code {server.returncode}) before serving: see its messages above")
        if time.monotonic() > deadline:
            raise LabError(f"JupyterLab did not answer on {base} within {timeout:.0f} s")
        time.sleep(0.3)
    anonymous = http_status(f"{base}/api/contents")
    if anonymous not in (401, 403):
        raise LabError(
            f"the server answered /api/contents without a token (HTTP {anonymous}): authentication is "
            f"off, perhaps set so by a Jupyter config file; stopped it"
        )


def stop(server: subprocess.Popen) -> None:
    if server.poll() is None:
        server.terminate()  # JupyterLab shuts down cleanly on SIGTERM
        try:
            server.wait(timeout=15)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()


def _interrupt(signum, frame):
    raise KeyboardInterrupt


def stop_on_signals() -> None:
    """Being killed (SIGTERM) or losing the terminal (SIGHUP) stops the server too, like Ctrl-C:
    the server runs in its own session, so it would otherwise outlive this command."""
    if threading.current_thread() is threading.main_thread():
        for name in ("SIGTERM", "SIGHUP"):
            if hasattr(signal, name):
                signal.signal(getattr(signal, name), _interrupt)


def server_environment(token: str, environ: dict[str, str] | None = None) -> dict[str, str]:
    """The server's environment, which its kernels inherit: the token, and one torch thread
    (OMP_NUM_THREADS=1) unless the user chose a number. The lab models are too small to gain
    from more threads, and on a busy laptop torch's default makes a lesson 2-4 times slower
    (gradviz_lab.threads; benchmarks/bench_course.py --load)."""
    environment = {**(os.environ if environ is None else environ), "JUPYTER_TOKEN": token}
    environment.pop("JUPYTER_TOKEN_FILE", None)
    environment.setdefault("OMP_NUM_THREADS", "1")
    return environment


def serve(root: Path, port: int, token: str, path: str, timeout: float = STARTUP_SECONDS) -> int:
    """Start JupyterLab, print the URL once it really serves, and wait until it stops."""
    if importlib.util.find_spec("jupyterlab") is None:
        raise LabError("JupyterLab is not installed in this Python environment: pip install jupyterlab")
    environment = server_environment(token)
    # Its own session: Ctrl-C reaches only this command, which then stops the server cleanly
    # (instead of JupyterLab asking "Shutdown this Jupyter server (y/[n])?").
    detach = ({"creationflags": subprocess.CREATE_NEW_PROCESS_GROUP} if os.name == "nt"
              else {"start_new_session": True})
    server = subprocess.Popen(server_command(root, port, path), env=environment, **detach)
    stop_on_signals()
    try:
        wait_until_serving(server, port, token, timeout)
        print(f"\n  gradviz-lab: open {lab_url(port, token, path)}\n  (serving {root}; Ctrl-C to stop)\n",
              flush=True)
        return server.wait()
    except KeyboardInterrupt:
        return 0
    finally:
        stop(server)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("dir", nargs="?", type=Path, default=DEFAULT_DIR,
                        help=f"your copy of the course, made or updated first (default ./{DEFAULT_DIR})")
    parser.add_argument("--port", type=int, default=None,
                        help=f"port on {HOST} (default: the first free one from {FIRST_PORT})")
    parser.add_argument("--no-copy", action="store_true",
                        help="serve DIR as it is, without copying the course into it (instructors: a clone's sources)")
    parser.add_argument("--dry-run", action="store_true", help="print the URL it would serve; start nothing")


def run(args: argparse.Namespace) -> int:
    try:
        token = lab_token()
        port = choose_port(args.port)
        root = args.dir.resolve()
        if args.dry_run:
            action = f"serve {root}" if args.no_copy else f"copy the course into {root} (if needed) and serve it"
            path = start_path(root) if args.no_copy else "/lab/tree/notebooks"
            print(f"gradviz lab --dry-run: would {action} at\n  {lab_url(port, token, path)}\n"
                  f"  (nothing started)")
            return 0
        if not args.no_copy:
            print("\n".join(copy_course(root).lines()))
        elif not root.is_dir():
            raise LabError(f"{root} is not a folder")
        return serve(root, port, token, start_path(root))
    except LabError as error:
        print(f"gradviz lab: {error}", file=sys.stderr)
        return 1
