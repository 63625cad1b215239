"""The benchmark's procrastinate app: a no-op, and a probe that notes when it started."""

import os
import time

from common import record_start
from procrastinate import App, PsycopgConnector

app = App(connector=PsycopgConnector(conninfo=os.environ["DATABASE_URL"]))


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
