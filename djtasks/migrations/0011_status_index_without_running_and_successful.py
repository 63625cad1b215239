# djtasks_job_status leaves RUNNING and SUCCESSFUL rows out (see the model):
# neither the claim nor the completion of a job that succeeds adds an entry
# to it any more. On databases without partial indexes (MariaDB, MySQL) the
# index is the full (status, enqueued_at) index it was, so it is not rebuilt
# there: only the migration state changes.

from django.db import migrations, models
from django.db.models import Q

from djtasks.schema import PartialIndex, has_partial_indexes

FULL = models.Index(fields=["status", "-enqueued_at"], name="djtasks_job_status")
PARTIAL = PartialIndex(
    fields=["status", "-enqueued_at"],
    where=~Q(status__in=["RUNNING", "SUCCESSFUL"]),
    name="djtasks_job_status",
    leading=[],
)


def _swap(apps, schema_editor, old, new):
    if not has_partial_indexes(schema_editor.connection):
        return
    job = apps.get_model("djtasks", "Job")
    # One transaction on PostgreSQL: writes to the job table wait while the
    # new index is built (one read of the table; it holds the rows that are
    # neither running nor successful), readers do not.
    schema_editor.remove_index(job, old)
    schema_editor.add_index(job, new)


def to_partial(apps, schema_editor):
    _swap(apps, schema_editor, FULL, PARTIAL)


def to_full(apps, schema_editor):
    _swap(apps, schema_editor, PARTIAL, FULL)


class Migration(migrations.Migration):
    dependencies = [
        ("contenttypes", "0002_remove_content_type_name"),
        ("djtasks", "0010_partial_schema_everywhere"),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.RemoveIndex(model_name="job", name="djtasks_job_status"),
                migrations.AddIndex(model_name="job", index=PARTIAL),
            ],
            database_operations=[migrations.RunPython(to_partial, to_full)],
        ),
    ]
