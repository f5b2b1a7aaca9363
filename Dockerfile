# stt-gateway image: `docker build -t stt-gateway .`
#
# The entrypoint is the `stt-gateway` console script, so the container's command
# is a subcommand: `serve` (the default), `serve --no-worker`, `worker`, `migrate`,
# `keys create --name NAME`, ...

# ---------------------------------------------------------------------------
# builder: a virtualenv holding the dependencies and the app installed as a wheel
# ---------------------------------------------------------------------------
FROM python:3.11-slim AS builder

ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONDONTWRITEBYTECODE=1

WORKDIR /src
RUN python -m venv /opt/venv

# Dependencies first, from pyproject.toml alone, so that this (slow) layer is
# rebuilt only when the dependency list changes, not on every source edit.
# pocketsphinx and numpy ship manylinux wheels: no compiler needed.
COPY pyproject.toml ./
RUN python -c "import tomllib; print('\n'.join(tomllib.load(open('pyproject.toml', 'rb'))['project']['dependencies']))" \
        > requirements.txt \
 && /opt/venv/bin/pip install --no-cache-dir -r requirements.txt

# Then the app itself, as a regular (non-editable) wheel install: the wheel
# force-includes migrations/ as app/_migrations (see pyproject.toml), so the
# installed package carries its migrations and the runtime needs no source tree.
# README.md is the package's `readme`; hatchling refuses to build without it.
COPY README.md ./
COPY app/ app/
COPY migrations/ migrations/
RUN /opt/venv/bin/pip install --no-cache-dir --no-deps . \
 && /opt/venv/bin/pip check

# ---------------------------------------------------------------------------
# runtime: the venv, ffmpeg, and an unprivileged user
# ---------------------------------------------------------------------------
FROM python:3.11-slim AS runtime

# ffmpeg lets the offline `local` engine decode mp3, ogg, m4a, webm ... (it
# reads plain WAV without it).
RUN apt-get update \
 && apt-get install -y --no-install-recommends ffmpeg \
 && rm -rf /var/lib/apt/lists/*

# A fixed uid/gid, so that bind-mounted /data directories can be chown'ed to it.
# /data is created and chown'ed before the VOLUME line: a new named volume is
# initialised from the image, ownership included, so the user can write to it.
RUN groupadd --system --gid 10001 stt \
 && useradd --system --uid 10001 --gid stt --create-home --home-dir /home/stt \
        --shell /usr/sbin/nologin stt \
 && mkdir -p /data/blobs \
 && chown -R stt:stt /data

# The venv is self-contained; its python links to /usr/local/bin/python3.11,
# which the same base image provides here.
COPY --from=builder /opt/venv /opt/venv

# DATABASE_URL: the embedded SQLite default would land under ./var/ of the
# working directory; keep it in the volume too. docker-compose (and any real
# deployment) sets a postgresql+asyncpg:// URL instead.
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    STORAGE_DIR=/data/blobs \
    DATABASE_URL=sqlite+aiosqlite:////data/stt-gateway.db

# A writable working directory inside the volume, so nothing the app writes
# relative to its cwd ends up in the container's throwaway layer.
WORKDIR /data
VOLUME ["/data"]

# Numeric, so that runtimes enforcing runAsNonRoot can verify it without /etc/passwd.
USER 10001:10001
EXPOSE 8000

# The slim image has no curl; python's urllib raises (exit 1) on a refused
# connection, a timeout or a non-2xx answer. It probes port 8000, the port of
# the default CMD: containers running `worker` or `migrate`, or serving on
# another port, should disable or override it (docker-compose.yml does).
HEALTHCHECK --interval=30s --timeout=5s --start-period=30s --retries=3 \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000/healthz', timeout=4)"]

ENTRYPOINT ["stt-gateway"]
CMD ["serve", "--host", "0.0.0.0", "--port", "8000"]
