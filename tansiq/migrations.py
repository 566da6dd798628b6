"""Alembic, per service: each service's migrations/ folder, its own version table, its own database."""

import importlib
from pathlib import Path

from alembic import command
from alembic.config import Config

from tansiq import config as tansiq_config
from tansiq.messaging.store import messaging_metadata

SERVICES_DIR = Path(__file__).resolve().parent.parent / "services"
DATA_SERVICES = ("directory", "intake", "referrals", "events", "notifications")


def version_table(service):
    return f"alembic_version_{service}"


def alembic_config(service, db_uri=None):
    cfg = Config()
    cfg.set_main_option("script_location", str(SERVICES_DIR / service / "migrations"))
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


def upgrade(service, db_uri=None, revision="head"):
    command.upgrade(alembic_config(service, db_uri), revision)


def revision(service, message, db_uri=None):
    """Autogenerate a new migration for `service` from its models (developer tool)."""
    command.revision(alembic_config(service, db_uri), message=message, autogenerate=True)
