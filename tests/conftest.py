"""Test tiers: tests/unit (no broker), tests/integration (real RabbitMQ + databases), tests/browser (Chromium).

The PostgreSQL and browser tiers skip where their server/browser is missing, except when
TANSIQ_REQUIRE_POSTGRES=1 / TANSIQ_REQUIRE_BROWSER=1 (set by .ci/run): then a missing one fails.
"""

import logging
import os
import sys
import warnings
from pathlib import Path

import pytest

warnings.filterwarnings("ignore", message=r"\s*Eventlet is deprecated")
logging.getLogger("amqp").setLevel(logging.ERROR)  # "method during closing channel": harmless noise
sys.path.insert(0, str(Path(__file__).resolve().parent))

from harness import Network, management_available, postgres_available  # noqa: E402


def require_or_skip(available, env_var, what):
    if available:
        return
    if os.environ.get(env_var) == "1":
        pytest.fail(f"{what} is required here ({env_var}=1) but is not reachable")
    pytest.skip(f"{what} not reachable")


def pytest_runtest_setup(item):
    if item.get_closest_marker("postgres"):
        require_or_skip(_postgres_up(), "TANSIQ_REQUIRE_POSTGRES", "PostgreSQL")


_pg_state = []


def _postgres_up():
    if not _pg_state:
        _pg_state.append(postgres_available())
    return _pg_state[0]


@pytest.fixture(scope="session")
def broker_admin():
    if not management_available():
        pytest.fail("the RabbitMQ management API (port 15672) is needed: rabbitmq-plugins enable rabbitmq_management")


@pytest.fixture(scope="session")
def postgres():
    require_or_skip(_postgres_up(), "TANSIQ_REQUIRE_POSTGRES", "PostgreSQL")


@pytest.fixture
def network_factory(broker_admin):
    networks = []

    def make(**kwargs):
        network = Network(**kwargs)
        networks.append(network)
        return network

    yield make
    for network in networks:
        failed_logs = os.environ.get("TANSIQ_TEST_SHOW_LOGS")
        if failed_logs:
            for service in network.procs:
                print(f"----- {service} -----\n{network.log(service)}")
        network.close()
