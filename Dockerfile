# syntax=docker/dockerfile:1
#
# One image for every hubbub process: the gateways (`hubbub serve`), the
# one-shot migration (`hubbub migrate`) and the Ray head and worker nodes
# (`ray start ...`). Ray requires every node of a cluster to run the same
# Python minor version and the same Ray version, and shard actors run hubbub
# code, so the Ray nodes must be able to import `hubbub` too: building them
# all from this file guarantees both. See docs/deployment.md.
#
#   docker build -t hubbub .
#   docker run --rm -p 8000:8000 --shm-size=1g hubbub   # zero-setup: embedded Postgres/Redis, local Ray

ARG PYTHON_VERSION=3.11
FROM python:${PYTHON_VERSION}-slim

# tini is PID 1: it forwards SIGTERM to the real command and reaps the many
# child processes Ray starts (raylet, workers, agents).
RUN apt-get update \
    && apt-get install -y --no-install-recommends tini \
    && rm -rf /var/lib/apt/lists/*

ENV PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    RAY_USAGE_STATS_ENABLED=0

# --- dependencies: one cached layer, rebuilt only when pyproject.toml changes.
# The dependency list is read from pyproject.toml itself, so it cannot drift.
# Ray is installed with its "default" extra (same pinned version) because the
# head node serves the Ray dashboard; plain `ray` runs it in a reduced mode.
WORKDIR /build
COPY pyproject.toml ./
RUN python -c "import tomllib; deps = tomllib.load(open('pyproject.toml', 'rb'))['project']['dependencies']; print('\n'.join(d.replace('ray==', 'ray[default]==', 1) if d.startswith('ray==') else d for d in deps))" > requirements.txt \
    && pip install -r requirements.txt

# --- hubbub itself: small, rebuilt on every source change.
# pyproject.toml is listed again so that the README.md* wildcard never has
# nothing to copy (the project's readme may be absent).
COPY pyproject.toml README.md* ./
COPY hubbub ./hubbub
# pip check fails the build if anything installed, Ray's pinned version
# included, does not match what pyproject.toml requires.
RUN pip install --no-deps . \
    && pip check \
    && python -c "import hubbub, ray; print('hubbub on ray', ray.__version__)" \
    && cd / && rm -rf /build

# --- an unprivileged user; its home holds Ray's per-user files (~/.ray) and
# /app the embedded data directory of the zero-setup mode (.hubbub);
# /var/lib/hubbub/exports the mount point of the shared export volume.
RUN groupadd --system --gid 10001 hubbub \
    && useradd --system --uid 10001 --gid hubbub --create-home --home-dir /home/hubbub hubbub \
    && install -d -o hubbub -g hubbub /app /var/lib/hubbub/exports
USER hubbub
WORKDIR /app

# The image default listens on every interface: 127.0.0.1 (the library
# default) would be unreachable from outside the container.
ENV HUBBUB_HOST=0.0.0.0 \
    HUBBUB_PORT=8000 \
    HUBBUB_LOG_FORMAT=json

# 8000 gateway HTTP / Socket.IO / SSE; 6379 Ray GCS; 8265 Ray dashboard;
# 10001 Ray client server (head only).
EXPOSE 8000 6379 8265 10001

ENTRYPOINT ["tini", "--"]
CMD ["hubbub", "serve"]
