"""Shapes of directory data over RPC and HTTP."""

from marshmallow import Schema, fields


class OfferedServiceSchema(Schema):
    id = fields.String()
    association = fields.String(attribute="association_slug")
    name = fields.String()
    category = fields.String()
    description = fields.String()
    eligibility = fields.String()
    languages = fields.List(fields.String())
    schedule = fields.String()
    status = fields.String()
    city = fields.Function(lambda service: service.association.city)


class AssociationSchema(Schema):
    slug = fields.String()
    name_ar = fields.String()
    name_fr = fields.String()
    city = fields.String()
    address = fields.String()
    phone = fields.String()
    email = fields.String()
    integration = fields.String()
    public_key = fields.String(allow_none=True)
    encryption_key = fields.String(allow_none=True)
    services = fields.List(fields.Nested(OfferedServiceSchema(exclude=("city",))))


class StaffSchema(Schema):
    id = fields.String()
    association = fields.String(attribute="association_slug")
    name = fields.String()
    email = fields.String()
    phone = fields.String()
    language = fields.String()
    roles = fields.List(fields.String())
