"""A multi-node Ray cluster on this machine, of its own: ``ray start`` processes
started and stopped by a test, apart from the Ray of the test session.

Each node is one ``ray start --block`` process (so it is our child, and a
SIGTERM to it stops the node's raylet, agents and workers); all of them keep
their sockets and logs under one short temporary directory, which also names
every process of the cluster for the final clean-up. ``ray stop`` is never
used: it would stop every Ray on the machine, the test session's included.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import psutil
import ray
from ray._private import ray_constants

from tests.support.processes import free_port

__all__ = ["ClusterNode", "RayCluster"]

#: Ray's switch for multi-node clusters (``RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER``).
CLUSTERS_SWITCH = ray_constants.ENABLE_RAY_CLUSTERS_ENV_VAR

#: Where the ``ray`` command of this interpreter's environment is.
RAY = str(Path(sys.executable).with_name("ray"))
#: Nodes on a busy 2-core machine take tens of seconds to register.
START_SECONDS = 180.0
#: Enough of an object store for job payloads; Ray's default is 30 % of memory.
OBJECT_STORE_BYTES = 80_000_000
_STARTED = "Ray runtime started."
_LIST_NODES = """
import json, ray
ray.init(address={address!r}, namespace="hubbub-node-list", log_to_driver=False)
print(json.dumps([
    {{"id": n["NodeID"], "alive": n["Alive"], "labels": n.get("Labels", {{}}),
      "resources": n["Resources"]}}
    for n in ray.nodes()
]))
"""


@dataclass(frozen=True)
class ClusterNode:
    """A node as the cluster's GCS lists it."""

    id: str
    alive: bool
    labels: dict[str, str]
    resources: dict[str, float]


class RayCluster:
    """Owns: the ``ray start`` processes of one cluster and its temporary directory.

    ``env`` is the environment of every node (their Ray workers inherit it:
    working directory and ``PYTHONPATH`` decide what they can import).
    """

    def __init__(self, env: Mapping[str, str], cwd: Path) -> None:
        # Short: Ray's Unix sockets live under it, and their paths are limited.
        self.temp_dir = Path(tempfile.mkdtemp(prefix="hbr-", dir="/tmp"))
        self.port = free_port()
        self.address = f"{ray.util.get_node_ip_address()}:{self.port}"
        #: What a driver of this cluster (a gateway) needs in its environment:
        #: no token to share between nodes and drivers here (as in docker-compose.yml).
        self.driver_env = {"RAY_AUTH_MODE": "disabled", "RAY_USAGE_STATS_ENABLED": "0"}
        # The suite's own local Ray (hubbub.actors.runtime) switched clusters off
        # in this process's environment; a cluster's nodes need them on.
        inherited = {k: v for k, v in os.environ.items() if k != CLUSTERS_SWITCH}
        self._env = {
            **inherited,
            **self.driver_env,
            "RAY_raylet_start_wait_time_s": str(int(START_SECONDS)),
            **env,
        }
        self._cwd = cwd
        self._nodes: list[subprocess.Popen[bytes]] = []

    def start_head(self, *args: str) -> None:
        """The head node (GCS); ``args`` more ``ray start`` options."""
        self._start("head", "--head", f"--port={self.port}", "--include-dashboard=false", *args)

    def add_node(self, *args: str) -> None:
        """One more node joining the head; ``args`` more ``ray start`` options."""
        self._start(f"node-{len(self._nodes)}", f"--address={self.address}", *args)

    def _start(self, name: str, *args: str) -> None:
        log_path = self.temp_dir / f"{name}.log"
        command = [RAY, "start", *args, f"--temp-dir={self.temp_dir}", "--block"]
        command.append(f"--object-store-memory={OBJECT_STORE_BYTES}")
        with open(log_path, "ab") as log:
            process = subprocess.Popen(
                command, env=self._env, cwd=self._cwd, stdout=log, stderr=subprocess.STDOUT
            )
        self._nodes.append(process)
        self._wait_started(process, log_path)

    def _wait_started(self, process: subprocess.Popen[bytes], log_path: Path) -> None:
        """Until ``ray start`` says the node runs (it then is registered with the GCS)."""
        deadline = time.monotonic() + START_SECONDS
        while _STARTED not in log_path.read_text(errors="replace"):
            if process.poll() is not None or time.monotonic() > deadline:
                tail = "\n".join(log_path.read_text(errors="replace").splitlines()[-30:])
                raise AssertionError(f"ray start failed ({' '.join(process.args)}):\n{tail}")
            time.sleep(0.2)

    def nodes(self) -> list[ClusterNode]:
        """The cluster's nodes, as a driver of this cluster sees them. Blocking."""
        code = _LIST_NODES.format(address=self.address)
        listed = subprocess.run(
            [sys.executable, "-c", code],
            env=self._env,
            capture_output=True,
            check=True,
            timeout=START_SECONDS,
        )
        return [ClusterNode(**node) for node in json.loads(listed.stdout.splitlines()[-1])]

    def stop(self, within: float = 30.0) -> None:
        """Stop every node (workers first), then anything left under the temp dir."""
        for process in reversed(self._nodes):
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        for process in reversed(self._nodes):
            try:
                process.wait(within)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        self._kill_leftovers()
        shutil.rmtree(self.temp_dir, ignore_errors=True)

    def _kill_leftovers(self) -> None:
        """Processes of this cluster only: each names its temp dir on its command line."""
        mark = str(self.temp_dir)
        leftovers = []
        for process in psutil.process_iter(["cmdline"]):
            if any(mark in part for part in process.info["cmdline"] or []):
                leftovers.append(process)
        for process in leftovers:
            process.kill()
        psutil.wait_procs(leftovers, timeout=10)
