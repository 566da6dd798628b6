"""The web app's shell: home page and static files (each area adds its pages in its own mixin)."""

import mimetypes

from werkzeug.exceptions import NotFound
from werkzeug.security import safe_join
from werkzeug.wrappers import Response

from services.gateway.pages import page
from services.gateway.routes import OPTIONAL, PUBLIC, route
from services.gateway.web import HERE

STATIC_DIR = HERE / "static"


class PagesApi:
    @route("GET", "/", auth=OPTIONAL, page=True, summary="Home: the links her roles open")
    def home(self, request, staff):
        return page("home.html", request, staff)

    @route("GET", "/static/<path:path>", auth=PUBLIC, summary="The web app's scripts, styles and fonts")
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
