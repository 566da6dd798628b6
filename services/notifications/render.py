"""Messages per kind and language: gettext catalogues (tansiq.i18n), Babel dates, right to left for Arabic.

Each kind's subject and body are the msgids "notification.<kind>.subject" / ".body" of the one catalogue the
pages use too (tansiq/locale; services/notifications/vocabulary.py lists them for extraction); the e-mail
layouts (templates/*.j2) take their phrases from it with `_()`.

Safety for survivors is structural: a message is filled from `safe_context(params)`,
which builds a fixed set of keys (association names, deadline, event title, …) and
nothing else, so no beneficiary detail can reach an email or SMS body even if an
event carried one; a translation naming anything else fails (KeyError), and the catalogue test renders them all.
"""

from dataclasses import dataclass
from datetime import datetime
from functools import lru_cache
from pathlib import Path

from jinja2 import FileSystemLoader, StrictUndefined
from jinja2.sandbox import SandboxedEnvironment

from services.notifications.domain import LOCAL_TZ
from tansiq import i18n

TEMPLATES = Path(__file__).resolve().parent / "templates"
# Everything a template may ever see about a notification.
CONTEXT_KEYS = ("from_name", "to_name", "association_name", "organiser_names", "deadline", "event_title",
                "starts_at", "city")
MOMENTS = ("deadline", "starts_at")  # written out in the reader's language before they reach a message
# Kinds whose body has a second sentence when that value is known ("notification.<kind>.<key>").
OPTIONAL_SENTENCES = {"referral.sent": "deadline"}


@dataclass(frozen=True)
class Message:
    language: str
    subject: str
    text: str
    html: str
    sms: str


def safe_context(params, language):
    """The whitelisted template context for stored notification `params`."""
    names = params.get("names") or {}

    def name(slug):
        if not slug:
            return None
        entry = names.get(slug) or {}
        return entry.get("ar" if language == "ar" else "fr") or entry.get("fr") or slug

    context = {
        "from_name": name(params.get("from_association")),
        "to_name": name(params.get("to_association")),
        "association_name": name(params.get("association")),
        "organiser_names": ", ".join(name(slug) for slug in params.get("organisers") or []),
        "deadline": params.get("deadline"),
        "event_title": params.get("event_title"),
        "starts_at": params.get("starts_at"),
        "city": params.get("city"),
    }
    assert tuple(context) == CONTEXT_KEYS
    return context


@lru_cache(maxsize=8)
def renderer(web_base_url):
    """The Renderer of a base URL, made once per process: it holds the parsed catalogue and compiled templates."""
    return Renderer(web_base_url)


class Renderer:
    def __init__(self, web_base_url):
        self.web_base_url = web_base_url.rstrip("/")
        self._environments = {}

    def environments(self, language):
        """(text, html) Jinja environments of the layouts in `language` (plain text; HTML autoescaped)."""
        if language not in self._environments:
            loader = FileSystemLoader(str(TEMPLATES))
            text = SandboxedEnvironment(loader=loader, undefined=StrictUndefined, autoescape=False,
                                        keep_trailing_newline=True, extensions=["jinja2.ext.i18n"])
            html = SandboxedEnvironment(loader=loader, undefined=StrictUndefined, autoescape=True,
                                        extensions=["jinja2.ext.i18n"])
            for env in (text, html):
                env.install_gettext_translations(i18n.translations(language), newstyle=True)
            self._environments[language] = (text, html)
        return self._environments[language]

    def kinds(self):
        from services.notifications.vocabulary import KINDS

        return sorted(KINDS)

    def entry(self, kind, language, params):
        """{"subject", "body"} of one notification in `language`."""
        context = safe_context(params, language)
        values = {**context, **{key: format_when(context[key], language) for key in MOMENTS}}
        body = i18n.translate(language, f"notification.{kind}.body", **values)
        if context.get(OPTIONAL_SENTENCES.get(kind)):
            body += " " + i18n.translate(language, f"notification.{kind}.{OPTIONAL_SENTENCES[kind]}", **values)
        return {"subject": i18n.translate(language, f"notification.{kind}.subject", **values), "body": body}

    def inbox_link(self, item_id=None):
        return f"{self.web_base_url}/inbox/{item_id}" if item_id else f"{self.web_base_url}/inbox"

    def message(self, delivery):
        entry = self.entry(delivery.kind, delivery.language, delivery.params)
        return self._layout(delivery.language, entry["subject"], [entry], self.inbox_link(delivery.inbox_item_id))

    def digest(self, language, deliveries):
        entries = [self.entry(d.kind, language, d.params) for d in deliveries]
        if len(entries) == 1:
            subject = entries[0]["subject"]
        else:
            subject = self.environments(language)[0].get_template("digest_subject.txt.j2").render(
                count=len(entries)).strip()
        return self._layout(language, subject, entries, self.inbox_link())

    def _layout(self, language, subject, entries, link):
        context = {"language": language, "direction": i18n.text_direction(language),
                   "subject": subject, "entries": entries, "link": link}
        text, html = self.environments(language)
        return Message(
            language=language,
            subject=subject,
            text=text.get_template("email.txt.j2").render(**context),
            html=html.get_template("email.html.j2").render(**context),
            sms=text.get_template("sms.txt.j2").render(**context).strip(),
        )


def format_when(value, language):
    """An ISO timestamp (or datetime) as the staff member's locale writes it, in Casablanca time."""
    if not value:
        return ""
    moment = value if isinstance(value, datetime) else datetime.fromisoformat(value)
    return i18n.format_moment(moment, language, tzinfo=LOCAL_TZ, long=True)
