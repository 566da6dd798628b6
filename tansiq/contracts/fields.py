"""Field shapes reused across contracts."""

from marshmallow import fields, validate

SLUG = validate.Regexp(r"^[a-z0-9][a-z0-9-]{1,62}$", error="must be an association slug")
URGENCIES = ("urgent", "high", "normal", "low")


def slug(**kwargs):
    return fields.String(validate=SLUG, **kwargs)


def urgency(**kwargs):
    return fields.String(validate=validate.OneOf(URGENCIES), **kwargs)


def identifier(**kwargs):
    return fields.String(validate=validate.Length(min=1, max=64), **kwargs)


def text(max_length=2000, min_length=0, **kwargs):
    return fields.String(validate=validate.Length(min=min_length, max=max_length), **kwargs)
