"""The stt-gateway command, run as a user would."""

from __future__ import annotations

import json
import subprocess
import sys

from tests.conftest import SPEECH_WAV
from tests.support.gateway import REPO, GatewayProcess, gateway_env


def _cli(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "app.cli", *args],
        env=env,
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
    )


def _transcribe(
    env: dict[str, str], gateway_url: str, api_key: str, *options: str
) -> subprocess.CompletedProcess[str]:
    """``transcribe`` of the test speech by the gateway at ``gateway_url``."""
    return _cli(
        env, "transcribe", str(SPEECH_WAV), "--gateway", gateway_url, "--api-key", api_key, *options
    )


def test_keys_create_list_revoke_and_transcribe(tmp_path, make_settings):
    # The embedded default: an SQLite file that the first command creates and migrates.
    settings = make_settings(f"sqlite+aiosqlite:///{tmp_path}/var/gateway.db")
    env = gateway_env(settings)

    created = _cli(env, "keys", "create", "--name", "ops")
    assert created.returncode == 0, created.stderr
    key = json.loads(created.stdout)
    assert set(key) == {"name", "api_key", "webhook_secret"}
    assert key["api_key"].startswith("sk_") and key["webhook_secret"].startswith("whsec_")

    duplicate = _cli(env, "keys", "create", "--name", "ops")
    assert duplicate.returncode == 1 and "exists already" in duplicate.stderr
    for bad in ("", "   ", "x" * 201, "tab\there"):
        refused = _cli(env, "keys", "create", "--name", bad)
        assert refused.returncode == 2 and "1 to 200 printable" in refused.stderr, bad

    listed = json.loads(_cli(env, "keys", "list").stdout)
    assert [c["name"] for c in listed] == ["ops"]
    assert key["api_key"] not in json.dumps(listed)  # never shown again

    gateway = GatewayProcess(env, tmp_path / "serve.log").start()
    try:
        for fmt, expected in (("text", "hello world"), ("srt", "00:00:0"), ("json", '"words"')):
            transcribed = _transcribe(env, gateway.base_url, key["api_key"], "--format", fmt)
            assert transcribed.returncode == 0, transcribed.stderr
            assert expected in transcribed.stdout
            assert "job job_" in transcribed.stderr

        revoked = _cli(env, "keys", "revoke", "ops")
        assert revoked.returncode == 0
        refused = _transcribe(env, gateway.base_url, key["api_key"])
        assert refused.returncode == 1 and "401" in refused.stderr
    finally:
        gateway.terminate()

    assert _cli(env, "keys", "revoke", "nobody").returncode == 1


def test_transcribe_explains_a_missing_key_or_file(tmp_path):
    env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path)}
    missing_key = _cli(env, "transcribe", str(SPEECH_WAV))
    assert missing_key.returncode == 1 and "STT_API_KEY" in missing_key.stderr
    missing_file = _cli(env, "transcribe", "/nope.wav", "--api-key", "sk_x")
    assert missing_file.returncode == 1 and "no such file" in missing_file.stderr
