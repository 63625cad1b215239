"""The benchmark's tasks: a no-op, and a probe that notes when it started."""

import time

from common import record_start

from djtasks import task


@task
def noop():
    pass


@task
def probe(path, index):
    started = time.time()
    record_start(path, index, started)
