"""`tansiq events import FILE|URL --association SLUG`: the fastest way to load an association's
existing calendar, straight into the events database (services/events/imports.py), with progress.

The association must exist in the directory; its events are placed in its city unless --city
says otherwise. The same job record as the HTTP route is kept (GET /api/calendar-imports/{id}).
"""

import sys
from pathlib import Path

from tansiq.db import Sessions, session_scope
from tansiq.demo import service_database
from tansiq.envelope import utcnow


def main(source, association, city=None, out=print):
    from services.directory.models import Association
    from services.events import imports
    from tansiq.errors import DomainError

    with service_database("directory") as engine, session_scope(engine) as session:
        known = {row.slug: row.city for row in session.query(Association)}
    if association not in known:
        print(f"error: no association {association!r} in the directory", file=sys.stderr)
        return 1
    is_url = source.startswith(("http://", "https://"))
    if not is_url:
        path = Path(source)
        if not path.is_file() or path.stat().st_size > imports.MAX_BYTES:
            print(f"error: {source} is not a file of at most {imports.MAX_BYTES // (1024 * 1024)} MB", file=sys.stderr)
            return 1
        text = imports.decode(path.read_bytes())
    else:
        try:
            imports.check_url(source)
        except DomainError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 1
        text = source

    def progress(job):
        out(f"  {job['processed']:,}/{job['total']:,} series: {job['created']:,} created, {job['updated']:,} "
            f"updated, {job['unchanged']:,} unchanged, {job['skipped']:,} skipped, {job['error_count']:,} errors")

    with service_database("events") as engine:
        sessions = Sessions(engine)
        with sessions.session() as session:
            job_id = imports.start(session, utcnow(), association, source).id
        out(f"import {job_id}: {source} into {association}'s calendar")
        report = imports.run(sessions.session, utcnow, job_id, text, set(known), city or known[association] or "",
                             progress=progress)
    for error in report["errors"]:
        out(f"  line {error['line']}: {error['uid'] or '(no UID)'}: {error['message']}")
    if report["status"] != "done":
        print(f"error: {report['message']}", file=sys.stderr)
        return 1
    out(f"done: {report['created']:,} created, {report['updated']:,} updated, {report['unchanged']:,} unchanged, "
        f"{report['skipped']:,} skipped (private), {report['error_count']:,} not imported")
    return 0
