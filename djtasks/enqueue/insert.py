"""Inserting new job rows, one or many, in the caller's transaction.

The ORM's save() and bulk_create() build a model instance and prepare every
field of every row in Python, which costs more than the database's own work.
Here the rows go straight to the driver: COPY on PostgreSQL for many rows (the
same table, transaction and triggers, several times faster than INSERT), in
text this module encodes and streams in chunks, so that the caller's work per
row overlaps the server's; a prepared INSERT for one; and multi-row INSERTs as
large as the database allows elsewhere.
"""

import datetime
import functools
import json
import uuid

from django.db import DataError, connections
from django.db.models.expressions import DatabaseDefault

from djtasks import server_binding
from djtasks.models import Job

_FIELDS = list(Job._meta.concrete_fields)
_ATTNAMES = [field.attname for field in _FIELDS]
_JSON_FIELDS = {field.attname for field in _FIELDS if field.get_internal_type() == "JSONField"}
_COLUMNS = ", ".join(field.column for field in _FIELDS)
_TABLE = Job._meta.db_table
_COPY_SQL = f"COPY {_TABLE} ({_COLUMNS}) FROM STDIN"
_ROW_PLACEHOLDERS = f"({', '.join(['%s'] * len(_FIELDS))})"
_INSERT_SQL = f"INSERT INTO {_TABLE} ({_COLUMNS}) VALUES {_ROW_PLACEHOLDERS}"


def insert_job(database: str, row: dict) -> None:
    """Insert one new job given as {attname: value} (missing fields: defaults)."""
    insert_jobs(database, [row])


def insert_jobs(database: str, rows: list[dict], meanwhile=None) -> None:
    """Insert new jobs given as {attname: value} (missing fields: defaults).

    ``meanwhile(chunk)``, if given, is called with each chunk of the rows
    once it is on its way to the database: the caller's own work for those
    rows runs while the server inserts them. That is on PostgreSQL, where
    COPY streams the rows; elsewhere, and for a single row, it is called
    once with all the rows, after the insert.
    """
    connection = connections[database]
    if connection.vendor == "postgresql" and len(rows) != 1:
        with connection.cursor() as cursor:
            _copy_rows(cursor, rows, meanwhile)  # calls meanwhile chunk by chunk
        return
    if connection.vendor == "postgresql":
        _insert_one_postgresql(connection, rows[0])
    elif connection.vendor == "mysql":
        with connection.cursor() as cursor:
            _insert_mysql(cursor, connection, rows)
    else:
        with connection.cursor() as cursor:
            for chunk in _chunks(rows, _rows_per_statement(connection)):
                _insert_values(cursor, connection, chunk)
    if meanwhile is not None:
        meanwhile(rows)


# Rows per write of a COPY: large enough that a write costs little per row,
# small enough that the server starts on the first rows while the rest are
# still being encoded.
_COPY_CHUNK_ROWS = 500


def _copy_rows(cursor, rows, meanwhile) -> None:
    """COPY the rows in: text lines this module encodes, written in chunks.

    COPY is not part of the DB-API that Django wraps, so this uses the
    psycopg cursor underneath (same connection, same transaction).
    """
    encode = CopyEncoder()
    with cursor.cursor.copy(_COPY_SQL) as copy:
        for chunk in _chunks(rows, _COPY_CHUNK_ROWS):
            copy.write("".join([encode(row) for row in chunk]))
            if meanwhile is not None:
                meanwhile(chunk)


def _insert_one_postgresql(connection, row: dict) -> None:
    sql, names = _single_insert(
        tuple(name for name, value in row.items() if value is not None),
        tuple(name for name, value in row.items() if value is None),
    )
    params = [_postgresql_value(name, row[name]) for name in names]
    server_binding.cursor(connection).execute(sql, params)


@functools.lru_cache(maxsize=64)
def _single_insert(given: tuple, nulls: tuple) -> tuple[str, tuple]:
    """The INSERT of one row: (sql, the names of the values it takes).

    ``given`` names the row's fields that have a value, ``nulls`` those it
    sets to None; the other columns take their default. Defaults are
    literals in the statement's text, so only the values a call decides
    travel as parameters, and NULL columns (without a database default,
    whose column default is NULL too) are left out: the some 20 columns an
    ordinary job leaves NULL cost PostgreSQL about a sixth of its time to parse
    when listed. The rows of one call site come in a few shapes only.
    """
    defaults = _postgresql_defaults()
    columns = []
    names = []
    values = []
    for field in _FIELDS:
        name = field.attname
        if name in given:
            names.append(name)
            value = "%s"
        else:
            value = "NULL" if name in nulls else _literal(defaults[name])
            if value == "NULL" and not field.has_db_default():
                continue
        columns.append(field.column)
        values.append(value)
    sql = f"INSERT INTO {_TABLE} ({', '.join(columns)}) VALUES ({', '.join(values)})"
    return sql, tuple(names)


def _literal(value) -> str:
    """A default (None, a boolean, a whole number or a string) as SQL."""
    if value is None:
        return "NULL"
    if isinstance(value, bool):
        return "TRUE" if value else "FALSE"
    if isinstance(value, DatabaseDefault):
        return "DEFAULT"  # a db_default without a Python default
    if not isinstance(value, int | str):
        raise TypeError(f"No literal for the default {value!r}")
    if isinstance(value, int):
        return str(value)
    # A standard string literal: only the quote is special (PostgreSQL's
    # standard_conforming_strings, on by default since 9.1); % is doubled
    # because the statement goes through the driver's parameter formatting.
    return "'" + value.replace("'", "''").replace("%", "%%") + "'"


def _postgresql_value(name, value):
    if name in _JSON_FIELDS and value is not None:
        return _json_text(value)
    return value


def _json_text(value) -> str:
    # Mostly empty, as the arguments of a task that takes none.
    if type(value) in (list, dict) and not value:
        return "[]" if type(value) is list else "{}"
    return json.dumps(value)


@functools.cache
def _postgresql_defaults() -> dict:
    """Each column's default as psycopg takes it (JSON already encoded)."""
    defaults = {}
    for field in _FIELDS:
        if field.attname in ("id", "enqueued_at", "available_at"):
            continue  # always given: a default here would be computed once
        value = field.get_default()
        if field.attname in _JSON_FIELDS and value is not None:
            value = json.dumps(value)
        defaults[field.attname] = value
    return defaults


def _insert_values(cursor, connection, rows):
    """One multi-row INSERT, with Django's per-field preparation of values
    (UUIDs as hex on SQLite, datetimes in the backend's format)."""
    _execute_values(cursor, [_prepared_row(connection, row) for row in rows])


def _insert_mysql(cursor, connection, rows):
    """Multi-row INSERTs, each within the server's max_allowed_packet.

    MariaDB and MySQL take any number of parameters (the driver quotes them
    into the statement) but refuse a statement longer than
    max_allowed_packet, so rows are grouped by their size.
    """
    budget = statement_budget(connection)
    chunk, size = [], 0
    for row in rows:
        values = _prepared_row(connection, row)
        # The quoted row is at most twice its text (every byte escaped).
        row_size = 2 * sum(len(str(value)) for value in values) + 8 * len(values)
        if chunk and size + row_size > budget:
            _execute_values(cursor, chunk)
            chunk, size = [], 0
        chunk.append(values)
        size += row_size
    if chunk:
        _execute_values(cursor, chunk)


def _execute_values(cursor, prepared_rows):
    placeholders = ", ".join([_ROW_PLACEHOLDERS] * len(prepared_rows))
    params = [value for values in prepared_rows for value in values]
    cursor.execute(f"INSERT INTO {_TABLE} ({_COLUMNS}) VALUES {placeholders}", params)


def statement_budget(connection) -> int:
    """Bytes a statement may take: half the server's max_allowed_packet (read once)."""
    budget = getattr(connection, "_djtasks_statement_budget", None)
    if budget is None:
        with connection.cursor() as cursor:
            cursor.execute("SELECT @@max_allowed_packet")
            (packet,) = cursor.fetchone()
        # Half: room for the statement's own text, and for the server's
        # accounting of multi-byte characters.
        budget = max(64 * 1024, int(packet) // 2)
        connection._djtasks_statement_budget = budget
    return budget


def _rows_per_statement(connection) -> int:
    """How many rows fit the database's limit on parameters per statement."""
    limit = 999  # SQLite's historical default, and Django's assumption
    raw = connection.connection
    if connection.vendor == "sqlite" and hasattr(raw, "getlimit"):
        import sqlite3

        limit = raw.getlimit(sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER)
    return max(1, limit // len(_FIELDS))


def _chunks(rows, size):
    for start in range(0, len(rows), size):
        yield rows[start : start + size]


def _prepared_row(connection, row: dict) -> list:
    return [
        field.get_db_prep_save(
            row[field.attname] if field.attname in row else field.get_default(),
            connection,
        )
        for field in _FIELDS
    ]


# COPY's text format (one line per row, fields apart by tabs, \\N for NULL,
# backslash escapes), written here instead of by psycopg's write_row(): that
# adapts each of the ~40 values of every row through its type's dumper,
# which cost a bulk enqueue more Python time than everything else per row.
_NULL = "\\N"
_COPY_ESCAPES = str.maketrans({"\\": "\\\\", "\t": "\\t", "\n": "\\n", "\r": "\\r"})


def _copy_string(text: str) -> str:
    if "\x00" in text:
        # As psycopg refuses it: PostgreSQL's text types cannot hold NUL.
        raise DataError("PostgreSQL text fields cannot contain NUL (0x00) characters.")
    return text.translate(_COPY_ESCAPES)


def _copy_json(value) -> str:
    # json.dumps escapes every control character, so only its backslashes
    # need COPY's escaping.
    return _json_text(value).replace("\\", "\\\\")


def _copy_datetime(value) -> str:
    # ISO 8601 with its offset, or naive: the column's input reads a naive
    # time in the session's time zone, as it reads psycopg's.
    if isinstance(value, datetime.datetime):
        return value.isoformat()
    return _copy_string(str(value))


def _copy_integer(value) -> str:
    return str(int(value))


def _copy_float(value) -> str:
    # repr() gives "inf" and "nan", which PostgreSQL reads too.
    return repr(float(value))


def _copy_boolean(value) -> str:
    return "t" if value else "f"


def _copy_uuid(value) -> str:
    if isinstance(value, uuid.UUID):
        return str(value)  # hex digits and dashes: nothing to escape
    return _copy_string(str(value))


def _copy_other(value) -> str:
    return _copy_string(str(value))


_COPY_ENCODERS_BY_TYPE = {
    "JSONField": _copy_json,
    "UUIDField": _copy_uuid,
    "DateTimeField": _copy_datetime,
    "BooleanField": _copy_boolean,
    "FloatField": _copy_float,
    "SmallIntegerField": _copy_integer,
    "IntegerField": _copy_integer,
    "PositiveIntegerField": _copy_integer,
}


def _copy_encoder(field):
    field = field.target_field if field.is_relation else field
    return _COPY_ENCODERS_BY_TYPE.get(field.get_internal_type(), _copy_other)


_COPY_ENCODERS = [_copy_encoder(field) for field in _FIELDS]


class CopyEncoder:
    """Rows as lines of COPY's text format, for one COPY.

    Rows with the same keys (the rows of one call site all have them) share
    a shape: the text of the columns they leave to their defaults, and for
    each column they give, the value met last and its text. Most values of
    a bulk enqueue are the same object row after row (the task's path,
    queue, times and policy), so each is encoded once; the shape holds the
    value it compares with, so an identity is never reused meanwhile.
    """

    def __init__(self):
        self._shapes = {}

    def __call__(self, row: dict) -> str:
        keys = tuple(row)
        shape = self._shapes.get(keys)
        if shape is None:
            shape = self._shapes[keys] = _CopyShape(keys)
        fields = shape.template.copy()
        last_values = shape.last_values
        last_texts = shape.last_texts
        for index, (position, name, encode) in enumerate(shape.slots):
            value = row[name]
            if value is not last_values[index]:
                last_values[index] = value
                last_texts[index] = _NULL if value is None else encode(value)
            fields[position] = last_texts[index]
        return "\t".join(fields) + "\n"


class _CopyShape:
    """The line of a row with given keys: defaults filled in, the rest to encode."""

    def __init__(self, keys: tuple):
        defaults = _postgresql_defaults()
        given = set(keys)
        self.template = []
        self.slots = []  # (position in the line, attname, encoder)
        for position, name in enumerate(_ATTNAMES):
            if name in given:
                self.slots.append((position, name, _COPY_ENCODERS[position]))
                self.template.append(None)
            elif name not in defaults:
                raise ValueError(f"A new job row needs a value for {name!r}.")
            elif defaults[name] is None:
                self.template.append(_NULL)
            else:
                # JSON defaults are text already (see _postgresql_defaults).
                encode = _copy_other if name in _JSON_FIELDS else _COPY_ENCODERS[position]
                self.template.append(encode(defaults[name]))
        # A sentinel no row holds, so each column's first value is encoded.
        self.last_values = [_UNSET] * len(self.slots)
        self.last_texts = [None] * len(self.slots)


_UNSET = object()
