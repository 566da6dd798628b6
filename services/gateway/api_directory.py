"""JSON API of the directory the staff pages need: which associations offer a service."""

from services.directory.schemas import OfferedServiceSchema
from services.gateway.routes import SIGNED_IN, route
from services.gateway.schemas import ServicesQuerySchema
from services.gateway.web import json_response
from tansiq.readmodel import DirectoryView


class DirectoryApi:
    directory = DirectoryView(sessions=True)  # as GatewayService declares it; listed so the mixin stands alone

    # Any signed-in staff member: the network's public offer, nothing personal.
    @route("GET", "/api/directory/services", auth=SIGNED_IN, tag="directory", query=ServicesQuerySchema,
           answer=(200, [OfferedServiceSchema]),
           summary="Active services of a category (optionally in a city): whom a referral or consent may name")
    def directory_services(self, request, query):
        """Active services of a category (optionally in one city): the recipients a referral or consent may name."""
        services = self.directory.find_services(query["category"], city=query["city"])
        return json_response([s for s in services if s.get("status", "active") == "active"])
