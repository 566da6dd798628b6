"""Who must know what: the one table of notification rules.

Each message type maps to a kind, an urgency and the audience to tell. Audiences
are resolved against the directory (roles of associations) or name staff directly.
`params` picks the few fields a message may show: association slugs, deadlines,
event titles — never a beneficiary's name, contact, story or a free-text note.
"""

from collections.abc import Callable
from dataclasses import dataclass, field

from tansiq.errors import NotFound

URGENT, HIGH, NORMAL, LOW = "urgent", "high", "normal", "low"
CASE_WORKER, COORDINATOR, EVENTS_MANAGER = "case_worker", "coordinator", "events_manager"


@dataclass(frozen=True)
class Role:
    """Staff having `role` at the association(s) named by `field` (a slug or a list of slugs)."""

    field: str
    role: str


@dataclass(frozen=True)
class Staff:
    """Staff named by `field` (an id or a list of ids)."""

    field: str


@dataclass(frozen=True)
class Network:
    """Staff having one of `roles` at every association of the network."""

    roles: tuple


@dataclass(frozen=True)
class Rule:
    kind: str
    audience: tuple
    urgency: Callable[[dict], str]
    params: Callable[[dict], dict]
    link: Callable[[dict], str]
    associations: Callable[[dict], list] = field(default=lambda data: [])  # whose webhooks hear of it



BENEFICIARY_LINK = "/beneficiaries/"


def beneficiary_link(beneficiary_id):
    """The link of what is told about her: what her erasure looks for (domain.forget_beneficiary)."""
    return BENEFICIARY_LINK + beneficiary_id

def fixed(level):
    return lambda data: level


def referral_urgency(data):
    return URGENT if data.get("urgency") == URGENT else NORMAL


def referral_params(data):
    return {"from_association": data["from_association"], "to_association": data["to_association"]}


def referral_sent_params(data):
    deadline = data.get("ack_due") or data.get("response_due")
    return {**referral_params(data), "deadline": deadline.isoformat() if deadline else None}


def referral_link(data):
    return f"/referrals/{data['referral_id']}"


def both_sides(data):
    return [data["from_association"], data["to_association"]]


def event_params(data):
    return {"event_title": data["title"], "starts_at": data["starts_at"].isoformat()}


def event_link(data):
    """The event's own page (the gateway's /calendar/events/<id>): what it is, when, where, who organises it."""
    return f"/calendar/events/{data['event_id']}"


SENDER_CASE_WORKERS = Role("from_association", CASE_WORKER)
RECIPIENT_CASE_WORKERS = Role("to_association", CASE_WORKER)


def transition(kind, *extra_audience, urgency=fixed(NORMAL)):
    """Every referral transition tells the sender's case workers (plus any extra audience)."""
    return Rule(kind, (SENDER_CASE_WORKERS, *extra_audience), urgency, referral_params, referral_link, both_sides)


RULES = {
    "ma.tansiq.beneficiary.registered.v1": Rule(
        "beneficiary.registered", (Role("association", CASE_WORKER),),
        urgency=lambda data: URGENT if data["urgency"] == URGENT else NORMAL,
        params=lambda data: {"association": data["association"]},
        link=lambda data: beneficiary_link(data["beneficiary_id"]),
    ),
    "ma.tansiq.referral.sent.v1": Rule(
        "referral.sent", (RECIPIENT_CASE_WORKERS,), referral_urgency, referral_sent_params, referral_link,
        both_sides,
    ),
    "ma.tansiq.referral.acknowledged.v1": transition("referral.acknowledged"),
    "ma.tansiq.referral.accepted.v1": transition("referral.accepted"),
    "ma.tansiq.referral.declined.v1": transition("referral.declined", urgency=fixed(HIGH)),
    "ma.tansiq.referral.started.v1": transition("referral.started"),
    "ma.tansiq.referral.completed.v1": transition("referral.completed"),
    "ma.tansiq.referral.closed.v1": transition("referral.closed"),
    # The sender withdrew: the recipient must stop working on it too.
    "ma.tansiq.referral.withdrawn.v1": transition("referral.withdrawn", RECIPIENT_CASE_WORKERS),
    "ma.tansiq.referral.expired.v1": transition("referral.expired", urgency=fixed(HIGH)),
    # The sender closed a declined or expired referral: her colleagues stop waiting for it.
    "ma.tansiq.referral.dismissed.v1": transition("referral.dismissed"),
    # A deadline is near: the recipient side is the one that has to act.
    "ma.tansiq.referral.reminder_due.v1": Rule(
        "referral.reminder_due", (RECIPIENT_CASE_WORKERS,), fixed(HIGH), referral_params, referral_link, both_sides,
    ),
    "ma.tansiq.referral.escalated.v1": Rule(
        "referral.escalated", (Role("from_association", COORDINATOR), Role("to_association", COORDINATOR)),
        fixed(URGENT), referral_params, referral_link, both_sides,
    ),
    # Recipients must stop using and erase what was shared: high, but no detail of whose consent.
    # The link is their referrals list, where the erased data shows (a consent is not theirs to open).
    "ma.tansiq.consent.revoked.v1": Rule(
        "consent.revoked", (Role("recipients", CASE_WORKER),), fixed(HIGH),
        params=lambda data: {"association": data["association"]},
        link=lambda data: "/referrals",
        associations=lambda data: list(data["recipients"]),
    ),
    "ma.tansiq.event.reminder_due.v1": Rule(
        "event.reminder_due", (Staff("staff_ids"),), fixed(NORMAL), event_params, event_link,
    ),
    **{overlaps: Rule(  # v1 (one pair) is still understood for messages queued before v2
        "event.overlap_detected", (Role("organisers", EVENTS_MANAGER),), fixed(NORMAL),
        params=lambda data: {"city": data["city"], "organisers": list(data["organisers"])},
        link=event_link, associations=lambda data: list(data["organisers"]),
    ) for overlaps in ("ma.tansiq.event.overlap_detected.v1", "ma.tansiq.event.overlap_detected.v2")},
    # The directory's news: coordinators across the network learn who joined, in their digest.
    "ma.tansiq.association.registered.v1": Rule(
        "association.joined", (Network((COORDINATOR,)),), fixed(LOW),
        params=lambda data: {"association": data["slug"], "city": data["city"]},
        link=lambda data: "/",
    ),
    "ma.tansiq.event.published.v1": Rule(
        "event.published", (Network((COORDINATOR, EVENTS_MANAGER)),), fixed(LOW),
        params=lambda data: {**event_params(data), "association": data["organiser"], "city": data["city"]},
        link=event_link,
    ),
}

# The only keys a rendered message may ever see (render.py enforces it again).
ALLOWED_PARAMS = frozenset(
    {"association", "from_association", "to_association", "organisers", "deadline", "event_title", "starts_at",
     "city", "names"}
)


def rule_for(type_):
    return RULES.get(type_)


def audience_of(rule, data, directory):
    """The staff (directory dicts, each once) that `rule` tells about `data`."""
    found = {}

    def add(staff_list):
        for staff in staff_list:
            found.setdefault(staff["id"], staff)

    for target in rule.audience:
        if isinstance(target, Role):
            for slug in as_list(data.get(target.field)):
                add(directory.list_staff(slug, role=target.role))
        elif isinstance(target, Staff):
            add(filter(None, (_known_staff(directory, staff_id) for staff_id in as_list(data.get(target.field)))))
        elif isinstance(target, Network):
            for association in directory.list_associations():
                for role in target.roles:
                    add(directory.list_staff(association["slug"], role=role))
    return [staff for staff in found.values() if staff]


def _known_staff(directory, staff_id):
    """The staff member, or None if the directory no longer knows them (any other failure is retried)."""
    try:
        return directory.get_staff(staff_id)
    except NotFound:  # registered with nameko: comes back as itself over RPC
        return None


def as_list(value):
    if value is None:
        return []
    return list(value) if isinstance(value, (list, tuple)) else [value]
