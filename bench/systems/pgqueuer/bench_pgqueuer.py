"""The benchmark's PgQueuer factory, started with ``pgq run bench_pgqueuer:main``.

asyncpg, one connection per process, as PgQueuer's quick start sets it up.
BENCH_THREADS caps how many sleeping jobs run at once (the mixed load), the
way ``--threads`` caps the thread-based workers; 0 (the default) is
PgQueuer's own default, no cap.
"""

import asyncio
import json
import os
import time
from contextlib import asynccontextmanager

import asyncpg
from common import record_start
from pgqueuer import PgQueuer


@asynccontextmanager
async def main():
    connection = await asyncpg.connect(os.environ["DATABASE_URL"])
    pgq = PgQueuer.from_asyncpg_connection(connection)
    limit = int(os.environ.get("BENCH_THREADS") or 0)

    @pgq.entrypoint("noop")
    async def noop(job):
        pass

    @pgq.entrypoint("probe")
    async def probe(job):
        started = time.time()
        path, index = json.loads(job.payload)
        record_start(path, index, started)

    @pgq.entrypoint("sleep", concurrency_limit=limit)
    async def sleep(job):
        await asyncio.sleep(int(job.payload) / 1000)

    try:
        yield pgq
    finally:
        await connection.close()
