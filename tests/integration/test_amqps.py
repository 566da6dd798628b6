"""`amqps://` end to end: a service and a client reach RabbitMQ over TLS, and the broker's certificate is verified.

The test broker listens in plain AMQP only, so a TLS terminator in this test (a self-signed certificate for
localhost, made here) stands in front of it, as a load balancer or RabbitMQ's own TLS listener would.
"""

import datetime
import ipaddress
import socket
import ssl
import threading

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from harness import BROKER_HOST
from kombu import Queue

from tansiq.config import amqp_ssl
from tansiq.messaging.broker import connect
from tansiq.transport import cluster_rpc, use_key_file


def self_signed(folder):
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = datetime.datetime.now(datetime.timezone.utc)
    certificate = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
                   .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(hours=1))
                   .not_valid_after(now + datetime.timedelta(hours=1))
                   # kombu connects to "localhost" as 127.0.0.1, and checks the name it connected to
                   .add_extension(x509.SubjectAlternativeName([x509.DNSName("localhost"), x509.IPAddress(
                       ipaddress.ip_address("127.0.0.1"))]), critical=False)
                   .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
                   .sign(key, hashes.SHA256()))
    cert_file, key_file = folder / "broker.crt", folder / "broker.key"
    cert_file.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return cert_file, key_file


class TlsTerminator:
    """Accepts TLS on a free port and relays the plain bytes to the broker's AMQP port."""

    def __init__(self, cert_file, key_file):
        self.context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        self.context.load_cert_chain(cert_file, key_file)
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(client,), daemon=True).start()

    def _serve(self, client):
        try:
            secure = self.context.wrap_socket(client, server_side=True)
        except (ssl.SSLError, OSError):
            client.close()  # a client that refused our certificate
            return
        upstream = socket.create_connection((BROKER_HOST, 5672))
        threading.Thread(target=self._pump, args=(upstream, secure), daemon=True).start()
        self._pump(secure, upstream)

    @staticmethod
    def _pump(source, target):
        try:
            while data := source.recv(65536):
                target.sendall(data)
        except OSError:
            pass
        finally:
            for end in (source, target):
                try:
                    end.close()
                except OSError:
                    pass

    def close(self):
        self.listener.close()


@pytest.fixture
def tls(tmp_path):
    cert_file, key_file = self_signed(tmp_path)
    terminator = TlsTerminator(cert_file, key_file)
    yield terminator, cert_file
    terminator.close()


def test_a_service_and_its_callers_talk_over_amqps(network_factory, tls, monkeypatch):
    terminator, cert_file = tls
    network = network_factory()
    uri = network.amqp_uri.replace("amqp://", "amqps://")
    uri = uri.replace(f"@{BROKER_HOST}:5672", f"@localhost:{terminator.port}")
    monkeypatch.setenv("TANSIQ_AMQP_CA_FILE", str(cert_file))

    with connect(uri) as connection:  # tansiq's own connections (outbox relay, consumers)
        channel = connection.channel()
        queue = Queue("tls-check", channel=channel, durable=False, auto_delete=True)
        queue.declare()
        connection.Producer(channel).publish(b"over tls", routing_key="tls-check")
        assert queue.get(no_ack=True).body == b"over tls"

    network.env.update(AMQP_URI=uri, TANSIQ_AMQP_CA_FILE=str(cert_file))
    network.migrate()
    network.start("directory")  # nameko's own connections, with the AMQP_SSL options tansiq.config derives
    use_key_file(network.transport_key_file)
    with cluster_rpc({"AMQP_URI": uri, "AMQP_SSL": amqp_ssl(uri)}, timeout=20) as cluster:
        assert cluster.directory.health() == "ok"


def test_a_certificate_the_client_does_not_trust_is_refused(tls, monkeypatch):
    terminator, _ = tls
    monkeypatch.delenv("TANSIQ_AMQP_CA_FILE", raising=False)  # the system roots do not know this certificate
    with pytest.raises(ssl.SSLError, match="CERTIFICATE_VERIFY_FAILED"):
        with connect(f"amqps://guest:guest@localhost:{terminator.port}/") as connection:
            connection.connect()
