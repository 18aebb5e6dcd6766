"""A job kind that says where it ran, for tests on a multi-node Ray cluster.

``test.where`` holds a slot of the custom resource ``hubbub-test-slot`` (one
per worker node of the test's cluster) until a release file exists, then
returns the id of the Ray node it ran on: jobs held at once must each have
a node of their own. A gateway started by a test registers the kind with
``HUBBUB_PLUGINS=tests.support.cluster_jobs``; the cluster's Ray workers
import this module by name (their working directory is the repository).
"""

from __future__ import annotations

import time
from pathlib import Path

import ray
from pydantic import BaseModel, ConfigDict

from hubbub.jobs.context import JobContext
from hubbub.jobs.registry import job_kind
from hubbub.plugin import Plugin

__all__ = ["SLOT", "WhereInput", "plugin", "where"]

#: The custom resource each worker node of a test cluster has one of.
SLOT = "hubbub-test-slot"


class WhereInput(BaseModel):
    model_config = ConfigDict(extra="forbid")

    #: The job holds its slot until this file exists (every node is on this machine).
    release: str


@job_kind("test.where", WhereInput, resources={"num_cpus": 0.1, SLOT: 1})
def where(context: JobContext, input: WhereInput) -> dict[str, str]:
    """Hold a slot until released; the id of the node it ran on. (A plain
    function: it runs in a thread beside the reporter.)"""
    node_id = ray.get_runtime_context().get_node_id()
    context.step("holding")
    context.log(f"on node {node_id}")
    release = Path(input.release)
    while not release.exists():  # a short sleep, then a look at the flag and the file
        context.raise_if_cancelled()
        time.sleep(0.05)
    context.progress(100)
    return {"node_id": node_id}


#: Nothing but the import of this module, which declares the kind.
plugin = Plugin("cluster_jobs")
