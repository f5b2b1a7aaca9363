"""The servers bench/vs_litellm.py and bench/ab_openai.py put in front of the
fake OpenAI-compatible upstream: the upstream itself, the bare relay, LiteLLM's
proxy (from its own venv, bench/.venv-litellm, made on first use) and ours."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from bench.common import REPO, start

LITELLM_VENV = REPO / "bench" / ".venv-litellm"
LITELLM_SPEC = "litellm[proxy]"
LITELLM_KEY = "sk-bench-master-key"  # the proxy's master key: checked in memory, no database
MODEL = "openai/whisper-1"  # our naming (provider/vendor-model), and LiteLLM's model_name

LITELLM_CONFIG = """\
model_list:
  - model_name: {model}
    litellm_params:
      model: openai/whisper-1
      api_base: {api_base}
      api_key: dummy
    model_info:
      mode: audio_transcription
general_settings:
  master_key: {master_key}
"""


# --- LiteLLM's venv ---


def litellm_venv() -> Path:
    """bench/.venv-litellm with ``litellm[proxy]`` (made once); its ``litellm`` command."""
    command = LITELLM_VENV / "bin" / "litellm"
    if command.exists():
        return command
    python = LITELLM_VENV / "bin" / "python"
    if not python.exists():
        subprocess.run([sys.executable, "-m", "venv", str(LITELLM_VENV)], check=True)
    print(f"installing {LITELLM_SPEC} into {LITELLM_VENV} (once)...", flush=True)
    pip = subprocess.run(
        [str(python), "-m", "pip", "install", "--quiet", LITELLM_SPEC],
        capture_output=True,
        text=True,
    )
    if pip.returncode != 0 or not command.exists():
        sys.exit(f"pip install {LITELLM_SPEC!r} failed:\n{pip.stdout[-3000:]}{pip.stderr[-3000:]}")
    return command


def litellm_version() -> str:
    python = LITELLM_VENV / "bin" / "python"
    code = "import importlib.metadata as m; print(m.version('litellm'))"
    return subprocess.run([str(python), "-c", code], capture_output=True, text=True).stdout.strip()


# --- the servers ---


def base_env() -> dict[str, str]:
    """The little each server needs from ours: nothing that could point it elsewhere
    (a DATABASE_URL or vendor key in the caller's shell, say)."""
    keep = ("PATH", "HOME", "LANG", "LC_ALL", "TMPDIR")
    return {k: os.environ[k] for k in keep if k in os.environ}


def serve_upstream(port: int, work: Path) -> subprocess.Popen[bytes]:
    cmd = [sys.executable, "-m", "uvicorn", "bench.fake_openai_upstream:app",
           "--port", str(port), "--log-level", "warning"]  # fmt: skip
    return start(cmd, base_env(), port, work / "upstream.log")


def serve_relay(port: int, upstream: str, work: Path) -> subprocess.Popen[bytes]:
    """bench/null_relay.py on uvicorn with our server's stack (uvloop, httptools)."""
    cmd = [sys.executable, "-m", "uvicorn", "bench.null_relay:app", "--port", str(port),
           "--log-level", "warning", "--no-access-log"]  # fmt: skip
    return start(cmd, {**base_env(), "UPSTREAM": upstream}, port, work / "relay.log")


def serve_litellm(litellm: Path, port: int, upstream: str, work: Path) -> subprocess.Popen[bytes]:
    """LiteLLM's proxy as its docs run it: a config file, one worker, no database,
    warnings only (LITELLM_LOG=WARNING also turns uvicorn's access log off)."""
    config = work / "litellm.yaml"
    config.write_text(LITELLM_CONFIG.format(model=MODEL, api_base=upstream, master_key=LITELLM_KEY))
    env = {
        **base_env(),
        "LITELLM_LOG": "WARNING",
        # Its price list comes with it; no fetch from GitHub at start.
        "LITELLM_LOCAL_MODEL_COST_MAP": "True",
    }
    cmd = [str(litellm), "--config", str(config), "--host", "127.0.0.1",
           "--port", str(port), "--num_workers", "1"]  # fmt: skip
    return start(cmd, env, port, work / "litellm.log", cwd=work)


def serve_ours(
    database_url: str,
    port: int,
    upstream: str,
    work: Path,
    extra: dict[str, str],
    checkout: Path = REPO,
) -> subprocess.Popen[bytes]:
    """``stt-gateway serve`` with its worker in the same process, production settings
    but for the log level (WARNING, as LiteLLM's) and the one provider it needs.
    ``checkout``: the source tree to run (``-m app.cli`` from there takes its app/)."""
    env = {
        **base_env(),
        "DATABASE_URL": database_url,
        "STORAGE_DIR": str(work / "storage"),
        "LOG_LEVEL": "WARNING",
        "LOCAL_PROVIDER": "false",
        "OPENAI_API_KEY": "dummy",
        "OPENAI_BASE_URL": upstream,
        **extra,
    }
    cmd = [sys.executable, "-m", "app.cli", "serve", "--port", str(port)]
    return start(cmd, env, port, work / "ours.log", cwd=checkout)
