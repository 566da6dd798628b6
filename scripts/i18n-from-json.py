#!/usr/bin/env python3
"""One-shot import of the old keyed JSON strings (services/gateway/i18n/{ar,fr,en}.json) into the gettext
catalogues (tansiq/locale/<lang>/LC_MESSAGES/tansiq.po), for branches that still added strings there.

    .venv/bin/python scripts/i18n-from-json.py            # import, then: make i18n
    .venv/bin/python scripts/i18n-from-json.py --dry-run  # only say what it would do

For each key of each language: a msgid missing from the catalogue is added with the JSON text; one whose
msgstr is empty is filled; one the catalogue already translates keeps the catalogue's text (reported when the
JSON says otherwise). "{name}" placeholders become "%(name)s" (and a literal "%" becomes "%%"), as
jinja2.ext.i18n's gettext expects; "{n}" becomes "%(num)s", ngettext's count. Plural messages
(msgid_plural) are never touched: write their forms in the .po. The templates' t("key") calls are extracted
like _("key"), so `make i18n` keeps the imported keys. Once imported, the JSON files can be deleted.
"""

import argparse
import json
import re
import sys
from pathlib import Path

from babel.messages.catalog import Catalog
from babel.messages.pofile import write_po

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tansiq import i18n  # noqa: E402 - after the path that finds it

JSON_DIR = ROOT / "services" / "gateway" / "i18n"
PLACEHOLDER = re.compile(r"\{(\w+)\}")


def gettext_text(value):
    """"{n} non lue(s), 5 %" -> "%(num)s non lue(s), 5 %%"."""
    escaped = value.replace("%", "%%")
    return PLACEHOLDER.sub(lambda match: f"%({'num' if match[1] == 'n' else match[1]})s", escaped)


def import_language(lang, dry_run=False):
    source = JSON_DIR / f"{lang}.json"
    if not source.exists():
        return {"added": [], "filled": [], "kept": []}
    strings = json.loads(source.read_text(encoding="utf-8"))
    path = i18n.po_path(lang)
    catalogue = i18n.read_catalogue(lang) if path.exists() else Catalog(locale=i18n.BABEL_LOCALES[lang],
                                                                           domain=i18n.DOMAIN)
    report = {"added": [], "filled": [], "kept": []}
    for key, value in strings.items():
        text = gettext_text(value)
        message = catalogue.get(key)
        if message is None:
            catalogue.add(key, text)
            report["added"].append(key)
        elif message.pluralizable:
            report["kept"].append(key)
        elif not message.string:
            message.string = text
            report["filled"].append(key)
        elif message.string != text:
            report["kept"].append(key)
    if not dry_run and (report["added"] or report["filled"]):
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("wb") as handle:
            write_po(handle, catalogue, no_location=True, sort_output=True, ignore_obsolete=True)
    return report


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dry-run", action="store_true")
    args = parser.parse_args(argv)
    for lang in i18n.LANGUAGES:
        report = import_language(lang, args.dry_run)
        print(f"{lang}: {len(report['added'])} added, {len(report['filled'])} filled, "
              f"{len(report['kept'])} kept as the catalogue has them")
        for key in report["kept"]:
            print(f"  kept {key}")
    print("now run: make i18n (extract, update, compile) and fill any empty msgstr")


if __name__ == "__main__":
    main()
