"""A cursor that binds parameters on the PostgreSQL server, for djtasks' hot statements.

Django's own psycopg cursors bind on the client (unless OPTIONS sets
``server_side_binding``): each statement reaches PostgreSQL as new text with
its values quoted in, to be parsed and planned anew. The enqueue's INSERT,
the claim and the outcomes' write go through the cursor here instead: the
statement and its values travel apart (no quoting in Python, no lexing of a
long JSON literal in the server), and psycopg prepares a statement it has
run ``prepare_threshold`` times (Django sets None, never; ``OPTIONS
["prepare_threshold"] = 5`` turns it on, which a transaction-mode pooler
older than PgBouncer 1.21 cannot take; see docs/deployment.md, "Poolers").
Measured (docs/benchmarks.md, "Seventh round"): with Django's defaults a
drain costs the same, and an idle worker starts a job some 0.1 ms sooner;
prepared, a one-process drain costs PostgreSQL 0.89x the CPU per job.
"""

import threading

from django.db.backends.postgresql.psycopg_any import is_psycopg3

if is_psycopg3:
    import psycopg

# Per thread and database alias: (psycopg connection, its server-binding
# cursor), reused from one statement to the next; making a cursor costs
# about a tenth of an enqueue.
_bound = threading.local()


def cursor(connection):
    """A Django cursor over a psycopg cursor of ``connection`` that binds on the server.

    Opened and wrapped the way connection.cursor() opens and wraps Django's
    own, so errors are Django's and query logging and execute_wrappers see
    the statement. It is shared by the thread's statements on that
    connection: fetch a statement's rows before the next one runs (an
    ``execute_wrapper`` that ran a statement of its own on the same alias
    after the claim's would take the claim's rows). With psycopg2 (no
    server-side binding), Django's own cursor, closed when let go.
    """
    if not is_psycopg3:
        return connection.cursor()
    connection.close_if_health_check_failed()
    connection.ensure_connection()
    raw = connection.connection
    cursors = getattr(_bound, "cursors", None)
    if cursors is None:
        cursors = _bound.cursors = {}
    cached = cursors.get(connection.alias)
    if cached is None or cached[0] is not raw or cached[1].closed:
        # A new connection (Django reconnects per request by default): the
        # cursor follows the connection, and the old one is let go.
        cached = cursors[connection.alias] = (raw, psycopg.Cursor(raw))
    connection.validate_thread_sharing()
    if connection.queries_logged:
        return connection.make_debug_cursor(cached[1])
    return connection.make_cursor(cached[1])
