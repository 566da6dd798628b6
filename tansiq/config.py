"""Configuration: one YAML file per service under deploy/config/, with ${VAR:default} substitution.

Embedded defaults need nothing set: the local RabbitMQ and one SQLite file per
service under var/. PostgreSQL is `TANSIQ_<SERVICE>_DB_URI=postgresql://…`.
"""

import os
import re
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
CONFIG_DIR = Path(os.environ.get("TANSIQ_CONFIG_DIR", ROOT / "deploy" / "config"))
SERVICES = ("directory", "intake", "referrals", "events", "notifications", "gateway")
# Innermost first, so a default may itself hold ${VAR}.
ENV_PATTERN = re.compile(r"\$\{([A-Z0-9_]+)(?::([^${}]*))?\}")


def var_dir():
    """Where the embedded databases live (TANSIQ_VAR, default var/)."""
    return Path(os.environ.get("TANSIQ_VAR", ROOT / "var"))


def keys_dir():
    """Where master and secret keys live (TANSIQ_KEYS_DIR, default var/keys/): apart from the databases,
    so a copy of the data folder is not also a copy of its keys."""
    return Path(os.environ.get("TANSIQ_KEYS_DIR", var_dir() / "keys"))


def _substitute(text, environ):
    def value(match):
        name, default = match.group(1), match.group(2)
        if name in environ:
            return environ[name]
        if name == "TANSIQ_VAR":
            return str(var_dir())
        if name == "TANSIQ_KEYS_DIR":
            return str(keys_dir())
        if default is None:
            raise KeyError(f"configuration needs the environment variable {name}")
        return default

    while True:
        replaced = ENV_PATTERN.sub(value, text)
        if replaced == text:
            return replaced
        text = replaced


def load(service, environ=None):
    """The configuration dict for `service` (nameko keys included: AMQP_URI, DB_URI, …)."""
    if service not in SERVICES:
        raise KeyError(f"unknown service {service!r}; one of {', '.join(SERVICES)}")
    environ = os.environ if environ is None else environ
    text = (CONFIG_DIR / f"{service}.yaml").read_text(encoding="utf-8")
    config = yaml.safe_load(_substitute(text, environ)) or {}
    config.setdefault("SERVICE_NAME", service)
    if amqp_ssl(config.get("AMQP_URI", "")):
        config.setdefault("AMQP_SSL", amqp_ssl(config["AMQP_URI"], environ))  # nameko's TLS options
    return config


def amqp_ssl(uri, environ=None):
    """TLS options for an `amqps://` URI (None for amqp://): the broker's certificate chain and host name are
    verified, against TANSIQ_AMQP_CA_FILE if set, else the system's trusted roots."""
    if not uri.startswith("amqps://"):
        return None
    import ssl

    environ = os.environ if environ is None else environ
    # server_hostname None: kombu fills in the URI's host, so the certificate must name it.
    return {"cert_reqs": ssl.CERT_REQUIRED, "server_hostname": None, "ca_certs": environ.get("TANSIQ_AMQP_CA_FILE")}


def amqp_uri(environ=None):
    environ = os.environ if environ is None else environ
    return environ.get("AMQP_URI", "amqp://guest:guest@127.0.0.1:5672/")
