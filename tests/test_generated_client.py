"""A client generated from the committed openapi.json runs a whole job on a real gateway."""

from __future__ import annotations

import importlib
import os
import shutil
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from tests.conftest import SPEECH_WAV
from tests.support.gateway import REPO, create_key

PACKAGE = "stt_gateway_client"
VENV_BIN = Path(sys.executable).parent  # the generator and the ruff it runs live here


def _generate(out: Path) -> None:
    path = os.pathsep.join([str(VENV_BIN), os.environ.get("PATH", "")])
    generator = shutil.which("openapi-python-client", path=path)
    if generator is None:
        pytest.skip("openapi-python-client is not installed (pip install -e '.[test]')")
    spec = str(REPO / "openapi.json")
    done = subprocess.run(
        [generator, "generate", "--path", spec, "--meta", "none", "--output-path", str(out)],
        env={**os.environ, "PATH": path},
        capture_output=True,
        text=True,
        timeout=300,
    )
    output = done.stdout + done.stderr
    assert done.returncode == 0, output
    assert "Warning" not in output, f"the generator left parts out:\n{output}"
    # It runs ruff --fix but does not fail on what is left (e.g. an undefined name).
    lint = subprocess.run(
        [str(VENV_BIN / "ruff"), "check", "--isolated", "--no-cache", "--select", "F", str(out)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert lint.returncode == 0, lint.stdout + lint.stderr


@pytest.fixture
def generated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):  # type: ignore[no-untyped-def]
    _generate(tmp_path / PACKAGE)
    monkeypatch.syspath_prepend(str(tmp_path))
    yield importlib.import_module(PACKAGE)
    for name in [m for m in sys.modules if m == PACKAGE or m.startswith(PACKAGE + ".")]:
        del sys.modules[name]


def test_generated_client_runs_a_job(generated, postgres_url, make_settings, start_gateway):
    api = importlib.import_module(f"{PACKAGE}.api.jobs")
    create_job = importlib.import_module(f"{api.__name__}.create_job")
    get_job = importlib.import_module(f"{api.__name__}.get_job")
    get_transcript = importlib.import_module(f"{api.__name__}.get_transcript")
    list_providers = importlib.import_module(f"{PACKAGE}.api.providers.list_providers")
    models = importlib.import_module(f"{PACKAGE}.models")
    types = importlib.import_module(f"{PACKAGE}.types")

    gateway = start_gateway(make_settings(postgres_url))
    key = create_key(postgres_url, "acme")
    client = generated.AuthenticatedClient(
        base_url=gateway.base_url,
        token=key,
        raise_on_unexpected_status=True,
        timeout=httpx.Timeout(90.0),
    )
    with client:
        providers = list_providers.sync(client=client)
        assert isinstance(providers, models.ProviderList)
        local = next(p for p in providers.data if p.name == "local")
        assert models.CapabilitiesFormatsItem.WAV in local.capabilities.formats

        with SPEECH_WAV.open("rb") as audio:
            form = models.CreateJobForm(
                file=types.File(payload=audio, file_name=SPEECH_WAV.name, mime_type="audio/wav"),
                provider="local",
                language="en",
                metadata='{"order": 7}',
            )
            created = create_job.sync_detailed(client=client, body=form)
        assert created.status_code == 202, created.content
        job = created.parsed
        assert isinstance(job, models.JobOut), created.content
        assert created.headers["location"] == f"/jobs/{job.id}"
        assert job.status in (models.JobStatus.QUEUED, models.JobStatus.PROCESSING)
        assert isinstance(job.source, models.UploadSource)
        assert job.source.size == SPEECH_WAV.stat().st_size
        assert job.metadata.to_dict() == {"order": 7}

        done = get_job.sync(job.id, client=client, wait=60)
        assert isinstance(done, models.JobOut)
        assert done.status == models.JobStatus.COMPLETED, done.to_dict()

        transcript = get_transcript.sync(
            job.id, client=client, format_=models.TranscriptFormat.JSON
        )
        assert isinstance(transcript, models.Transcript)
        assert "hello" in transcript.text
        assert transcript.provider == "local"
        assert any(w.text == "hello" for s in transcript.segments for w in s.words)

        # Errors come back as the Problem model.
        missing = get_job.sync_detailed("job_00000000000000000000000000", client=client)
        assert missing.status_code == 404
        assert isinstance(missing.parsed, models.Problem)
        assert missing.parsed.status == 404

    unauthenticated = generated.AuthenticatedClient(base_url=gateway.base_url, token="sk_wrong")
    with unauthenticated:
        refused = get_job.sync_detailed(job.id, client=unauthenticated)
    assert refused.status_code == 401
    assert isinstance(refused.parsed, models.Problem)
