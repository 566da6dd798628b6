"""Index declarations shared by the models (only SQLAlchemy here: the kernel's store imports it too)."""

from sqlalchemy import Index, text


def partial_index(name, *columns, where):
    """An index of the rows matching `where` (SQL text) only, on PostgreSQL and on SQLite alike."""
    return Index(name, *columns, postgresql_where=text(where), sqlite_where=text(where))
