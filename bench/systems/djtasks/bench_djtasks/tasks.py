"""The benchmark's tasks: a no-op, a probe that notes when it started, a sleep."""

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


@task
def sleep(millis):
    time.sleep(millis / 1000)
