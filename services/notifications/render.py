"""Messages per kind and language: Jinja2 templates, Babel dates, right to left for Arabic.

Safety for survivors is structural: a template is rendered with `safe_context(params)`,
which builds a fixed set of keys (association names, deadline, event title, …) and
nothing else, so no beneficiary detail can reach an email or SMS body even if an
event carried one.
"""

from dataclasses import dataclass
from datetime import datetime
from functools import cached_property, lru_cache
from pathlib import Path

import yaml
from babel import Locale
from babel.dates import format_datetime
from jinja2 import FileSystemLoader, StrictUndefined, pass_context
from jinja2.sandbox import SandboxedEnvironment

from services.notifications.domain import LOCAL_TZ

TEMPLATES = Path(__file__).resolve().parent / "templates"
LOCALES = {"ar": "ar_MA", "fr": "fr_MA", "en": "en_GB"}
DATE_FORMAT = "EEEE d MMMM y, HH:mm"
# Everything a template may ever see about a notification.
CONTEXT_KEYS = ("from_name", "to_name", "association_name", "organiser_names", "deadline", "event_title",
                "starts_at", "city")


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
        loader = FileSystemLoader(str(TEMPLATES))
        # Subjects, bodies, text and SMS: plain text. HTML: autoescaped (titles are typed by people).
        self.text_env = SandboxedEnvironment(loader=loader, undefined=StrictUndefined, autoescape=False,
                                             keep_trailing_newline=True)
        self.html_env = SandboxedEnvironment(loader=loader, undefined=StrictUndefined, autoescape=True)
        self.text_env.filters["when"] = _when
        self._compiled = {}  # template text -> compiled template: compiling cost more than rendering

    @cached_property
    def catalogue(self):
        return yaml.safe_load((TEMPLATES / "messages.yaml").read_text(encoding="utf-8"))

    def kinds(self):
        return sorted(kind for kind in self.catalogue if not kind.startswith("_"))

    def _string(self, template, language, **context):
        compiled = self._compiled.get(template)
        if compiled is None:
            compiled = self._compiled[template] = self.text_env.from_string(template)
        return compiled.render(language=language, **context).strip()

    def entry(self, kind, language, params):
        """{"subject", "body"} of one notification in `language`."""
        texts = self.catalogue[kind][language]
        context = safe_context(params, language)
        return {"subject": self._string(texts["subject"], language, **context),
                "body": self._string(texts["body"], language, **context)}

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
            subject = self._string(self.catalogue["_layout"][language]["digest_subject"], language,
                                   count=len(entries))
        return self._layout(language, subject, entries, self.inbox_link())

    def _layout(self, language, subject, entries, link):
        phrases = self.catalogue["_layout"][language]
        context = {"language": language, "direction": Locale.parse(LOCALES[language]).text_direction,
                   "subject": subject, "entries": entries, "link": link, "t": phrases}
        return Message(
            language=language,
            subject=subject,
            text=self.text_env.get_template("email.txt.j2").render(**context),
            html=self.html_env.get_template("email.html.j2").render(**context),
            sms=self.text_env.get_template("sms.txt.j2").render(**context).strip(),
        )


@pass_context
def _when(context, value):
    return format_when(value, context["language"])


def format_when(value, language):
    """An ISO timestamp (or datetime) as the staff member's locale writes it, in Casablanca time."""
    if not value:
        return ""
    moment = value if isinstance(value, datetime) else datetime.fromisoformat(value)
    return format_datetime(moment, DATE_FORMAT, tzinfo=LOCAL_TZ, locale=LOCALES[language])
