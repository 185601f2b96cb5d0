"""schemathesis hooks (``SCHEMATHESIS_HOOKS=tests.contract.hooks``): what the schema says in words
but JSON Schema cannot, taught to the data generator.

- Timestamps are ``format: date-time`` from year 1684 to 2255 (a sorted-set score holds them
  exactly), dates (stats, due dates) from 2000 to 2199: generated inside those ranges.
- Emails are ``format: email``; Django's validator is stricter than RFC 5322 (no quoted local
  parts, no IP literals): generated as plain addresses.
- ``startingAfter`` and ``endingBefore`` exclude each other (the operations say so in
  ``x-mutually-exclusive``): a generated pair keeps one.
"""

from __future__ import annotations

from datetime import UTC, date, datetime

import schemathesis
from hypothesis import strategies as st

_TIMESTAMPS = st.datetimes(min_value=datetime(1700, 1, 1), max_value=datetime(2250, 1, 1), timezones=st.just(UTC))
schemathesis.openapi.format("date-time", _TIMESTAMPS.map(lambda value: value.isoformat().replace("+00:00", "Z")))
schemathesis.openapi.format("date", st.dates(date(2000, 1, 1), date(2199, 12, 31)).map(date.isoformat))
_LOCAL = st.from_regex(r"\A[a-z0-9][a-z0-9._+-]{0,30}\Z")
schemathesis.openapi.format("email", st.builds("{}@{}.example.com".format, _LOCAL, st.from_regex(r"\A[a-z]{1,20}\Z")))


@schemathesis.hook
def map_query(ctx, query):
    if isinstance(query, dict) and "startingAfter" in query and "endingBefore" in query:
        exclusive = ctx.operation.definition.raw.get("x-mutually-exclusive", [])
        if ["startingAfter", "endingBefore"] in exclusive:
            query.pop("endingBefore")
    return query
