"""Run the simulator in a child process, for tests and benchmarks that need a real server."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
import weakref
from pathlib import Path

from etl.simulator.config import SimConfig, config_to_args

REPO_ROOT = Path(__file__).resolve().parents[2]
HOST = "127.0.0.1"
STOP_GRACE_S = 5.0
POLL_INTERVAL_S = 0.05


def port_accepts_connections(port: int) -> bool:
    try:
        with socket.create_connection((HOST, port), timeout=0.5):
            return True
    except OSError:
        return False


def terminate(process: subprocess.Popen) -> None:
    """SIGTERM, then SIGKILL if the process does not exit within the grace period."""
    if process.poll() is not None:
        return
    process.terminate()
    try:
        process.wait(timeout=STOP_GRACE_S)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


class SimulatorProcess:
    """`with SimulatorProcess(SimConfig(seed=7)) as sim: ... sim.base_url ...`"""

    def __init__(self, config: SimConfig | None = None, startup_timeout_s: float = 15.0) -> None:
        self.config = config or SimConfig()
        self.startup_timeout_s = startup_timeout_s
        self.port: int | None = None
        self._process: subprocess.Popen | None = None
        self._workdir: tempfile.TemporaryDirectory | None = None
        self._finalizer: weakref.finalize | None = None

    @property
    def base_url(self) -> str:
        if self.port is None:
            raise RuntimeError("simulator not started")
        return f"http://{HOST}:{self.port}"

    def command(self, port_file: Path) -> list[str]:
        return [
            sys.executable,
            "-m",
            "etl.simulator",
            "--host",
            HOST,
            "--port",
            "0",
            "--port-file",
            str(port_file),
            "--parent-pid",
            str(os.getpid()),
            *config_to_args(self.config),
        ]

    def start(self) -> SimulatorProcess:
        if self._process is not None:
            raise RuntimeError("simulator already started")
        self._workdir = tempfile.TemporaryDirectory(prefix="nepse-sim-")
        workdir = Path(self._workdir.name)
        port_file = workdir / "port"
        env = {
            **os.environ,
            "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO_ROOT), os.environ.get("PYTHONPATH")])),
        }
        with open(workdir / "simulator.log", "wb") as log:
            self._process = subprocess.Popen(
                self.command(port_file), stdout=log, stderr=subprocess.STDOUT, env=env, cwd=REPO_ROOT,
                # Its own session: a Ctrl-C at the terminal is for the backfill to handle, and the
                # simulator must keep answering while the backfill finishes its requests in flight.
                start_new_session=True,
            )
        # Runs on stop(), on garbage collection and at interpreter exit: no orphans.
        self._finalizer = weakref.finalize(self, terminate, self._process)
        try:
            self.port = self._wait_until_listening(port_file)
        except BaseException:
            self.stop()
            raise
        return self

    def _wait_until_listening(self, port_file: Path) -> int:
        deadline = time.monotonic() + self.startup_timeout_s
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                raise RuntimeError(f"simulator exited with {self._process.returncode}:\n{self.log_text()}")
            if port_file.exists():
                port = int(port_file.read_text())
                if port_accepts_connections(port):
                    return port
            time.sleep(POLL_INTERVAL_S)
        raise TimeoutError(f"simulator not listening after {self.startup_timeout_s} s:\n{self.log_text()}")

    def log_text(self) -> str:
        if self._workdir is None:
            return ""
        log_path = Path(self._workdir.name) / "simulator.log"
        return log_path.read_text(errors="replace") if log_path.exists() else ""

    def stats(self) -> dict:
        with urllib.request.urlopen(f"{self.base_url}/_sim/stats", timeout=10) as response:
            return json.load(response)

    def reset_stats(self) -> None:
        request = urllib.request.Request(f"{self.base_url}/_sim/reset", method="POST", data=b"")
        with urllib.request.urlopen(request, timeout=10):
            pass

    @property
    def pid(self) -> int:
        if self._process is None:
            raise RuntimeError("simulator not started")
        return self._process.pid

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def stop(self) -> None:
        if self._finalizer is not None:
            self._finalizer()  # terminates the process once; later calls do nothing
        if self._workdir is not None:
            self._workdir.cleanup()
            self._workdir = None

    def __enter__(self) -> SimulatorProcess:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()
