"""The one i18n system (tansiq.i18n): every msgid of every page and notification, extracted as `make i18n`
does, exists non-empty in ar, fr and en with all its plural forms; placeholders match; the old JSON strings
import; pages and e-mails render in each language without showing a key."""

import json
import re

import pytest
from babel.messages.extract import extract_from_dir
from babel.messages.frontend import parse_mapping_cfg
from babel.messages.pofile import read_po, write_po

from tansiq import i18n

ROOT = i18n.LOCALE_DIR.parents[1]
PLACEHOLDER = re.compile(r"%\((\w+)\)s")
# As the Makefile's `pybabel extract -k t -k translate_plural:2,3` (tansiq.i18n.translate_plural in Python).
KEYWORDS = {"_": None, "gettext": None, "ngettext": (1, 2), "t": None, "N_": None, "translate_plural": (2, 3)}


def extracted():
    """{msgid: msgid_plural or None}: what `make i18n` extracts (babel.cfg) from the code as it is now."""
    with open(ROOT / "babel.cfg", encoding="utf-8") as handle:
        method_map, options_map = parse_mapping_cfg(handle)
    found = {}
    for _, _, message, _, _ in extract_from_dir(str(ROOT), method_map, options_map, keywords=KEYWORDS):
        singular, plural = (message if isinstance(message, tuple) else (message, None))
        found[singular] = plural
    return found


@pytest.fixture(scope="module")
def msgids():
    found = extracted()
    assert len(found) > 150 and "nav.calendar" in found and "notification.referral.sent.subject" in found
    assert "need.shelter" in found  # a vocabulary.py key
    return found


@pytest.mark.parametrize("lang", i18n.LANGUAGES)
def test_every_msgid_is_translated_with_every_plural_form(msgids, lang):
    catalogue = i18n.read_catalogue(lang)
    missing = []
    for msgid, plural in msgids.items():
        message = catalogue.get(msgid)
        if message is None:
            missing.append(msgid)
        elif plural is not None:
            forms = message.string if isinstance(message.string, tuple) else ()
            if len(forms) != catalogue.num_plurals or not all(forms):
                missing.append(f"{msgid} (plural forms {len(forms)}/{catalogue.num_plurals})")
        elif not message.string:
            missing.append(msgid)
    assert missing == [], f"translate these in {i18n.po_path(lang)} (make i18n adds them)"


def test_arabic_has_six_plural_forms_and_french_real_plurals():
    assert i18n.read_catalogue("ar").num_plurals == 6
    unread = {n: i18n.translate_plural("fr", "inbox.unread_count", "inbox.unread_count.plural", n) for n in (1, 5)}
    assert unread == {1: "1 non lue", 5: "5 non lues"}  # never "5 non lue(s)"
    arabic = {n: i18n.translate_plural("ar", "inbox.unread_count", "inbox.unread_count.plural", n)
              for n in (0, 1, 2, 3, 11, 100)}
    assert len(set(arabic.values())) == 6
    assert set(i18n.plural_forms("ar", "inbox.unread_count", "inbox.unread_count.plural")) == {
        "zero", "one", "two", "few", "many", "other"}


def placeholders(text):
    return set(PLACEHOLDER.findall(text))


@pytest.mark.parametrize("lang", ("ar", "fr"))
def test_translations_use_the_values_english_uses(lang):
    english, other = i18n.read_catalogue("en"), i18n.read_catalogue(lang)
    for message in english:
        if not message.id:
            continue
        theirs = other.get(message.id)
        ours = message.string if isinstance(message.string, tuple) else (message.string,)
        forms = theirs.string if isinstance(theirs.string, tuple) else (theirs.string,)
        allowed = set().union(*(placeholders(form) for form in ours)) | {"num"}
        for form in forms:
            assert placeholders(form) <= allowed, (lang, message.id, form)


def test_the_committed_template_is_what_extraction_finds(msgids):
    with open(i18n.TEMPLATE, "rb") as handle:
        committed = {m.id if isinstance(m.id, str) else m.id[0] for m in read_po(handle) if m.id}
    assert committed == set(msgids), "run: make i18n"


def test_the_json_converter_imports_new_keys_and_keeps_translated_ones(tmp_path, monkeypatch):
    import importlib.util

    spec = importlib.util.spec_from_file_location("i18n_from_json", ROOT / "scripts" / "i18n-from-json.py")
    converter = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(converter)
    json_dir, locale_dir = tmp_path / "json", tmp_path / "locale"
    json_dir.mkdir()
    (locale_dir / "fr" / "LC_MESSAGES").mkdir(parents=True)
    with open(locale_dir / "fr" / "LC_MESSAGES" / "tansiq.po", "wb") as handle:
        catalogue = i18n.read_catalogue("fr")
        write_po(handle, catalogue)
    (json_dir / "fr.json").write_text(json.dumps({
        "calendar.new_event": "Nouvel événement pour {association}, 100 %",
        "nav.calendar": "Agenda",  # the catalogue's "Calendrier" stays
    }), encoding="utf-8")
    monkeypatch.setattr(converter, "JSON_DIR", json_dir)
    monkeypatch.setattr(i18n, "LOCALE_DIR", locale_dir)
    report = converter.import_language("fr")
    assert report == {"added": ["calendar.new_event"], "filled": [], "kept": ["nav.calendar"]}
    imported = i18n.read_catalogue("fr")
    assert imported.get("calendar.new_event").string == "Nouvel événement pour %(association)s, 100 %%"
    assert imported.get("nav.calendar").string == "Calendrier"
    assert converter.gettext_text("{n} non lue(s)") == "%(num)s non lue(s)"


@pytest.mark.parametrize("lang", i18n.LANGUAGES)
def test_the_notifications_render_every_kind_without_a_key(lang):
    from services.notifications.render import Renderer

    renderer = Renderer("https://tansiq.example")
    for kind in renderer.kinds():
        entry = renderer.entry(kind, lang, {"deadline": "2026-12-01T11:00:00+00:00",
                                            "starts_at": "2026-12-01T11:00:00+00:00", "event_title": "Salon"})
        for text in entry.values():
            assert "notification." not in text and "%(" not in text, (kind, lang, text)
