"""The web app's shell: home page and static files (each area adds its pages in its own mixin)."""

import mimetypes

from werkzeug.exceptions import NotFound
from werkzeug.security import safe_join
from werkzeug.wrappers import Response

from services.gateway.access import can, signed_in_or_none
from services.gateway.web import HERE, api, render, request_language

STATIC_DIR = HERE / "static"


class PagesApi:
    @api("GET", "/")
    def home(self, request):
        staff = signed_in_or_none(request)  # the links follow her roles
        return render("home.html", request_language(request, staff), staff=staff, can=can(staff))

    @api("GET", "/static/<path:path>")
    def static(self, request, path):
        full = safe_join(str(STATIC_DIR), path)  # refuses ../ escapes
        if full is None:
            raise NotFound()
        try:
            with open(full, "rb") as handle:
                body = handle.read()
        except (FileNotFoundError, IsADirectoryError):
            raise NotFound() from None
        mimetype = mimetypes.guess_type(full)[0] or "application/octet-stream"
        return Response(body, mimetype=mimetype, headers={"Cache-Control": "public, max-age=300"})
