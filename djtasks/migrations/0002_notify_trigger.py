"""PostgreSQL only: NOTIFY idle workers when jobs become READY.

The triggers run inside the statement's transaction, so the NOTIFY is
delivered at commit, with no extra round trip for the enqueuer, and covers
bulk_create too. The payload is "<queue> <epoch>": the earliest
available_at of the announced jobs (see djtasks.notify.parse_payload).

* INSERT: one statement-level trigger per INSERT statement, reading the
  inserted rows from a transition table (one NOTIFY per queue).
* UPDATE to READY (a retry, a hand-back or a rescue): a row-level trigger
  whose WHEN clause is checked in C for every updated row, so the claim and
  the completion writes, which never set READY, pay almost nothing.

Identical payloads in one transaction are folded into one NOTIFY.
The channel is DJTASKS["NOTIFY_CHANNEL"] at migrate time.
"""

from django.db import migrations


def _channel():
    from djtasks.conf import settings

    return settings.NOTIFY_CHANNEL.replace("'", "''")


def _create_sql(channel):
    return f"""
CREATE OR REPLACE FUNCTION djtasks_notify_inserted() RETURNS trigger
LANGUAGE plpgsql AS $body$
BEGIN
    PERFORM pg_notify('{channel}', queue_name || ' ' || extract(epoch FROM due)::text)
    FROM (SELECT queue_name, min(available_at) AS due FROM inserted
          WHERE status = 'READY' GROUP BY queue_name) AS ready;
    RETURN NULL;
END
$body$;

CREATE OR REPLACE FUNCTION djtasks_notify_ready_again() RETURNS trigger
LANGUAGE plpgsql AS $body$
BEGIN
    PERFORM pg_notify('{channel}',
                      NEW.queue_name || ' ' || extract(epoch FROM NEW.available_at)::text);
    RETURN NULL;
END
$body$;

DROP TRIGGER IF EXISTS djtasks_job_inserted ON djtasks_job;
CREATE TRIGGER djtasks_job_inserted
    AFTER INSERT ON djtasks_job
    REFERENCING NEW TABLE AS inserted
    FOR EACH STATEMENT EXECUTE FUNCTION djtasks_notify_inserted();

DROP TRIGGER IF EXISTS djtasks_job_ready_again ON djtasks_job;
CREATE TRIGGER djtasks_job_ready_again
    AFTER UPDATE OF status ON djtasks_job
    FOR EACH ROW
    WHEN (NEW.status = 'READY' AND OLD.status <> 'READY')
    EXECUTE FUNCTION djtasks_notify_ready_again();
"""


DROP_SQL = """
DROP TRIGGER IF EXISTS djtasks_job_inserted ON djtasks_job;
DROP TRIGGER IF EXISTS djtasks_job_ready_again ON djtasks_job;
DROP FUNCTION IF EXISTS djtasks_notify_inserted();
DROP FUNCTION IF EXISTS djtasks_notify_ready_again();
"""


def create_triggers(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(_create_sql(_channel()))


def drop_triggers(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(DROP_SQL)


class Migration(migrations.Migration):
    dependencies = [("djtasks", "0001_initial")]

    operations = [migrations.RunPython(create_triggers, drop_triggers)]
