"""Directory messages: associations of the network and the services they offer."""


from tansiq.contracts import ContractSchema, contract
from tansiq.contracts.fields import bounded_list, slug, text


@contract(
    "ma.tansiq.association.registered.v1",
    "ma.tansiq.association.updated.v1",
    summary="An association joined the network or changed its public details.",
    partners="receive",
    example={"slug": "amal-safi", "name_ar": "جمعية أمل", "name_fr": "Association Amal", "city": "Safi"},
)
class AssociationChanged(ContractSchema):
    slug = slug(required=True)
    name_ar = text(200, required=True)
    name_fr = text(200, required=True)
    city = text(100, required=True)
    categories = bounded_list(text(80), load_default=list)
