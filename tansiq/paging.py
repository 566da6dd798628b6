"""Cursor paging of lists: an opaque cursor over (sort key, id), a bounded `limit`, a `next` cursor.

Keyset paging, not offsets: a page starts strictly after the last row of the previous one, so rows
inserted while someone walks the list never shift what she has not read yet (no duplicates, no
gaps), and each page is one index range scan whatever the list's length. A cursor names the list it
was made for (a digest of its scope: the staff member or association, the list and its filters);
used on another list it is refused, never reinterpreted. A `limit` above MAX_LIMIT is refused:
nothing is cut silently.
"""

import base64
import hashlib
import json
from datetime import datetime

from marshmallow import EXCLUDE, Schema, fields, validate
from sqlalchemy import tuple_

from tansiq.errors import DomainError

DEFAULT_LIMIT = 50
MAX_LIMIT = 200


class PageQuery(Schema):
    """`limit` and `cursor` of a list's query string (422 at the gateway; the services check them again).

    A list's query schema inherits it, so every list documents and reads them the same way."""

    class Meta:
        unknown = EXCLUDE  # the page's own parameters (lang...) are not the list's business

    limit = fields.Integer(load_default=None, allow_none=True, validate=validate.Range(min=1, max=MAX_LIMIT),
                           metadata={"description": f"page size, default {DEFAULT_LIMIT}, at most {MAX_LIMIT}; "
                                                    "above it the request is refused, nothing is cut silently"})
    cursor = fields.String(load_default=None, allow_none=True, validate=validate.Length(max=1000),
                           metadata={"description": "the `next` of the previous page; refused on another list"})


def check_limit(limit):
    """The page size asked for, or DEFAULT_LIMIT; outside 1..MAX_LIMIT is an invalid request."""
    if limit is None:
        return DEFAULT_LIMIT
    try:
        limit = int(limit)
    except (TypeError, ValueError):
        raise DomainError("limit must be a whole number", code="invalid_request") from None
    if not 1 <= limit <= MAX_LIMIT:
        raise DomainError(f"limit must be between 1 and {MAX_LIMIT}", code="invalid_request",
                          details={"max_limit": MAX_LIMIT})
    return limit


def _scope_digest(scope):
    return hashlib.sha256(json.dumps(scope, sort_keys=True, default=str).encode()).hexdigest()[:16]


def _encode_value(value):
    return {"t": value.isoformat()} if isinstance(value, datetime) else value


def _decode_value(value):
    return datetime.fromisoformat(value["t"]) if isinstance(value, dict) else value


def encode_cursor(scope, key):
    """Opaque text for 'after the row whose sort key is `key`' in the list named by `scope`."""
    body = {"s": _scope_digest(scope), "k": [_encode_value(value) for value in key]}
    return base64.urlsafe_b64encode(json.dumps(body, separators=(",", ":")).encode()).decode().rstrip("=")


def decode_cursor(scope, cursor, size):
    """The sort key (`size` values) a cursor points after; refused when unreadable or made for another list."""
    try:
        body = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
        key = [_decode_value(value) for value in body["k"]]
        digest = body["s"]
        if len(key) != size or not all(isinstance(value, (str, int, float, datetime)) for value in key):
            raise ValueError("not a sort key of this list")
    # A client's text may be broken in any way: bad base64 or JSON (ValueError), wrong shapes, deep nesting.
    except (ValueError, TypeError, KeyError, AttributeError, RecursionError):
        raise DomainError("the cursor is not readable", code="invalid_request") from None
    if digest != _scope_digest(scope):
        raise DomainError("the cursor belongs to another list", code="invalid_request")
    return key


def page_descending(session, query, columns, scope, limit=None, cursor=None):
    """One page of `query` ordered by `columns` descending (the last one unique, e.g. the id).

    Returns (rows, next cursor or None). Reads one row more than the page to know whether there is a
    next page without counting.
    """
    limit = check_limit(limit)
    if cursor:
        query = query.where(_after(columns, decode_cursor(scope, cursor, len(columns))))
    rows = session.scalars(query.order_by(*(column.desc() for column in columns)).limit(limit + 1)).all()
    if len(rows) <= limit:
        return rows, None
    rows = rows[:limit]
    last = rows[-1]
    return rows, encode_cursor(scope, [getattr(last, column.key) for column in columns])


def _after(columns, key):
    """Rows strictly after `key` in descending order: the row value (a, b) < (ka, kb), which SQLite and
    PostgreSQL both read as one index range (an OR of the columns is not)."""
    if len(columns) == 1:
        return columns[0] < key[0]
    return tuple_(*columns) < tuple_(*key)
