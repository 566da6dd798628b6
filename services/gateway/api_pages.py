"""The web app's shell: home page and static files (each area adds its pages in its own mixin)."""

import mimetypes

from werkzeug.exceptions import NotFound
from werkzeug.security import safe_join
from werkzeug.wrappers import Response

from services.gateway.web import HERE, api, render, request_language

STATIC_DIR = HERE / "static"


class PagesApi:
    @api("GET", "/")
    def home(self, request):
        return render("home.html", request_language(request))

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
