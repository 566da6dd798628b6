"""The notification strings whose msgids are built at run time (render.py): prefix -> the values it takes.

Every kind the rules produce has a subject and a body in the catalogue (tansiq.i18n explains the system).
"""

from services.notifications.render import OPTIONAL_SENTENCES
from services.notifications.rules import RULES

KINDS = sorted({rule.kind for rule in RULES.values()})
OPTIONAL = [f"{kind}.{key}" for kind, key in OPTIONAL_SENTENCES.items()]

VOCABULARY = {
    "notification.": [f"{kind}.{part}" for kind in KINDS for part in ("subject", "body")] + OPTIONAL,
}
