# The partial indexes and constraints become djtasks.schema's classes, which
# build the same objects on PostgreSQL and SQLite (nothing changes there) and
# a construction that holds on MariaDB and MySQL, which have no partial
# indexes: there Django had built each conditional index over every row and
# left both conditional unique constraints out.

from django.db import migrations, models
from django.db.models import Q

from djtasks.schema import PartialIndex, PartialUniqueConstraint

JOB_INDEXES = [
    PartialIndex(
        fields=["backend", "queue_name", "-priority", "available_at"],
        where=Q(status="READY", limited=False, paused=False),
        name="djtasks_job_ready",
        leading=["status", "limited", "paused"],
    ),
    PartialIndex(
        fields=["backend", "queue_name", "-priority", "available_at"],
        where=Q(status="READY", limited=True, paused=False),
        name="djtasks_job_ready_limited",
        leading=["limited", "status", "paused"],
    ),
    PartialIndex(
        fields=["task_path"],
        where=Q(status="READY", paused=True),
        name="djtasks_job_paused",
        leading=["status", "paused"],
    ),
    PartialIndex(
        fields=["concurrency_key"],
        where=Q(status="RUNNING", concurrency_key__isnull=False),
        name="djtasks_job_running_key",
        leading=["status"],
    ),
    PartialIndex(
        fields=["worker"],
        where=Q(status="RUNNING"),
        name="djtasks_job_running",
        leading=["status"],
    ),
    PartialIndex(
        fields=["finished_at"],
        where=Q(finished_at__isnull=False),
        name="djtasks_job_finished",
        leading=[],
    ),
    PartialIndex(
        fields=["content_type", "object_id"],
        where=Q(object_id__isnull=False),
        name="djtasks_job_about",
        leading=[],
    ),
    PartialIndex(
        fields=["workflow_id", "status"],
        where=Q(workflow_id__isnull=False),
        name="djtasks_job_workflow",
        leading=[],
    ),
]

SCHEDULE_INDEXES = [
    PartialIndex(
        fields=["next_run_at"],
        where=Q(enabled=True),
        name="djtasks_schedule_due",
        leading=["enabled"],
    ),
]

JOB_CONSTRAINTS = [
    PartialUniqueConstraint(
        fields=["schedule", "scheduled_at"],
        condition=Q(schedule__isnull=False),
        name="djtasks_job_one_per_schedule_run",
    ),
    PartialUniqueConstraint(
        fields=["unique_key"],
        condition=Q(status__in=["READY", "RUNNING"]) & Q(unique_key__isnull=False),
        name="djtasks_job_unique_live_key",
    ),
]


def _state_operations():
    operations = []
    for model_name, indexes in (("job", JOB_INDEXES), ("schedule", SCHEDULE_INDEXES)):
        for index in indexes:
            operations.append(migrations.RemoveIndex(model_name=model_name, name=index.name))
            operations.append(migrations.AddIndex(model_name=model_name, index=index))
    for constraint in JOB_CONSTRAINTS:
        operations.append(migrations.RemoveConstraint(model_name="job", name=constraint.name))
        operations.append(migrations.AddConstraint(model_name="job", constraint=constraint))
    return operations


def build_without_partial_indexes(apps, schema_editor):
    if schema_editor.connection.features.supports_partial_indexes:
        return  # PostgreSQL, SQLite: the objects are already what the classes build.
    for model_name, indexes in (("Job", JOB_INDEXES), ("Schedule", SCHEDULE_INDEXES)):
        model = apps.get_model("djtasks", model_name)
        for index in indexes:
            if not index.leading:
                continue  # Django built the same full index.
            # Django built it over every row, in the partial index's order.
            schema_editor.execute(
                f"DROP INDEX {schema_editor.quote_name(index.name)} "
                f"ON {schema_editor.quote_name(model._meta.db_table)}"
            )
            schema_editor.add_index(model, index)
    job = apps.get_model("djtasks", "Job")
    # Django left these out (W036); nothing to drop.
    for constraint in JOB_CONSTRAINTS:
        schema_editor.add_constraint(job, constraint)


def unbuild_without_partial_indexes(apps, schema_editor):
    if schema_editor.connection.features.supports_partial_indexes:
        return
    job = apps.get_model("djtasks", "Job")
    for constraint in JOB_CONSTRAINTS:
        schema_editor.remove_constraint(job, constraint)
    for model_name, indexes in (("Job", JOB_INDEXES), ("Schedule", SCHEDULE_INDEXES)):
        model = apps.get_model("djtasks", model_name)
        for index in indexes:
            if not index.leading:
                continue
            schema_editor.remove_index(model, index)
            plain = models.Index(fields=index.fields, name=index.name)
            schema_editor.add_index(model, plain)


class Migration(migrations.Migration):

    dependencies = [
        ("djtasks", "0009_queue_controls"),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=_state_operations(),
            database_operations=[
                migrations.RunPython(
                    build_without_partial_indexes, unbuild_without_partial_indexes
                ),
            ],
        ),
    ]
