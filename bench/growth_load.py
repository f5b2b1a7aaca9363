"""Bulk-loading the jobs table for bench/growth.py: batches of generated jobs.

One INSERT … SELECT FROM generate_series per batch, then VACUUM (ANALYZE); and
the look-ups the benchmark needs of the loaded data (client ids, sample job ids).
"""

from __future__ import annotations

import sys
from datetime import datetime, timedelta

import asyncpg

SPAN = timedelta(days=180)
BIG_CLIENT_SHARE = 0.9

# One batch of jobs n = $1 … $2: $3 the client ids (the big one first), $4 the
# span in seconds, $5 the newest created_at, $6 the big client's share. The
# inner SELECT draws the random numbers once per row (a subquery with volatile
# columns is not flattened), the outer ones derive the columns from them, and
# rows go in in created_at order, as a live table's do. Ids have the shape of
# app/ids.py's: time-ordered, 26 characters of [0-9a-z].
LOAD_BATCH = """
INSERT INTO jobs (id, client_id, provider, fallback_providers, provider_attempts, deadline_at,
    status, provider_job_id, provider_status, language, options, metadata, callback_url,
    source, audio_key, audio_format, error, artifacts, created_at, updated_at, completed_at)
SELECT id, client_id, provider, '[]', '[]', NULL,
    status,
    CASE WHEN status <> 'queued' THEN md5(id) END,
    CASE status WHEN 'completed' THEN 'done' WHEN 'failed' THEN 'error'
        WHEN 'processing' THEN 'running' END,
    CASE WHEN r_misc < 0.6 THEN 'en' WHEN r_misc < 0.85 THEN 'ko' END,
    CASE WHEN r_misc < 0.3 THEN '{"diarize": true}' ELSE '{}' END::json,
    json_build_object('order', n::text, 'customer', 'customer-' || n % 997),
    CASE WHEN r_misc > 0.7 THEN 'https://hooks.example.com/stt/' || n END,
    json_build_object('type', 'upload', 'filename', 'call-' || n || '.wav',
        'content_type', 'audio/wav', 'size', 200000 + n * 7919 % 50000000,
        'sha256', md5(n::text) || md5(id)),
    'jobs/' || id || '/audio',
    CASE WHEN r_misc < 0.8 THEN 'wav' ELSE 'mp3' END,
    CASE WHEN status = 'failed' THEN json_build_object('code', 'provider_error',
        'message', 'the provider could not transcribe the audio', 'retryable', false,
        'provider_detail', json_build_object('status', 422)) END,
    CASE WHEN status = 'completed'
        THEN '[{"name": "words.json", "content_type": "application/json", "size": 18234}]'
        ELSE '[]' END::json,
    created_at,
    coalesce(completed_at, created_at),
    completed_at
FROM (
    SELECT *,
        CASE WHEN status IN ('completed', 'failed', 'canceled')
            THEN created_at + make_interval(secs => 5 + r_misc * 300) END AS completed_at
    FROM (
        SELECT n, r_misc, created_at,
            'job_' || lpad(to_hex((extract(epoch FROM created_at) * 1000)::bigint), 12, '0')
                || substr(md5(n::text), 1, 14) AS id,
            CASE WHEN r_client < $6::float8 THEN ($3::text[])[1]
                ELSE ($3::text[])[2 + floor((r_client - $6) / (1 - $6)
                    * (cardinality($3::text[]) - 1))::int] END AS client_id,
            CASE WHEN r_provider < 0.35 THEN 'openai' WHEN r_provider < 0.60 THEN 'daglo'
                WHEN r_provider < 0.75 THEN 'aimlapi' WHEN r_provider < 0.85 THEN 'klangio'
                WHEN r_provider < 0.93 THEN 'phonexia' ELSE 'infomaniak' END AS provider,
            CASE WHEN created_at > $5::timestamptz - interval '6 hours'
                    THEN CASE WHEN r_status < 0.5 THEN 'queued' ELSE 'processing' END
                WHEN r_status < 0.90 THEN 'completed' WHEN r_status < 0.97 THEN 'failed'
                ELSE 'canceled' END AS status
        FROM (
            SELECT n, random() AS r_client, random() AS r_provider, random() AS r_status,
                random() AS r_misc,
                $5::timestamptz - make_interval(secs => random() * $4::float8) AS created_at
            FROM generate_series($1::bigint, $2::bigint) AS n
        ) AS draws
    ) AS rows
) AS jobs
ORDER BY created_at
"""

BATCH_ROWS = 200_000


async def bulk_load(dsn: str, clients: list[str], first: int, last: int, newest: datetime) -> None:
    """Jobs ``first`` … ``last`` (1-based), in batches, then VACUUM (ANALYZE).

    VACUUM as well as ANALYZE: after a million inserts autovacuum would do it on
    its own (PostgreSQL 13+ vacuums on inserts), and a benchmark that ran before
    it did would measure an unrealistic table.
    """
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute(f"SELECT setseed({first / (last + 1):.6f})")
        for start in range(first, last + 1, BATCH_ROWS):
            end = min(last, start + BATCH_ROWS - 1)
            await conn.execute(
                LOAD_BATCH, start, end, clients, SPAN.total_seconds(), newest, BIG_CLIENT_SHARE
            )
            print(f"  loaded jobs {start:,} … {end:,}", file=sys.stderr)
        await conn.execute("VACUUM (ANALYZE) jobs")
    finally:
        await conn.close()


async def client_ids(dsn: str, names: list[str]) -> list[str]:
    conn = await asyncpg.connect(dsn)
    try:
        rows = await conn.fetch("SELECT id, name FROM clients WHERE name = any($1)", names)
    finally:
        await conn.close()
    by_name = {row["name"]: row["id"] for row in rows}
    return [by_name[name] for name in names]


async def sample_ids(dsn: str, client_id: str, count: int) -> list[str]:
    conn = await asyncpg.connect(dsn)
    try:
        rows = await conn.fetch(
            "SELECT id FROM jobs WHERE client_id = $1 ORDER BY random() LIMIT $2", client_id, count
        )
    finally:
        await conn.close()
    return [row["id"] for row in rows]
