"""Test support: the directory's RPC answers served in-process from the real directory domain.

The notifications domain takes anything with the directory RPC methods; tests hand it
this, backed by the directory's own models and schemas on SQLite, so staff shapes are
exactly the ones the RPC returns.
"""

import pytest
from sqlalchemy.orm import Session

from services.directory import domain as directory_domain
from services.directory.models import Base as DirectoryBase
from services.directory.schemas import AssociationSchema, StaffSchema
from tansiq.db import make_engine
from tansiq.messaging.store import messaging_metadata


class LocalDirectory:
    def __init__(self, url="sqlite://"):
        self.engine = make_engine(url)
        DirectoryBase.metadata.create_all(self.engine)
        messaging_metadata.create_all(self.engine)  # the directory announces changes through its outbox
        self.session = Session(self.engine, expire_on_commit=False)

    def add_association(self, slug, name_fr, name_ar, city):
        directory_domain.upsert_association(self.session, {"slug": slug, "name_fr": name_fr, "name_ar": name_ar,
                                                           "city": city})
        self.session.commit()

    def add_staff(self, staff_id, association, name, roles, language="fr", phone="", password=None):
        directory_domain.upsert_staff(self.session, {
            "id": staff_id, "association_slug": association, "name": name, "roles": list(roles),
            "language": language, "email": f"{staff_id}@{association}.ma", "phone": phone}, password)
        self.session.commit()

    # The RPC methods notifications uses.
    def get_association(self, slug):
        return AssociationSchema().dump(directory_domain.get_association(self.session, slug))

    def list_associations(self, city=None, category=None):
        return AssociationSchema().dump(directory_domain.list_associations(self.session, city, category), many=True)

    def list_staff(self, association, role=None):
        return StaffSchema().dump(directory_domain.list_staff(self.session, association, role), many=True)

    def get_staff(self, staff_id):
        return StaffSchema().dump(directory_domain.get_staff(self.session, staff_id))

    def close(self):
        self.session.close()
        self.engine.dispose()


def small_network(url="sqlite://", password=None):
    """Three associations with case workers, coordinators and events managers in all three languages.

    With `password`, every staff member can sign in with it (email: <staff id>@<association>.ma)."""
    directory = LocalDirectory(url)
    directory.add_association("amal-safi", "Association Amal", "جمعية أمل", "Safi")
    directory.add_association("wafae-marrakech", "Association Wafae", "جمعية وفاء", "Marrakech")
    directory.add_association("nour-safi", "Association Nour", "جمعية نور", "Safi")
    staff = [
        ("s-amal-cw-ar", "amal-safi", "Fatima Zahra", ["case_worker"], "ar", "+212600000001"),
        ("s-amal-cw-fr", "amal-safi", "Salma", ["case_worker"], "fr", ""),
        ("s-amal-coord", "amal-safi", "Naima", ["coordinator", "events_manager"], "fr", ""),
        ("s-wafae-cw-en", "wafae-marrakech", "Houda", ["case_worker"], "en", "+212600000002"),
        ("s-wafae-coord", "wafae-marrakech", "Latifa", ["coordinator"], "ar", ""),
        ("s-wafae-events", "wafae-marrakech", "Samira", ["events_manager"], "fr", ""),
        ("s-nour-events", "nour-safi", "Zineb", ["events_manager"], "en", "+212600000003"),
    ]
    for staff_id, association, name, roles, language, phone in staff:
        directory.add_staff(staff_id, association, name, roles, language, phone, password)
    return directory


@pytest.fixture
def session():
    """A notifications database in memory (with its outbox and inbox tables)."""
    from services.notifications.models import Base

    engine = make_engine("sqlite://")
    Base.metadata.create_all(engine)
    messaging_metadata.create_all(engine)
    with Session(engine) as session:
        yield session
    engine.dispose()


@pytest.fixture(scope="module")
def directory():
    """The small demo network of small_network(), for a whole test module."""
    directory = small_network()
    yield directory
    directory.close()
