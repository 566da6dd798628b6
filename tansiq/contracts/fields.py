"""Field shapes reused across contracts."""

from marshmallow import fields, validate

SLUG = validate.Regexp(r"^[a-z0-9][a-z0-9-]{1,62}$", error="must be an association slug")
URGENCIES = ("urgent", "high", "normal", "low")
# The network's shared vocabulary, one place for every service and the partner contract.
CATEGORIES = (  # services associations offer; also the needs of a listening session and consent purposes
    "listening_orientation", "legal_orientation", "psychological_support", "medical_care", "shelter",
    "vocational_training", "literacy", "project_support", "marketing", "citizenship_training",
)
ROLES = ("case_worker", "coordinator", "events_manager", "admin")
LANGUAGES = ("ar", "fr", "en")


def slug(**kwargs):
    return fields.String(validate=SLUG, **kwargs)


def urgency(**kwargs):
    return fields.String(validate=validate.OneOf(URGENCIES), **kwargs)


def identifier(**kwargs):
    return fields.String(validate=validate.Length(min=1, max=64), **kwargs)


def text(max_length=2000, min_length=0, **kwargs):
    return fields.String(validate=validate.Length(min=min_length, max=max_length), **kwargs)
