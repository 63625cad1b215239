"""Check the arguments of an enqueued call: JSON only, bounded in size."""

import json

from djtasks.compat import normalize_json
from djtasks.exceptions import ArgumentNotSerializable, PayloadTooLarge


def prepare_arguments(task_path: str, args, kwargs, max_bytes: int):
    """Return (args, kwargs) as JSON data, or raise a clear error.

    Uses the standard framework's normaliser (tuples become lists, bytes
    become str), so a stored job reads back like the standard TaskResult.
    """
    if not args and not kwargs and max_bytes >= _EMPTY_SIZE:
        return [], {}  # many tasks take no arguments: nothing to check
    try:
        args = normalize_json(list(args))
        kwargs = normalize_json(dict(kwargs))
        # allow_nan=False: PostgreSQL's jsonb rejects NaN and Infinity.
        text = json.dumps([args, kwargs], allow_nan=False)
    except RecursionError:
        raise ArgumentNotSerializable(
            f"The arguments of {task_path} are nested too deeply to be stored as JSON."
        ) from None
    except (TypeError, ValueError):
        _raise_for_first_bad_argument(task_path, args, kwargs)
        raise
    # Only text holding one of these escapes can hold a NUL or a lone
    # surrogate: the common case costs two substring searches.
    if "\\u0000" in text or "\\ud" in text:
        _refuse_unstorable_text(task_path, args, kwargs)
    size = len(text)
    if size > max_bytes:
        raise PayloadTooLarge(
            f"The arguments of {task_path} take {size} bytes as JSON, more than "
            f"the limit of {max_bytes} (DJTASKS['MAX_PAYLOAD_BYTES']). Store "
            f"large data in a model or a file and pass its id."
        )
    return args, kwargs


# The size of no arguments at all, as prepare_arguments measures it.
_EMPTY_SIZE = len(json.dumps([[], {}]))


def _raise_for_first_bad_argument(task_path, args, kwargs):
    named = [(f"Argument {index}", value) for index, value in enumerate(args)]
    named += [(f"Keyword argument {name!r}", value) for name, value in kwargs.items()]
    for where, value in named:
        try:
            json.dumps(normalize_json(value), allow_nan=False)
        except (TypeError, ValueError) as error:
            raise ArgumentNotSerializable(
                f"{where} of {task_path} is not JSON-serialisable "
                f"({type(value).__name__}: {error}). Pass ids and plain data, "
                f"not objects."
            ) from error


def _refuse_unstorable_text(task_path, args, kwargs):
    """Refuse NUL characters and lone surrogates, which jsonb cannot store.

    Refused on every database, so a call that works on SQLite in development
    does not fail with a database error on PostgreSQL in production.
    """
    named = [(f"Argument {index}", value) for index, value in enumerate(args)]
    named += [(f"Keyword argument {name!r}", value) for name, value in kwargs.items()]
    for where, value in named:
        if _has_unstorable_text(value):
            raise ArgumentNotSerializable(
                f"{where} of {task_path} holds a NUL character or an unpaired "
                f"surrogate, which a JSON column cannot store. Remove it or "
                f"encode the text (e.g. base64)."
            )


def _has_unstorable_text(value) -> bool:
    if isinstance(value, str):
        if "\x00" in value:
            return True
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            return True
        return False
    if isinstance(value, dict):
        return any(_has_unstorable_text(key) or _has_unstorable_text(v) for key, v in value.items())
    if isinstance(value, list):
        return any(_has_unstorable_text(item) for item in value)
    return False
