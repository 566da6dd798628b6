"""JSON API of the directory the staff pages need: which associations offer a service."""

from services.gateway.access import requires
from services.gateway.schemas import ServicesQuerySchema
from services.gateway.web import api, json_response
from tansiq.readmodel import DirectoryView


class DirectoryApi:
    directory = DirectoryView(sessions=True)  # as GatewayService declares it; listed so the mixin stands alone

    @api("GET", "/api/directory/services")
    @requires(None)  # any signed-in staff member: the network's public offer, nothing personal
    def directory_services(self, request, actor):
        """Active services of a category (optionally in one city): the recipients a referral or consent may name."""
        query = ServicesQuerySchema().load(request.args.to_dict())
        services = self.directory.find_services(query["category"], city=query["city"])
        return json_response([s for s in services if s.get("status", "active") == "active"])
