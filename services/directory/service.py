"""Directory service: thin RPC entrypoints over services.directory.domain."""

from nameko.rpc import rpc

from services.directory import changes, domain, signin
from services.directory.models import StaffSession
from services.directory.schemas import AssociationSchema, OfferedServiceSchema, StaffSchema
from tansiq.db import Database
from tansiq.envelope import utcnow
from tansiq.errors import DomainError

associations_out = AssociationSchema()
services_out = OfferedServiceSchema()
staff_out = StaffSchema()


class DirectoryService:
    name = "directory"
    db = Database()

    @rpc
    def health(self):
        return "ok"

    @rpc
    def get_association(self, slug):
        with self.db.session() as session:
            return associations_out.dump(domain.get_association(session, slug))

    @rpc
    def list_associations(self, city=None, category=None):
        with self.db.session() as session:
            return associations_out.dump(domain.list_associations(session, city, category), many=True)

    @rpc
    def find_services(self, category, city=None):
        with self.db.session() as session:
            return services_out.dump(domain.find_services(session, category, city), many=True)

    @rpc
    def list_staff(self, association, role=None):
        with self.db.session() as session:
            return staff_out.dump(domain.list_staff(session, association, role), many=True)

    @rpc
    def get_staff(self, staff_id):
        with self.db.session() as session:
            return staff_out.dump(domain.get_staff(session, staff_id))

    @rpc
    def authenticate(self, email, password):
        with self.db.session() as session:
            staff = domain.authenticate(session, email, password)
            return staff_out.dump(staff) if staff else None

    @rpc
    def set_public_key(self, slug, public_key):
        with self.db.session() as session:
            return associations_out.dump(domain.set_public_key(session, slug, public_key))

    @rpc(expected_exceptions=DomainError)
    def set_encryption_key(self, slug, encryption_key):
        with self.db.session() as session:
            return associations_out.dump(domain.set_encryption_key(session, slug, encryption_key))

    @rpc
    def snapshot(self, sessions=False):
        """What a read model starts from (tansiq.readmodel): every association and staff member with its
        version, and with `sessions` the sessions still open (the gateway's). Asked once at start."""
        with self.db.session() as session:
            return changes.snapshot(session, utcnow(), with_sessions=sessions, session_lifetime=signin.ABSOLUTE)

    # --- sessions of the web app (the gateway keeps only the cookie; see signin.py) -----------

    @rpc
    def sign_in(self, email, password, address=""):
        """{token, csrf_token, staff} or None for wrong credentials; DomainError too_many_attempts when locked."""
        with self.db.session() as session:
            opened = signin.sign_in(session, utcnow(), email, password, address)
            return _session_out(opened) if opened else None

    @rpc
    def session_staff(self, token):
        """{staff, csrf_token} of a live session, else None (signed out, timed out, revoked, deactivated).
        For tools and tests: the gateway checks sessions against its read model alone."""
        with self.db.session() as session:
            found = signin.current(session, utcnow(), token)
            if not found:
                return None
            return {"staff": staff_out.dump(found[0]), "csrf_token": found[1],
                    "created_at": session.get(StaffSession, signin.token_hash(token)).created_at.isoformat()}

    @rpc
    def sign_out(self, token):
        with self.db.session() as session:
            signin.sign_out(session, utcnow(), token)

    @rpc
    def change_password(self, token, current_password, new_password):
        """Every session of hers ends; the answer is this browser's new session and the hashes of those ended."""
        with self.db.session() as session:
            changed = signin.change_password(session, utcnow(), token, current_password, new_password)
            return {**_session_out(changed), "ended_token_hashes": changed["ended_token_hashes"]}

    @rpc
    def deactivate_staff(self, staff_id):
        """She can no longer sign in; her open sessions end now."""
        with self.db.session() as session:
            return staff_out.dump(signin.deactivate(session, utcnow(), domain.get_staff(session, staff_id)))


def _session_out(opened):
    return {"token": opened["token"], "csrf_token": opened["csrf_token"], "staff": staff_out.dump(opened["staff"]),
            "created_at": opened["created_at"]}
