"""Alembic, per service: each service's migrations/ folder, its own version table, its own database.

Every service's history has two branches: its own (services/<service>/migrations/versions) and
the kernel's `messaging` branch (tansiq/messaging/migrations: the outbox and inbox tables), so
a database is up to date at `heads`, not `head`.
"""

import importlib
import os
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.script import ScriptDirectory

from tansiq import config as tansiq_config
from tansiq.messaging.store import messaging_metadata

SERVICES_DIR = Path(__file__).resolve().parent.parent / "services"
MESSAGING_VERSIONS = Path(__file__).resolve().parent / "messaging" / "migrations"
MESSAGING_BRANCH = "messaging"  # the branch label of the revisions in MESSAGING_VERSIONS
DATA_SERVICES = ("directory", "intake", "referrals", "events", "notifications")


def version_table(service):
    return f"alembic_version_{service}"


def alembic_config(service, db_uri=None):
    cfg = Config()
    cfg.set_main_option("script_location", str(SERVICES_DIR / service / "migrations"))
    # Split version_locations on os.pathsep: "path_separator" for alembic >= 1.16, the other before it.
    cfg.set_main_option("path_separator", "os")
    cfg.set_main_option("version_path_separator", "os")
    cfg.set_main_option("version_locations", os.pathsep.join(
        [str(SERVICES_DIR / service / "migrations" / "versions"), str(MESSAGING_VERSIONS)]))
    cfg.set_main_option("sqlalchemy.url", (db_uri or tansiq_config.load(service)["DB_URI"]).replace("%", "%%"))
    cfg.attributes["service"] = service
    return cfg


def target_metadata(service):
    models = importlib.import_module(f"services.{service}.models")
    return [models.Base.metadata, messaging_metadata]


def run_env(context):
    """Body of every service's migrations/env.py (online mode only: we always have a URL)."""
    from tansiq.db import make_engine

    cfg = context.config
    service = cfg.attributes.get("service") or Path(cfg.get_main_option("script_location")).parent.name
    engine = make_engine(cfg.get_main_option("sqlalchemy.url"))
    with engine.connect() as connection:
        context.configure(
            connection=connection,
            target_metadata=target_metadata(service),
            version_table=version_table(service),
            render_as_batch=connection.dialect.name == "sqlite",  # SQLite alters tables by copy
        )
        with context.begin_transaction():
            context.run_migrations()
    engine.dispose()


def upgrade(service, db_uri=None, revision="heads"):
    command.upgrade(alembic_config(service, db_uri), revision)


def service_head(cfg):
    """The head of the service's own branch (the other head is the shared messaging branch)."""
    scripts = ScriptDirectory.from_config(cfg)
    heads = [head for head in scripts.get_heads()
             if Path(scripts.get_revision(head).path).parent != MESSAGING_VERSIONS]
    if len(heads) != 1:
        raise RuntimeError(f"expected one head in the service's own migrations, found {heads}")
    return heads[0]


def revision(service, message, db_uri=None):
    """Autogenerate a new migration for `service` from its models (developer tool).

    It goes on the service's own branch; a change to the outbox or inbox tables is a revision
    written by hand in tansiq/messaging/migrations instead."""
    cfg = alembic_config(service, db_uri)
    command.revision(cfg, message=message, autogenerate=True, head=service_head(cfg))
