"""The benchmark's Celery app: Redis broker, results off, as commonly deployed."""

import os
import time

from celery import Celery
from common import record_start

app = Celery("bench_celery", broker=os.environ["REDIS_URL"])
app.conf.update(
    # No result backend: the no-op returns nothing anyone reads.
    task_ignore_result=True,
    broker_connection_retry_on_startup=True,
)


@app.task
def noop():
    pass


@app.task
def probe(path, index):
    started = time.time()
    record_start(path, index, started)


@app.task
def sleep(millis):
    time.sleep(millis / 1000)
