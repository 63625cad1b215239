# On PostgreSQL djtasks_job_status leaves RUNNING and SUCCESSFUL rows out
# (see the model): neither the claim nor the completion of a job that
# succeeds adds an entry to it any more. Elsewhere it stays the full
# (status, enqueued_at) index it was, so only the migration state changes.

from django.db import migrations, models
from django.db.models import Q

from djtasks.schema import PartialIndex

NAME = "djtasks_job_status"
# While the new index is built beside the old one.
BUILDING = "djtasks_job_status_new"
FIELDS = ["status", "-enqueued_at"]


def _full(name):
    return models.Index(fields=FIELDS, name=name)


def _partial(name):
    return PartialIndex(
        fields=FIELDS,
        where=~Q(status__in=["RUNNING", "SUCCESSFUL"]),
        name=name,
        leading=[],
        postgresql_only=True,
    )


def to_partial(apps, schema_editor):
    _replace(apps, schema_editor, _full(NAME), _partial(BUILDING), _partial(NAME))


def to_full(apps, schema_editor):
    _replace(apps, schema_editor, _partial(NAME), _full(BUILDING), _full(NAME))


def _replace(apps, schema_editor, old, building, new):
    """Build ``building`` beside ``old``, then drop ``old`` and rename it ``new``.

    One transaction. Building (CREATE INDEX) lets readers through while
    writes to the job table wait; DROP INDEX locks out readers too, so it
    comes after the build, and the lock lasts until the commit, a moment
    later.
    """
    if schema_editor.connection.vendor != "postgresql":
        return
    job = apps.get_model("djtasks", "Job")
    schema_editor.add_index(job, building)
    schema_editor.remove_index(job, old)
    schema_editor.rename_index(job, building, new)


class Migration(migrations.Migration):
    dependencies = [
        ("djtasks", "0010_partial_schema_everywhere"),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.RemoveIndex(model_name="job", name=NAME),
                migrations.AddIndex(model_name="job", index=_partial(NAME)),
            ],
            database_operations=[migrations.RunPython(to_partial, to_full)],
        ),
    ]
