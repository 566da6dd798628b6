"""The deployment files stay consistent with each other and with deploy/config/.

There is no Docker engine or Kubernetes here, so the files are parsed and cross-checked;
the set-up scripts that can run without changing the machine are run for real.
"""

import base64
import json
import os
import re
import shutil
import socket
import stat
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tansiq import config as tansiq_config
from tansiq.transport import TransportKeys

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
SERVICES = ("directory", "intake", "referrals", "events", "notifications", "gateway")
INFRA = ("rabbitmq", "postgres", "mailpit")
ONE_OFF = ("migrate",)
# ${VAR} or ${VAR:-default}; "$${VAR}" is compose's escape for a literal "$" (not interpolated).
COMPOSE_VAR = re.compile(r"(?<!\$)\$\{([A-Za-z_][A-Za-z0-9_]*)")
CONFIG_VAR = re.compile(r"\$\{([A-Z0-9_]+)")
CREDENTIALS_IN_URI = re.compile(r"://[^/\s:@]+:[^/\s@]+@")
SECRET_NAME = re.compile(r"PASSWORD|PASSWD|SECRET|TOKEN|_KEY$", re.IGNORECASE)


@pytest.fixture(scope="module")
def compose():
    return yaml.safe_load((ROOT / "docker-compose.yml").read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def env_example():
    """Variables of deploy/env.example: {name: value}."""
    variables = {}
    for line in (DEPLOY / "env.example").read_text(encoding="utf-8").splitlines():
        match = re.match(r"^([A-Z][A-Z0-9_]*)=(.*)$", line)
        if match:
            variables[match.group(1)] = match.group(2)
    return variables


@pytest.fixture(scope="module")
def k8s():
    documents = []
    for path in sorted((DEPLOY / "k8s").glob("*.yaml")):
        documents += [(path.name, doc) for doc in yaml.safe_load_all(path.read_text("utf-8")) if doc]
    return documents


def strings(node):
    """Every string (keys included) of a parsed YAML tree."""
    if isinstance(node, dict):
        for key, value in node.items():
            yield str(key)
            yield from strings(value)
    elif isinstance(node, list):
        for item in node:
            yield from strings(item)
    elif isinstance(node, str):
        yield node


def environment_items(service):
    environment = service.get("environment") or {}
    if isinstance(environment, list):
        environment = dict(item.split("=", 1) if "=" in item else (item, None) for item in environment)
    return environment.items()


# --- docker-compose.yml ---------------------------------------------------------------------

def test_compose_names_every_service(compose):
    assert set(compose["services"]) == set(SERVICES + INFRA + ONE_OFF)


def test_long_running_services_have_a_healthcheck(compose):
    for name, service in compose["services"].items():
        if name in ONE_OFF:
            assert service.get("restart") == "no", f"{name} is a one-off job"
            continue
        test = service.get("healthcheck", {}).get("test")
        assert test, f"{name} has no healthcheck"
        assert not service["healthcheck"].get("disable")


def test_services_check_their_health_the_documented_way(compose):
    services = compose["services"]
    for name in SERVICES[:-1]:
        assert services[name]["healthcheck"]["test"] == ["CMD", "tansiq", "health", name]
        assert services[name]["command"] == ["run", name]
    assert "/healthz" in " ".join(services["gateway"]["healthcheck"]["test"])
    assert "rabbitmq-diagnostics -q ping" in " ".join(services["rabbitmq"]["healthcheck"]["test"])
    assert "pg_isready" in " ".join(services["postgres"]["healthcheck"]["test"])


def test_depends_on_waits_for_health_or_completion(compose):
    services = compose["services"]
    for name, service in services.items():
        depends_on = service.get("depends_on", {})
        assert isinstance(depends_on, dict), f"{name}: depends_on without conditions"
        for dependency, spec in depends_on.items():
            assert dependency in services, f"{name} depends on unknown {dependency}"
            expected = "service_completed_successfully" if dependency in ONE_OFF else "service_healthy"
            assert spec.get("condition") == expected, f"{name} -> {dependency}"


def test_services_start_after_migrations_which_run_once(compose):
    services = compose["services"]
    for name in SERVICES[:-1]:
        depends_on = services[name]["depends_on"]
        assert {"rabbitmq", "postgres", "migrate"} <= set(depends_on), name
    assert services["migrate"]["command"] == ["migrate"]
    assert "postgres" in services["migrate"]["depends_on"]
    # Migrating on every container start is what the one-off job avoids.
    for name in SERVICES:
        assert "migrate" not in " ".join(map(str, services[name].get("command", []))), name
        assert "entrypoint" not in services[name], name
    assert "8000:8000" in services["gateway"]["ports"]


def test_compose_holds_no_password(compose):
    for text in strings(compose):
        assert not CREDENTIALS_IN_URI.search(text), f"credentials in {text!r}"
    for name, service in compose["services"].items():
        for key, value in environment_items(service):
            if SECRET_NAME.search(key):
                assert value is None or COMPOSE_VAR.fullmatch(value or ""), f"{name}: {key} set literally"
        if name in SERVICES + ONE_OFF + ("rabbitmq", "postgres"):
            assert service.get("env_file") in ("deploy/.env", ["deploy/.env"]), name


def test_keys_are_files_given_only_to_their_service(compose):
    secrets = compose["secrets"]
    for name, service in compose["services"].items():
        for secret in service.get("secrets", []):
            assert secret in secrets, f"{name} uses undeclared secret {secret}"
    assert compose["services"]["intake"]["secrets"] == ["intake_data_key", "actor_public_key", "transport_keys"]
    assert compose["services"]["gateway"]["secrets"] == ["gateway_secret_key", "actor_signing_key", "actor_public_key",
                                                         "transport_keys"]
    # Every service seals and opens internal RPC (tansiq.transport); the one-off migration does not call any.
    assert [name for name, service in compose["services"].items()
            if "transport_keys" in service.get("secrets", [])] == list(tansiq_config.SERVICES)
    # The actor signing key is the gateway's alone: whoever holds it can speak for any staff member.
    assert [name for name, service in compose["services"].items()
            if "actor_signing_key" in service.get("secrets", [])] == ["gateway"]
    for secret in secrets.values():
        assert secret["file"].startswith("./var/"), "key files live under the git-ignored var/"


def uncommented(path):
    lines = path.read_text(encoding="utf-8").splitlines()
    return "\n".join(line for line in lines if not line.lstrip().startswith("#"))


def test_every_variable_is_listed_in_env_example(compose, env_example):
    used = set(COMPOSE_VAR.findall(uncommented(ROOT / "docker-compose.yml")))
    for path in (DEPLOY / "config").glob("*.yaml"):
        used |= set(CONFIG_VAR.findall(uncommented(path)))
    assert "TANSIQ_INTAKE_DB_URI" in used and "AMQP_URI" in used  # the scan itself works
    missing = sorted(used - set(env_example))
    assert not missing, f"add to deploy/env.example: {missing}"


def test_env_example_holds_placeholders_only(env_example):
    for name, value in env_example.items():
        if SECRET_NAME.search(name) and not name.endswith("_FILE"):
            assert value.startswith("CHANGE_ME_"), name
        for credentials in re.findall(r"://[^/\s@]+@", value):
            assert "CHANGE_ME_" in credentials, name
    # The URIs embed the same password as the broker and database users.
    assert env_example["TANSIQ_RABBITMQ_PASSWORD"] in env_example["AMQP_URI"]
    for service in SERVICES[:-1]:
        uri = env_example[f"TANSIQ_{service.upper()}_DB_URI"]
        assert env_example["POSTGRES_PASSWORD"] in uri and uri.endswith(f"/{service}")


def test_compose_mounts_files_that_exist(compose):
    for name, service in compose["services"].items():
        for volume in service.get("volumes", []):
            source = volume.split(":")[0]
            if source.startswith("./") and not source.endswith("definitions.json"):
                assert (ROOT / source).is_file(), f"{name} mounts missing {source}"


def test_rabbitmq_loads_the_mounted_definitions(compose):
    conf = (DEPLOY / "rabbitmq" / "rabbitmq.conf").read_text(encoding="utf-8")
    settings = dict(
        (key.strip(), value.strip())
        for key, _, value in (line.partition("=") for line in conf.splitlines())
        if key.strip() and not key.lstrip().startswith("#")
    )
    mounts = dict(v.split(":")[:2][::-1] for v in compose["services"]["rabbitmq"]["volumes"])
    assert mounts[settings["management.load_definitions"]] == "./deploy/rabbitmq/definitions.json"
    assert settings.get("loopback_users.guest", "true") == "true"
    plugins = (DEPLOY / "rabbitmq" / "enabled_plugins").read_text(encoding="utf-8")
    assert re.fullmatch(r"\[[a-z_,\s]*rabbitmq_management[a-z_,\s]*\]\.\s*", plugins)


def test_rabbitmq_definitions_are_exported():
    definitions = DEPLOY / "rabbitmq" / "definitions.json"
    if not definitions.exists():
        pytest.skip("deploy/rabbitmq/definitions.json not generated yet: tansiq topology export")
    import json

    data = json.loads(definitions.read_text(encoding="utf-8"))
    # Boot-time import replaces default vhost creation, and passwords belong in deploy/.env.
    assert {"name": "/"} in [{"name": v["name"]} for v in data.get("vhosts", [])]
    assert not data.get("users"), "users (and their password hashes) do not belong in git"


# --- deploy/Dockerfile ------------------------------------------------------------------------

def test_dockerfile_runs_as_a_non_root_user():
    lines = (DEPLOY / "Dockerfile").read_text(encoding="utf-8").splitlines()
    users = [line.split()[1] for line in lines if line.startswith("USER ")]
    assert users and users[-1] not in ("root", "0"), "the last USER must not be root"
    assert any(line.startswith("FROM python:3.11-slim") for line in lines)
    assert 'ENTRYPOINT ["tansiq"]' in lines


def test_dockerignore_keeps_secrets_out_of_the_image():
    ignored = (ROOT / ".dockerignore").read_text(encoding="utf-8").split()
    assert {"deploy/.env", "var", ".venv", ".git"} <= set(ignored)


# --- deploy/k8s/ ------------------------------------------------------------------------------

def test_k8s_runs_every_service_with_replicas_and_probes(k8s):
    deployments = {doc["metadata"]["name"]: doc for _, doc in k8s if doc["kind"] == "Deployment"}
    assert set(deployments) == set(SERVICES)
    for name, deployment in deployments.items():
        assert deployment["spec"]["replicas"] >= 2, name
        assert deployment["spec"]["template"]["spec"]["securityContext"]["runAsNonRoot"] is True
        (container,) = deployment["spec"]["template"]["spec"]["containers"]
        assert container["args"] == ["run", name]
        assert container["readinessProbe"] and container["livenessProbe"], name
        refs = {next(iter(ref)): next(iter(ref.values()))["name"] for ref in container["envFrom"]}
        assert refs == {"configMapRef": "tansiq-config", "secretRef": "tansiq-env"}, name
    services = [doc for _, doc in k8s if doc["kind"] == "Service"]
    assert [s["metadata"]["name"] for s in services] == ["gateway"]
    jobs = [doc for _, doc in k8s if doc["kind"] == "Job"]
    assert [j["spec"]["template"]["spec"]["containers"][0]["args"] for j in jobs] == [["migrate"]]
    namespaced = [doc for _, doc in k8s if doc["kind"] not in ("Namespace", "Kustomization")]
    assert all(doc["metadata"]["namespace"] == "tansiq" for doc in namespaced)


def test_k8s_config_names_are_known_and_hold_no_secret(k8s, env_example):
    (config,) = [doc for _, doc in k8s if doc["kind"] == "ConfigMap"]
    assert set(config["data"]) <= set(env_example)
    assert not [key for key in config["data"] if SECRET_NAME.search(key) and not key.endswith("_FILE")]
    assert not [doc for _, doc in k8s if doc["kind"] == "Secret"], "Secrets are created, not committed"


def test_kustomization_lists_existing_manifests(k8s):
    (kustomization,) = [doc for _, doc in k8s if doc["kind"] == "Kustomization"]
    for resource in kustomization["resources"]:
        assert (DEPLOY / "k8s" / resource).is_file(), resource


# --- scripts, run for real ----------------------------------------------------------------------

def run_script(*args, env=None, cwd=ROOT):
    return subprocess.run(
        [str(a) for a in args], cwd=cwd, capture_output=True, text=True, timeout=120,
        env={**os.environ, **(env or {})},
    )


def test_make_deploy_env_generates_consistent_random_secrets(tmp_path):
    (tmp_path / "scripts").mkdir()
    (tmp_path / "deploy").mkdir()
    for script in ("lib.sh", "make-deploy-env.sh"):
        shutil.copy2(ROOT / "scripts" / script, tmp_path / "scripts" / script)
    shutil.copy2(DEPLOY / "env.example", tmp_path / "deploy" / "env.example")

    result = run_script(tmp_path / "scripts" / "make-deploy-env.sh")
    assert result.returncode == 0, result.stderr

    env_file = tmp_path / "deploy" / ".env"
    text = env_file.read_text(encoding="utf-8")
    assert stat.S_IMODE(env_file.stat().st_mode) == 0o600
    values = dict(re.findall(r"^([A-Z0-9_]+)=(.*)$", text, re.MULTILINE))
    assert values and not [name for name, value in values.items() if "CHANGE_ME" in value]
    assert len(values["POSTGRES_PASSWORD"]) == 64
    assert values["POSTGRES_PASSWORD"] != values["TANSIQ_RABBITMQ_PASSWORD"]
    assert f":{values['TANSIQ_RABBITMQ_PASSWORD']}@" in values["AMQP_URI"]
    assert f":{values['POSTGRES_PASSWORD']}@" in values["TANSIQ_EVENTS_DB_URI"]
    for key in ("gateway-secret.key", "intake-master.key"):
        assert len(base64.b64decode((tmp_path / "var" / "secrets" / key).read_bytes())) == 32
    assert stat.S_IMODE((tmp_path / "var" / "secrets").stat().st_mode) == 0o700
    # The transport key file is one the services load.
    assert len(TransportKeys.load(tmp_path / "var" / "secrets" / "transport.keys", create=False).keys) == 1

    # A second run keeps what exists: regenerating a key would lock the data away.
    master = (tmp_path / "var" / "secrets" / "intake-master.key").read_bytes()
    assert run_script(tmp_path / "scripts" / "make-deploy-env.sh").returncode == 0
    assert env_file.read_text(encoding="utf-8") == text
    assert (tmp_path / "var" / "secrets" / "intake-master.key").read_bytes() == master


def test_ensure_broker_refuses_an_unreachable_remote_broker():
    # 127.0.0.2 counts as remote for the script, and nothing listens on port 1 there.
    result = run_script(ROOT / "scripts" / "ensure-broker.sh",
                        env={"AMQP_URI": "amqp://u:secret-pw@127.0.0.2:1/"})
    assert result.returncode != 0
    assert "not reachable" in result.stderr
    assert "secret-pw" not in result.stdout + result.stderr, "passwords are never printed"


@pytest.mark.parametrize("address, url", [("127.0.0.1:8101", "http://127.0.0.1:8101/"),
                                          ("0.0.0.0:8102", "http://127.0.0.1:8102/")])
def test_make_run_prints_the_address_the_gateway_will_serve(address, url):
    # Only the printing: install and broker count as done, and `true` stands in for the tansiq command.
    result = run_script("make", "-s", "-o", "install", "-o", "broker", "run", "TANSIQ=true",
                        f"PYTHON={sys.executable}", env={"TANSIQ_WEB_ADDRESS": address})
    assert result.returncode == 0, result.stderr
    assert f"open {url} " in result.stdout


def test_ensure_broker_loads_the_definitions_into_the_vhost_of_amqp_uri(tmp_path, broker_admin):
    """On a broker the script does not manage (rabbitmqctl cannot reach it), through the management API."""
    import harness

    (tmp_path / "scripts").mkdir()
    (tmp_path / "deploy" / "rabbitmq").mkdir(parents=True)
    for script in ("lib.sh", "ensure-broker.sh"):
        shutil.copy2(ROOT / "scripts" / script, tmp_path / "scripts" / script)
    definitions = DEPLOY / "rabbitmq" / "definitions.json"
    shutil.copy2(definitions, tmp_path / "deploy" / "rabbitmq" / "definitions.json")
    not_ours = tmp_path / "bin"
    not_ours.mkdir()
    (not_ours / "rabbitmq-diagnostics").write_text("#!/bin/sh\nexit 1\n")
    (not_ours / "rabbitmq-diagnostics").chmod(0o755)
    vhost = f"test-definitions-{os.getpid()}"
    amqp_uri = harness.create_vhost(vhost)
    try:
        result = run_script(tmp_path / "scripts" / "ensure-broker.sh",
                            env={"AMQP_URI": amqp_uri, "TANSIQ_RABBIT_ADMIN_URL": harness.ADMIN_URL,
                                 "PATH": f"{not_ours}:{os.environ['PATH']}"})
        assert result.returncode == 0, result.stderr
        assert f"definitions loaded into vhost {vhost}" in result.stdout, result.stderr
        expected = {queue["name"] for queue in json.loads(definitions.read_text("utf-8"))["queues"]}
        assert expected <= set(harness.admin(vhost).queue_stats())
    finally:
        harness.delete_vhost(vhost)


def postgres_reachable():
    try:
        socket.create_connection(("127.0.0.1", 5432), timeout=3).close()
        return True
    except OSError:
        return False


def psql_problem():
    """Why psql cannot reach PostgreSQL here (the skip reason), or None."""
    if not shutil.which("psql"):
        return "psql client missing (apt-get install postgresql-client)"
    if not postgres_reachable():
        return "no PostgreSQL at 127.0.0.1:5432"
    return None


@pytest.mark.postgres
def test_postgres_init_script_creates_one_database_per_service():
    problem = psql_problem()
    if problem:
        if os.environ.get("TANSIQ_REQUIRE_POSTGRES") == "1":
            pytest.fail(f"{problem}; required here (TANSIQ_REQUIRE_POSTGRES=1)")
        pytest.skip(problem)
    prefix = f"tansiq_init_{os.getpid()}"
    names = [f"{prefix}_{service}" for service in ("intake", "events")]
    env = {"POSTGRES_USER": "postgres", "POSTGRES_DB": "postgres", "PGHOST": "127.0.0.1",
           "TANSIQ_DATABASES": " ".join(names)}
    query = f"SELECT datname FROM pg_database WHERE datname LIKE '{prefix}%' ORDER BY 1"
    try:
        for _ in range(2):  # twice: the second run finds them and changes nothing
            result = run_script("bash", DEPLOY / "postgres" / "init-databases.sh", env=env)
            assert result.returncode == 0, result.stderr
        listed = run_script("psql", "-h", "127.0.0.1", "-U", "postgres", "-Atc", query)
        assert listed.stdout.split() == sorted(names)
    finally:
        for name in names:
            run_script("psql", "-h", "127.0.0.1", "-U", "postgres", "-qc", f'DROP DATABASE IF EXISTS "{name}"')
