"""tansiq.sealing: only a named reader opens a sealed value, only in its own context, until its copy ends."""

import base64
import copy

import pytest

from tansiq import sealing

SAFI, MARRAKECH, RABAT = (sealing.generate_private_key() for _ in range(3))
READERS = {"amal-safi": sealing.public_key_b64(SAFI), "wafae-marrakech": sealing.public_key_b64(MARRAKECH)}
CONTEXT = "referral:r-1:reason"
STORY = {"first_name": "Khadija", "phone": "+212600000042", "reason": "Violences conjugales"}


def test_every_reader_opens_it_and_nothing_is_in_clear():
    sealed = sealing.seal(STORY, READERS, CONTEXT)
    assert "Khadija" not in repr(sealed) and "Violences" not in repr(sealed)
    assert sealing.open_sealed(sealed, "amal-safi", SAFI, CONTEXT) == STORY
    assert sealing.open_sealed(sealed, "wafae-marrakech", MARRAKECH, CONTEXT) == STORY
    assert sealing.readers_of(sealed) == set(READERS)


def test_someone_else_opens_nothing():
    sealed = sealing.seal(STORY, READERS, CONTEXT)
    with pytest.raises(sealing.NotSealedFor):
        sealing.open_sealed(sealed, "hayat-rabat", RABAT, CONTEXT)
    with pytest.raises(sealing.SealBroken):  # a reader's slot with another reader's key
        sealing.open_sealed(sealed, "amal-safi", RABAT, CONTEXT)


def test_moved_to_another_context_or_tampered_it_does_not_open():
    sealed = sealing.seal(STORY, READERS, CONTEXT)
    with pytest.raises(sealing.SealBroken):
        sealing.open_sealed(sealed, "amal-safi", SAFI, "referral:r-2:reason")
    body = bytearray(base64.b64decode(sealed["ct"]))
    body[-1] ^= 1
    tampered = {**sealed, "ct": base64.b64encode(bytes(body)).decode()}
    with pytest.raises(sealing.SealBroken):
        sealing.open_sealed(tampered, "amal-safi", SAFI, CONTEXT)
    swapped = copy.deepcopy(sealed)
    swapped["to"]["amal-safi"] = sealed["to"]["wafae-marrakech"]
    with pytest.raises(sealing.SealBroken):
        sealing.open_sealed(swapped, "amal-safi", SAFI, CONTEXT)
    with pytest.raises(sealing.SealBroken):
        sealing.open_sealed({**sealed, "v": 99}, "amal-safi", SAFI, CONTEXT)


def test_a_copy_ends_when_its_slot_is_dropped():
    sealed = sealing.seal(STORY, READERS, CONTEXT)
    rest = sealing.without(sealed, "wafae-marrakech")
    with pytest.raises(sealing.NotSealedFor):
        sealing.open_sealed(rest, "wafae-marrakech", MARRAKECH, CONTEXT)
    assert sealing.open_sealed(rest, "amal-safi", SAFI, CONTEXT) == STORY
    assert sealing.without(rest, "amal-safi") is None  # nobody left: nothing to keep


def test_keys_round_trip_and_bad_public_keys_are_refused():
    raw = sealing.private_key_bytes(RABAT)
    for form in (raw, base64.b64encode(raw), base64.b64encode(raw).decode()):
        assert sealing.public_key_b64(sealing.load_private_key(form)) == sealing.public_key_b64(RABAT)
    for bad in ("not base64!", base64.b64encode(b"short").decode()):
        with pytest.raises(ValueError):
            sealing.load_public_key(bad)
    with pytest.raises(ValueError):
        sealing.seal(STORY, {}, CONTEXT)
