"""Test helpers for the referrals domain: a throwaway SQLite database and staff members."""

import os
from contextlib import contextmanager

from sqlalchemy.orm import Session

from tansiq.crypto import KeyRing
from tansiq.db import make_engine
from tansiq.messaging.store import messaging_metadata

from tansiq.contracts.actor import Actor
from services.referrals.models import Base


@contextmanager
def sqlite_session(path):
    """A session on a fresh SQLite file with the referrals and messaging tables."""
    engine = make_engine(f"sqlite:///{path}")
    Base.metadata.create_all(engine)
    messaging_metadata.create_all(engine)
    session = Session(engine, expire_on_commit=False)
    try:
        yield session
    finally:
        session.close()
        engine.dispose()


def staff(association, *roles, staff_id=None):
    """A staff member of `association` (a case worker unless roles are given)."""
    roles = frozenset(roles or ("case_worker",))
    return Actor(association=association, id=staff_id or f"s-{association}", roles=roles)


def keyring():
    """A throwaway master key."""
    return KeyRing(os.urandom(32))
