"""tansiq.transport: internal RPC bodies sealed under the network's transport keys, bound to where they go."""

import json
import stat

import pytest

from tansiq import transport
from tansiq.transport import TransportKeys, TransportRefused, binding

REQUEST = binding("nameko-rpc", "intake.register_beneficiary", "reply-1", "corr-1")


@pytest.fixture
def key_file(tmp_path):
    return tmp_path / "keys" / "transport.keys"


def test_a_key_file_is_made_0600_on_first_use_and_kept(key_file):
    first = TransportKeys.load(key_file)
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    assert TransportKeys.load(key_file).keys == first.keys


def test_a_sealed_body_opens_where_it_was_sent_and_holds_no_clear_text(key_file):
    keys = TransportKeys.load(key_file)
    body = json.dumps({"args": [{"first_name": "CanaryKhadija"}]}).encode()
    token = keys.seal(body, REQUEST)
    assert b"CanaryKhadija" not in token and token.startswith(b"tq1." + keys.current.encode() + b".")
    assert keys.open(token, REQUEST) == body


@pytest.mark.parametrize("elsewhere", [
    binding("nameko-rpc", "intake.erase_beneficiary", "reply-1", "corr-1"),  # another method
    binding("nameko-rpc", "intake.register_beneficiary", "reply-2", "corr-1"),  # its reply to another queue
    binding("nameko-rpc", "intake.register_beneficiary", "reply-1", "corr-2"),  # answering another call
    binding("other", "intake.register_beneficiary", "reply-1", "corr-1"),
])
def test_a_body_moved_to_another_queue_or_call_does_not_open(key_file, elsewhere):
    keys = TransportKeys.load(key_file)
    with pytest.raises(TransportRefused, match="does not open"):
        keys.open(keys.seal(b"{}", REQUEST), elsewhere)


def test_tampered_clear_or_foreign_bodies_are_refused(key_file, tmp_path):
    keys = TransportKeys.load(key_file)
    token = bytearray(keys.seal(b'{"a": 1}', REQUEST))
    token[-1] ^= 1
    for bad in (bytes(token), b'{"args": [], "kwargs": {}}', b"", b"tq1.", {"args": []}):
        with pytest.raises(TransportRefused):
            keys.open(bad, REQUEST)
    stranger = TransportKeys.load(tmp_path / "other.keys")  # another network's key
    with pytest.raises(TransportRefused, match="unknown transport key"):
        keys.open(stranger.seal(b"{}", REQUEST), REQUEST)


def test_rotation_seals_with_the_new_key_opens_old_bodies_until_retired(key_file):
    before = TransportKeys.load(key_file)
    old_token = before.seal(b"old", REQUEST)
    new_kid = transport.rotate(key_file)
    after = TransportKeys.load(key_file)
    assert after.current == new_kid != before.current
    assert after.open(old_token, REQUEST) == b"old"  # in flight during a rolling restart
    assert transport.retire(key_file) == [before.current]
    retired = TransportKeys.load(key_file)
    assert list(retired.keys) == [new_kid] and stat.S_IMODE(key_file.stat().st_mode) == 0o600
    with pytest.raises(TransportRefused, match="unknown transport key"):
        retired.open(old_token, REQUEST)


def test_a_broken_key_file_is_refused_not_replaced(key_file):
    key_file.parent.mkdir(parents=True)
    key_file.write_text("not-a-key AAAA\n")
    with pytest.raises(ValueError, match="expected"):
        TransportKeys.load(key_file)
    with pytest.raises(ValueError):
        transport.rotate(key_file)
    assert key_file.read_text() == "not-a-key AAAA\n"


def test_replies_with_dates_uuids_and_decimals_serialise_as_they_did_in_clear():
    # nameko's Responder checks a result with the request's serializer before replying: an answer holding a
    # datetime must not become UnserializableValueError because it is now sealed.
    import datetime
    import decimal
    import uuid

    import kombu.serialization

    transport.register_serializer()
    result = {"at": datetime.datetime(2026, 11, 30, tzinfo=datetime.timezone.utc), "id": uuid.uuid4(),
              "amount": decimal.Decimal("1.5")}
    content_type, _, body = kombu.serialization.dumps(result, transport.SERIALIZER)
    assert content_type == transport.CONTENT_TYPE
    assert kombu.serialization.loads(body, "application/json", "utf-8")["amount"] == result["amount"]


def test_a_process_that_meets_a_rotated_key_reads_the_file_again_and_opens_it(key_file, monkeypatch):
    transport.use_key_file(key_file)
    held = transport.keys()  # this process started before the rotation
    transport.rotate(key_file)
    restarted = TransportKeys.load(key_file)  # a process started after it seals with the new key
    token = restarted.seal(b'{"ok": true}', REQUEST)
    assert transport.open_sealed(token, REQUEST) == b'{"ok": true}'
    assert transport.keys().current == restarted.current != held.current  # and now seals with it too
    stranger = TransportKeys.load(key_file.parent / "other.keys").seal(b"{}", REQUEST)
    monkeypatch.setitem(transport._state, "reloaded_at", 0.0)  # a while later
    with pytest.raises(transport.UnknownKey):  # read again, still unknown: refused
        transport.open_sealed(stranger, REQUEST)
    monkeypatch.setattr(transport.TransportKeys, "load", lambda *a, **k: pytest.fail("read again within a second"))
    with pytest.raises(transport.UnknownKey):  # a flood of strangers does not re-read the file each time
        transport.open_sealed(stranger, REQUEST)
    transport.use_key_file(None)
