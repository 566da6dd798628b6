"""Alembic environment of one service: everything is in tansiq.migrations."""

from alembic import context

from tansiq.migrations import run_env

run_env(context)
