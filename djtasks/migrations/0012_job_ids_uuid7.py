# New job ids are UUIDv7 (djtasks.ids): the default is Python's only, so
# the database is not touched. As a plain AlterField of the primary key,
# SQLite would have copied the whole table into a new one to change nothing.

from django.db import migrations, models

import djtasks.ids


class Migration(migrations.Migration):
    dependencies = [
        ("djtasks", "0011_status_index_without_running_and_successful"),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.AlterField(
                    model_name="job",
                    name="id",
                    field=models.UUIDField(
                        default=djtasks.ids.new_job_id,
                        editable=False,
                        primary_key=True,
                        serialize=False,
                    ),
                ),
            ],
        ),
    ]
