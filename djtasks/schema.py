"""Partial indexes and constraints that hold on MariaDB and MySQL too.

PostgreSQL and SQLite index only the rows a condition admits; MariaDB and
MySQL have no partial indexes. Django then builds a conditional Index over
every row, in the same column order, and leaves a conditional
UniqueConstraint out altogether (with warnings W036 and W037). For djtasks
both are wrong: the claim's index would lead with the backend and read past
the whole history of a queue, and "at most one live job per unique key"
would not be enforced at all.

The two classes here say what to build where partial indexes are missing:

- PartialIndex: a full index whose leading columns are the condition's
  equality columns (``leading``), so the rows the condition admits are one
  contiguous range of the index, in the order of the partial index; a query
  that repeats the condition reads that range only, however many other rows
  the table holds.
- PartialUniqueConstraint: one virtual generated column per field, equal to
  the field while the condition holds and NULL otherwise, and a unique index
  on those columns. A unique index admits any number of rows with a NULL in
  it, so rows outside the condition never conflict, and the database itself
  decides each insert and status change, as a partial unique index would.

On databases with partial indexes both build exactly what the plain Django
classes build.
"""

from django.db import models
from django.db.models.sql import Query


def _without(errors, check_id) -> list:
    return [error for error in errors if error.id != check_id]


class LongUniqueCharField(models.CharField):
    """A unique CharField that may be longer than 255 characters.

    Django warns (mysql.W003) that MySQL may refuse a unique index on it:
    servers before MySQL 5.7 and MariaDB 10.2 capped an index key at 767
    bytes. The ones Django still supports (MariaDB 10.5+, MySQL 8.0+) store
    InnoDB rows as DYNAMIC, whose keys may take 3072 bytes: 768 characters
    of utf8mb4. Stored and migrated as a plain CharField.
    """

    def _check_backend_specific_checks(self, databases=None, **kwargs):
        errors = super()._check_backend_specific_checks(databases=databases, **kwargs)
        return _without(errors, "mysql.W003")

    def deconstruct(self):
        name, _path, args, kwargs = super().deconstruct()
        return name, "django.db.models.CharField", args, kwargs


def has_partial_indexes(connection) -> bool:
    return connection.features.supports_partial_indexes


class PartialIndex(models.Index):
    """An Index on rows matching ``where``; see the module docstring.

    The condition is held as ``where``, not Django's ``condition``, so that
    Django's check does not warn that it is ignored: it is not.
    ``postgresql_only``: partial on PostgreSQL only, for a condition that
    queries imply without repeating it (``status = 'FAILED'`` implies
    ``status NOT IN ('RUNNING', 'SUCCESSFUL')``): PostgreSQL proves that,
    SQLite uses a partial index only for a query that repeats its condition.
    """

    def __init__(self, *, fields, name, where, leading, postgresql_only=False):
        super().__init__(fields=fields, name=name)
        self.where = where
        self.leading = tuple(leading)
        self.postgresql_only = postgresql_only

    def is_partial_on(self, connection) -> bool:
        if self.postgresql_only:
            return connection.vendor == "postgresql"
        return has_partial_indexes(connection)

    def create_sql(self, model, schema_editor, using="", **kwargs):
        if self.is_partial_on(schema_editor.connection):
            index = models.Index(fields=self.fields, name=self.name, condition=self.where)
        else:
            index = models.Index(fields=[*self.leading, *self.fields], name=self.name)
        return index.create_sql(model, schema_editor, using=using, **kwargs)

    def deconstruct(self):
        path, args, kwargs = super().deconstruct()
        kwargs.update(where=self.where, leading=list(self.leading))
        if self.postgresql_only:
            kwargs["postgresql_only"] = True
        return "djtasks.schema.PartialIndex", args, kwargs


class PartialUniqueConstraint(models.UniqueConstraint):
    """A UniqueConstraint on rows matching ``condition``; see the module docstring."""

    # Django warns (W036) that the constraint would not be created: on
    # databases without partial indexes this class builds its own. The
    # constraint's checks are check() from Django 6.0 on, _check() before.

    def check(self, model, connection):
        return _without(super().check(model, connection), "models.W036")

    def _check(self, model, connection):
        return _without(super()._check(model, connection), "models.W036")

    def create_sql(self, model, schema_editor):
        if has_partial_indexes(schema_editor.connection):
            return super().create_sql(model, schema_editor)
        quote = schema_editor.quote_name
        condition = self._condition_sql(model, schema_editor)
        columns = []
        additions = []
        for field_name in self.fields:
            field = model._meta.get_field(field_name)
            column = self.generated_column(field)
            columns.append(quote(column))
            db_type = field.db_type(schema_editor.connection)
            # VIRTUAL: computed on read, so the table stores nothing more;
            # the unique index stores the value for the rows it admits.
            additions.append(
                f"ADD COLUMN {quote(column)} {db_type} GENERATED ALWAYS AS "
                f"(CASE WHEN {condition} THEN {quote(field.column)} END) VIRTUAL"
            )
        additions.append(f"ADD UNIQUE INDEX {quote(self.name)} ({', '.join(columns)})")
        return f"ALTER TABLE {quote(model._meta.db_table)} {', '.join(additions)}"

    def constraint_sql(self, model, schema_editor):
        # A table made from the model (a squashed migration, tests without
        # migrations): the columns and the index are added once it exists.
        if has_partial_indexes(schema_editor.connection):
            return super().constraint_sql(model, schema_editor)
        schema_editor.deferred_sql.append(self.create_sql(model, schema_editor))
        return None

    def remove_sql(self, model, schema_editor):
        if has_partial_indexes(schema_editor.connection):
            return super().remove_sql(model, schema_editor)
        quote = schema_editor.quote_name
        removals = [f"DROP INDEX {quote(self.name)}"]
        for field_name in self.fields:
            column = self.generated_column(model._meta.get_field(field_name))
            removals.append(f"DROP COLUMN {quote(column)}")
        return f"ALTER TABLE {quote(model._meta.db_table)} {', '.join(removals)}"

    def generated_column(self, field) -> str:
        return f"{self.name}_{field.column}"

    def _condition_sql(self, model, schema_editor):
        query = Query(model=model, alias_cols=False)
        where = query.build_where(self.condition)
        compiler = query.get_compiler(connection=schema_editor.connection)
        sql, params = where.as_sql(compiler, schema_editor.connection)
        return sql % tuple(schema_editor.quote_value(param) for param in params)

    def deconstruct(self):
        path, args, kwargs = super().deconstruct()
        return "djtasks.schema.PartialUniqueConstraint", args, kwargs
