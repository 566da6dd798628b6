"""One i18n system for the web pages and the notifications: gettext catalogues through Babel.

Where the strings live: tansiq/locale/tansiq.pot (every msgid, extracted) and
tansiq/locale/{ar,fr,en}/LC_MESSAGES/tansiq.po (their translations, with plural forms: Arabic has six).
Msgids are stable keys ("nav.calendar", "need.shelter"): English is a catalogue like the others, so a page
that shows a key instead of words is a missing translation, and merging branches never rewords a msgid.

Adding a string:
1. in a page template write `{{ _("area.what") }}` (`t(...)` is the same function, kept for older templates),
   with values `{{ _("consent.any_partner", category=name) }}` -> msgstr "... %(category)s ..." (write a
   literal percent sign as %%), and counts `{{ ngettext("inbox.unread_count", "inbox.unread_count.plural",
   n) }}` -> msgstr "%(num)s non lue" / "%(num)s non lues"; in Python `i18n.translate(lang, "area.what")`
   (extraction does not read Python calls: list such keys in the service's vocabulary.py);
   a key built at run time ("need." ~ need) comes from a vocabulary.py of the service (VOCABULARY below);
2. `make i18n`: extracts every msgid (babel.cfg), updates the three .po files, compiles them (checks them);
3. fill the new msgstr in the three .po files (tests/unit/test_i18n_catalogues.py fails until every msgid of
   every page and notification has every plural form in ar, fr and en).
The .po files are read and compiled in memory when first used, so a fresh `make install` needs no step and
a stale .mo can never be served; `make i18n` also writes the .mo files (ignored by git) for other tools.

Strings still added to the old services/gateway/i18n/*.json files by other branches are imported once with
`python scripts/i18n-from-json.py` (see there).
"""

import importlib.util
import io
from functools import cache
from pathlib import Path

from babel import Locale
from babel.dates import format_date, format_skeleton
from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po
from babel.numbers import format_decimal
from babel.support import Translations

from tansiq.contracts.fields import LANGUAGES

LOCALE_DIR = Path(__file__).resolve().parent / "locale"
DOMAIN = "tansiq"
TEMPLATE = LOCALE_DIR / f"{DOMAIN}.pot"
# ar_MA: Western digits and Moroccan month names, as written in Morocco.
BABEL_LOCALES = {"ar": "ar_MA", "fr": "fr_MA", "en": "en_GB"}
DEFAULT_LANGUAGE = "fr"


def po_path(lang):
    if lang not in LANGUAGES:  # anything else is refused before a file is named after it
        raise ValueError(f"no catalogue for {lang!r}")
    return LOCALE_DIR / lang / "LC_MESSAGES" / f"{DOMAIN}.po"


def read_catalogue(lang):
    with po_path(lang).open("rb") as handle:
        return read_po(handle, locale=BABEL_LOCALES[lang], domain=DOMAIN)


@cache
def translations(lang):
    """The gettext translations of one of LANGUAGES, compiled in memory from its .po file."""
    buffer = io.BytesIO()
    write_mo(buffer, read_catalogue(lang))
    buffer.seek(0)
    return Translations(buffer, domain=DOMAIN)


def translate(lang, msgid, **values):
    text = translations(lang).gettext(msgid)
    return text % values if values else text


def translate_plural(lang, singular, plural, num, **values):
    return translations(lang).ngettext(singular, plural, num) % {"num": num, **values}


@cache
def plural_samples(lang):
    """{CLDR plural category: a number of that category} (ar: zero, one, two, few, many, other)."""
    rule, samples = Locale.parse(BABEL_LOCALES[lang]).plural_form, {}
    for number in range(0, 1001):
        samples.setdefault(rule(number), number)
    return samples


def plural_forms(lang, singular, plural):
    """The forms of a plural message by CLDR category, for a page script: `new Intl.PluralRules(lang)`
    picks the category of a count, and %(num)s is replaced by it (webapp.js plural())."""
    return {category: translations(lang).ngettext(singular, plural, number)
            for category, number in plural_samples(lang).items()}


def format_moment(value, lang, tzinfo=None, long=False):
    """A date and time as `lang` writes them, in the locale's own order and punctuation (CLDR data, glued
    by the locale's pattern: "الاثنين، 30 نونبر 2026، 01:45"), never a hand-made "01:45 ,2026".

    long: the weekday and month in full ("mercredi 12 mai 2027, 10:00"), for e-mails."""
    locale = Locale.parse(BABEL_LOCALES[lang])
    local = value.astimezone(tzinfo) if tzinfo is not None else value
    date = format_date(local, "full", locale=locale) if long else format_skeleton("yMMMEd", local, locale=locale)
    time = format_skeleton("Hm", local, locale=locale)
    return locale.datetime_formats["medium"].format(time, date)


def format_number(value, lang):
    return format_decimal(value, locale=BABEL_LOCALES[lang])


@cache  # babel reads the locale's data again on every call (5 % of notifications' time per inbox item)
def text_direction(lang):
    return Locale.parse(BABEL_LOCALES[lang]).text_direction  # "rtl" for Arabic


# --- keys built at run time: each service's vocabulary.py --------------------------------------------
# A template that writes _("need." ~ need) cannot be read by extraction; the service's vocabulary.py says
# which values it takes: VOCABULARY = {"need.": NEEDS, ...} (prefix -> values, from the contracts), and
# babel.cfg extracts every prefix+value with extract_vocabulary. A new need in the contract is then a
# new msgid, and the catalogue test asks for its translations.

def load_vocabulary(path):
    spec = importlib.util.spec_from_file_location(f"_vocabulary_{abs(hash(str(path)))}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.VOCABULARY


def vocabulary_msgids(vocabulary):
    return sorted({prefix + str(value) for prefix, values in vocabulary.items() for value in values})


def extract_vocabulary(fileobj, keywords, comment_tags, options):
    """Babel extraction method (babel.cfg): the msgids of a vocabulary.py's VOCABULARY."""
    for msgid in vocabulary_msgids(load_vocabulary(fileobj.name)):
        yield 0, "gettext", msgid, ["built at run time: see VOCABULARY"]
