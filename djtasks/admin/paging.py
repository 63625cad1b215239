"""A changelist paginator that does not COUNT a million rows on PostgreSQL.

The admin counts the filtered rows to number its pages. An exact COUNT(*)
reads every matching row (seconds on a large history), so on PostgreSQL the
paginator asks the planner first: when it expects many rows, its estimate is
the count; when it expects few, the exact count is cheap and used instead.
"""

import json

from django.core.exceptions import EmptyResultSet
from django.core.paginator import Paginator
from django.db import connections
from django.utils.functional import cached_property

# Below this many estimated rows an exact count is cheap enough to run.
EXACT_COUNT_BELOW = 10_000


def planner_estimate(queryset) -> int | None:
    """The planner's row estimate for ``queryset``; None off PostgreSQL."""
    connection = connections[queryset.db]
    if connection.vendor != "postgresql":
        return None
    try:
        sql, params = queryset.order_by().query.sql_with_params()
    except EmptyResultSet:
        return 0  # queryset.none(), or a filter such as pk__in=[]: no SQL to plan
    with connection.cursor() as cursor:
        # EXPLAIN without ANALYZE only plans the query: it reads table
        # statistics, never the rows.
        cursor.execute(f"EXPLAIN (FORMAT JSON) {sql}", params)
        plan = cursor.fetchone()[0]
    if isinstance(plan, str):
        plan = json.loads(plan)
    return int(plan[0]["Plan"]["Plan Rows"])


class EstimatedCountPaginator(Paginator):
    """Counts exactly when the result is small, estimates when it is large."""

    @cached_property
    def count(self):
        try:
            estimate = planner_estimate(self.object_list)
        except AttributeError:  # a plain list, not a queryset
            estimate = None
        if estimate is not None and estimate >= EXACT_COUNT_BELOW:
            return estimate
        return super().count
