"""Every service's alembic history (its own branch + the shared `messaging` branch) builds exactly its models.

Fresh SQLite and PostgreSQL databases migrate to the schema of the models (autogenerate finds
nothing to do), and a database created before the outbox and inbox moved to the shared branch
(its initial migration made them; its version table knows only that revision) upgrades in place.
"""

import uuid

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from harness import create_pg_database, drop_pg_database
from sqlalchemy import MetaData, insert, select, text

from tansiq import migrations
from tansiq.db import make_engine
from tansiq.envelope import utcnow
from tansiq.messaging.store import InboxMessage, OutboxMessage, messaging_metadata

SHARED_BRANCH_BASE = "habits_0001"
SHARED_REVISION = "relayperf_0001"  # the head of the shared branch


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def database_url(request, tmp_path):
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'service.sqlite'}"
        return
    name = f"tansiq_migrations_{uuid.uuid4().hex[:10]}"
    url = create_pg_database(name)
    yield url
    drop_pg_database(name)


def schema_differences(service, url):
    """What alembic autogenerate would still change to match the models (an empty list: nothing)."""
    engine = make_engine(url)
    try:
        with engine.connect() as connection:
            context = MigrationContext.configure(connection, opts={
                "compare_type": True, "version_table": migrations.version_table(service)})
            metadata = MetaData()
            for part in migrations.target_metadata(service):
                for table in part.tables.values():
                    table.to_metadata(metadata)
            return compare_metadata(context, metadata)
    finally:
        engine.dispose()


def recorded_revisions(service, url):
    engine = make_engine(url)
    try:
        with engine.connect() as connection:
            table = migrations.version_table(service)
            return {row[0] for row in connection.execute(text(f"SELECT version_num FROM {table}"))}
    finally:
        engine.dispose()


def service_head(service):
    return migrations.service_head(migrations.alembic_config(service, "sqlite://"))


@pytest.mark.parametrize("service", migrations.DATA_SERVICES)
def test_a_fresh_database_migrates_to_the_models(service, database_url):
    migrations.upgrade(service, database_url)
    assert schema_differences(service, database_url) == []
    assert recorded_revisions(service, database_url) == {service_head(service), SHARED_REVISION}


@pytest.mark.parametrize("service", migrations.DATA_SERVICES)
def test_a_database_from_before_the_shared_branch_upgrades_in_place(service, database_url):
    # What the old initial migration left: the service's tables, the outbox and inbox, one revision recorded.
    migrations.upgrade(service, database_url, revision=service_head(service))
    engine = make_engine(database_url)
    messaging_metadata.create_all(engine, tables=[OutboxMessage.__table__, InboxMessage.__table__])
    with engine.begin() as connection:
        connection.exec_driver_sql("DROP INDEX ix_outbox_pending")  # made later, by relayperf_0001
        connection.execute(insert(OutboxMessage.__table__).values(
            message_id="kept", type="t.v1", exchange="x", routing_key="t.v1", body="{}", state="pending",
            attempts=0, created_at=utcnow()))
    assert recorded_revisions(service, database_url) == {service_head(service)}

    migrations.upgrade(service, database_url)  # what `tansiq migrate` runs

    assert recorded_revisions(service, database_url) == {service_head(service), SHARED_REVISION}
    assert schema_differences(service, database_url) == []
    with engine.connect() as connection:  # the tables were kept, not re-created
        assert connection.execute(select(OutboxMessage.message_id)).scalars().all() == ["kept"]
    engine.dispose()


def test_every_service_history_has_exactly_its_branch_and_the_shared_one():
    for service in migrations.DATA_SERVICES:
        scripts = ScriptDirectory.from_config(migrations.alembic_config(service, "sqlite://"))
        heads = set(scripts.get_heads())
        assert heads == {service_head(service), SHARED_REVISION}, service
        assert migrations.MESSAGING_BRANCH in scripts.get_revision(SHARED_BRANCH_BASE).branch_labels


def test_no_service_migration_creates_the_outbox_or_inbox():
    """The shared branch is the one place for the kernel's tables."""
    for path in migrations.SERVICES_DIR.glob("*/migrations/versions/*.py"):
        source = path.read_text()
        for table in ("outbox", "inbox"):
            assert f"create_table('{table}'" not in source and f'create_table("{table}"' not in source, path
