"""tansiq.crypto (field encryption) and services.intake.matching (normalisation for duplicates)."""

import os
import stat

import pytest

from services.intake import matching
from tansiq.crypto import DecryptionFailed, FieldCipher, KeyDestroyed, KeyRing, load_master_key


@pytest.fixture
def keyring():
    return KeyRing(os.urandom(32))


def test_field_round_trip_and_no_plaintext(keyring):
    data_key, wrapped = keyring.new_data_key("b-1")
    cipher = FieldCipher(keyring.unwrap(wrapped, "b-1"), "b-1")
    token = cipher.encrypt("first_name", "Khadija")
    assert b"Khadija" not in token
    assert cipher.decrypt("first_name", token) == "Khadija"
    assert cipher.encrypt("first_name", "Khadija") != token  # random nonce: equal values do not show


def test_ciphertext_moved_to_another_field_or_record_does_not_decrypt(keyring):
    data_key, _ = keyring.new_data_key("b-1")
    token = FieldCipher(data_key, "b-1").encrypt("first_name", "Khadija")
    with pytest.raises(DecryptionFailed):
        FieldCipher(data_key, "b-1").decrypt("last_name", token)
    with pytest.raises(DecryptionFailed):
        FieldCipher(data_key, "b-2").decrypt("first_name", token)
    with pytest.raises(DecryptionFailed):
        FieldCipher(data_key, "b-1").decrypt("first_name", token[:-1] + bytes([token[-1] ^ 1]))


def test_wrapped_key_bound_to_record_and_master(keyring):
    _, wrapped = keyring.new_data_key("b-1")
    with pytest.raises(DecryptionFailed):
        keyring.unwrap(wrapped, "b-2")
    with pytest.raises(DecryptionFailed):
        KeyRing(os.urandom(32)).unwrap(wrapped, "b-1")
    with pytest.raises(KeyDestroyed):
        keyring.unwrap(None, "b-1")


def test_master_key_file_created_private_and_reused(tmp_path):
    path = tmp_path / "sub" / "master.key"
    first = load_master_key(path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert load_master_key(path) == first
    path.write_text("c2hvcnQ=\n")
    with pytest.raises(ValueError):
        load_master_key(path)


def test_blind_index_is_keyed_and_per_purpose(keyring):
    assert keyring.blind_index("phone", "+212612345678") == keyring.blind_index("phone", "+212612345678")
    assert keyring.blind_index("phone", "+212612345678") != keyring.blind_index("name", "+212612345678")
    assert keyring.blind_index("phone", "x") != KeyRing(os.urandom(32)).blind_index("phone", "x")


@pytest.mark.parametrize("latin, arabic", [
    ("Khadija", "خديجة"), ("Khadidja", "خَدِيجَة"), ("Fatima Zahra", "فاطمة الزهراء"), ("Mohammed", "محمّد"),
    ("Bouchra", "بشرى"), ("El Amrani", "العمراني"), ("Naïma", "نعيمة"), ("Zineb", "زينـــب"),
])
def test_same_name_in_both_scripts_has_one_skeleton(latin, arabic):
    assert matching.name_skeleton(latin) == matching.name_skeleton(arabic) != ""


def test_different_names_differ():
    assert matching.name_skeleton("Khadija") != matching.name_skeleton("Karima")
    assert matching.name_skeleton("فاطمة") != matching.name_skeleton("Salma")


def test_arabic_normalisation():
    assert matching.normalise_name("أَمِينَة") == matching.normalise_name("امينه")
    assert matching.normalise_name("  HAJAR  Benali ") == "hajar benali"


@pytest.mark.parametrize("raw", ["0612345678", "06 12 34 56 78", "+212 6-12-34-56-78", "00212612345678",
                                 "212612345678"])
def test_phone_normalised_to_e164(raw):
    assert matching.normalise_phone(raw) == "+212612345678"


def test_impossible_phone_is_none():
    assert matching.normalise_phone("12") is None
    assert matching.normalise_phone("not a phone") is None
