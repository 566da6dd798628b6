"""Who acts, and what each role may do: the one role matrix and the one `Actor` contract.

Roles are held inside one association. The gateway reads MATRIX to declare each route's
permission and to shape navigation and buttons; every owning service checks again with
`actor.require(permission)` where the data lives. Across associations the services'
own rules (a beneficiary's association, a referral's parties) still apply on top.
"""

from dataclasses import dataclass, field

from marshmallow import EXCLUDE, Schema, fields, post_load, validate

from tansiq.contracts.fields import LANGUAGES, ROLES, identifier, slug
from tansiq.errors import Forbidden

CASE_WORKER, COORDINATOR, EVENTS_MANAGER, ADMIN = ROLES

# permission -> the roles that hold it. A staff member holds the union of her roles' permissions.
MATRIX = {
    # a beneficiary's record, listening sessions, consents, audit trail, disclosures, duplicates
    "cases.read": {CASE_WORKER},
    "cases.write": {CASE_WORKER},
    "cases.erase": {ADMIN},
    # her right of access (law 09-08): everything held about her, decrypted, in one document
    "cases.export": {ADMIN},
    # sharing without a covering consent: recorded, and only by someone answerable for it
    "cases.share_without_consent": {COORDINATOR, ADMIN},
    # referrals sent and received, with what was shared
    "referrals.read": {CASE_WORKER},
    "referrals.act": {CASE_WORKER},
    "deadlines.manage": {COORDINATOR, ADMIN},  # the working-day calendar that drives referral deadlines
    "calendar.edit": {COORDINATOR, EVENTS_MANAGER},
    "network.figures": {COORDINATOR, ADMIN},
    "staff.manage": {ADMIN},
    "staff.self": set(ROLES),  # one's own inbox and preferences
}
PERMISSIONS = tuple(MATRIX)


def roles_with(permission):
    try:
        return MATRIX[permission]
    except KeyError:
        raise ValueError(f"unknown permission {permission!r}") from None


def allows(roles, permission):
    return bool(roles_with(permission) & set(roles or ()))


def require(roles, permission):
    """Forbidden (reason role_required) unless one of `roles` holds `permission`."""
    if not allows(roles, permission):
        wanted = " or ".join(sorted(role.replace("_", " ") for role in roles_with(permission)))
        raise Forbidden(f"this needs the role of {wanted}", details={"reason": "role_required",
                                                                      "permission": permission})


@dataclass(frozen=True)
class Actor:
    """A staff member acting inside her association, or (via_partner) a partner system acting for its own."""

    association: str
    id: str | None = None
    roles: frozenset = field(default_factory=frozenset)
    name: str = ""
    language: str = "fr"
    via_partner: bool = False

    @classmethod
    def partner(cls, association, by=None):
        return cls(association=association, id=by, via_partner=True)

    def can(self, permission):
        return allows(self.roles, permission)

    def require(self, permission):
        require(self.roles, permission)
        return self

    def to_dict(self):
        return {"id": self.id, "association": self.association, "roles": sorted(self.roles), "name": self.name,
                "language": self.language}


class ActorSchema(Schema):
    """The claims an actor assertion carries about the staff member (tansiq.identity signs them)."""

    class Meta:
        unknown = EXCLUDE

    id = identifier(required=True)
    association = slug(required=True)
    roles = fields.List(fields.String(validate=validate.OneOf(ROLES)), required=True)
    name = fields.String(load_default="", validate=validate.Length(max=200))
    language = fields.String(load_default="fr", validate=validate.OneOf(LANGUAGES))

    @post_load
    def _actor(self, data, **kwargs):
        return Actor(association=data["association"], id=data["id"], roles=frozenset(data["roles"]),
                     name=data["name"], language=data["language"])
