"""The gateway's sessions against a real directory (its domain on SQLite, no broker), for unit tests.

`signed_in(staff)` signs a staff member in through the directory's own sign-in and gives the
cookie's token; the gateway's Sessions then checks every request against its read model of the
directory (tansiq.readmodel), started from the directory's snapshot and fed, before each request, with
the changes the directory committed to its outbox: what the broker would carry, without a broker.
"""

from contextlib import contextmanager

from nameko.testing.services import worker_factory
from sqlalchemy import select

from services.directory import domain
from services.directory.models import Base
from services.directory.service import DirectoryService
from services.gateway import web
from tansiq import contracts
from tansiq.db import Sessions as Units
from tansiq.db import make_engine
from tansiq.envelope import parse
from tansiq.messaging.store import OutboxMessage, messaging_metadata
from tansiq.messaging.topology import DIRECTORY_CHANGES
from tansiq.readmodel import DirectoryModel

PASSWORD = "a-long-test-password"


@contextmanager
def cheap_password_hashing():
    """Argon2 with its smallest cost: the rules under test are the same, each hash takes microseconds."""
    from argon2 import PasswordHasher

    saved, domain._hasher = domain._hasher, PasswordHasher(time_cost=1, memory_cost=8, parallelism=1)
    try:
        yield
    finally:
        domain._hasher = saved


class DirectorySessions(web.Sessions):
    """web.Sessions whose directory is a DirectoryService worker on a SQLite file."""

    def __init__(self, engine, secure_cookies=False):
        super().__init__()
        self.engine, self.secure_cookies = engine, secure_cookies
        self.directory = worker_factory(DirectoryService, db=Units(engine))
        self.known = set()
        self.read_model = DirectoryModel()
        self.read_model.load(self.directory.snapshot(sessions=True))
        self.fed_up_to = 0

    def announced(self, token_hash):
        return token_hash in self.model().sessions  # model() applied every change committed: nothing to wait for

    def model(self):
        """The read model, with every change the directory committed since the last request applied."""
        with Units(self.engine).session() as session:
            rows = session.scalars(select(OutboxMessage).where(OutboxMessage.seq > self.fed_up_to,
                                                               OutboxMessage.type.in_(DIRECTORY_CHANGES))
                                   .order_by(OutboxMessage.seq)).all()
            for row in rows:
                envelope = contracts.validate(parse(row.body.encode()))
                self.read_model.apply(envelope.type, envelope.data)
                self.fed_up_to = row.seq
        return self.read_model

    def add_staff(self, staff, password=PASSWORD, email=None):
        """The staff dict ({id, association, roles, language, name}) as a directory member."""
        with Units(self.engine).session() as session:
            if session.get(domain.Association, staff["association"]) is None:
                domain.upsert_association(session, {"slug": staff["association"], "name_ar": staff["association"],
                                                    "name_fr": staff["association"], "city": "Safi"})
            domain.upsert_staff(session, {
                "id": staff["id"], "association_slug": staff["association"], "name": staff["name"],
                "email": email or f"{staff['id']}@test.example", "language": staff["language"],
                "roles": staff["roles"]}, password=password)

    def signed_in(self, staff, address="127.0.0.1"):
        """A live session token for her (added to the directory first if need be)."""
        if staff["id"] not in self.known:
            self.add_staff(staff)
            self.known.add(staff["id"])
        return self.directory.sign_in(f"{staff['id']}@test.example", PASSWORD, address)["token"]


@contextmanager
def directory_sessions(tmp_path):
    """DirectorySessions installed as the gateway's sessions for the test (current_staff uses it)."""
    engine = make_engine(f"sqlite:///{tmp_path / 'directory.sqlite3'}")
    Base.metadata.create_all(engine)
    messaging_metadata.create_all(engine)
    sessions = DirectorySessions(engine)
    previous, web._active[0] = web._active[0], sessions
    try:
        with cheap_password_hashing():
            yield sessions
    finally:
        web._active[0] = previous
        engine.dispose()
