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
WITHOUT_RUNNING_AND_SUCCESSFUL = ~Q(status__in=["RUNNING", "SUCCESSFUL"])

FULL = models.Index(fields=FIELDS, name=NAME)
PARTIAL = PartialIndex(
    fields=FIELDS, where=WITHOUT_RUNNING_AND_SUCCESSFUL, name=NAME, leading=[], postgresql_only=True
)


def to_partial(apps, schema_editor):
    _replace(apps, schema_editor, FULL, PartialIndex, where=WITHOUT_RUNNING_AND_SUCCESSFUL)


def to_full(apps, schema_editor):
    _replace(apps, schema_editor, PARTIAL, models.Index)


def _replace(apps, schema_editor, old, index_class, **options):
    """Build the new index beside ``old``, then drop ``old`` and take its name.

    One transaction. Building (CREATE INDEX) lets readers through while
    writes to the job table wait; DROP INDEX locks out readers too, so it
    comes after the build, and the lock lasts until the commit, a moment
    later.
    """
    if schema_editor.connection.vendor != "postgresql":
        return
    job = apps.get_model("djtasks", "Job")
    if index_class is PartialIndex:
        options.update(leading=[], postgresql_only=True)
    building = index_class(fields=FIELDS, name=BUILDING, **options)
    schema_editor.add_index(job, building)
    schema_editor.remove_index(job, old)
    schema_editor.rename_index(job, building, index_class(fields=FIELDS, name=NAME, **options))


class Migration(migrations.Migration):
    dependencies = [
        ("djtasks", "0010_partial_schema_everywhere"),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.RemoveIndex(model_name="job", name=NAME),
                migrations.AddIndex(model_name="job", index=PARTIAL),
            ],
            database_operations=[migrations.RunPython(to_partial, to_full)],
        ),
    ]
