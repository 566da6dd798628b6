"""Directory service: thin RPC entrypoints over services.directory.domain."""

from nameko.rpc import rpc

from services.directory import domain
from services.directory.schemas import AssociationSchema, OfferedServiceSchema, StaffSchema
from tansiq.db import Database
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
