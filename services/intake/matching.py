"""Normalisation of names, phones and birth dates so the same woman registered twice is noticed.

Names are written in Arabic or Latin script, with French or English spelling
(Khadija, Khadidja, خديجة). Besides the exact normalised form, each name gets a
consonant skeleton shared by both scripts: short vowels are not written in
Arabic and Latin spellings vary mostly in vowels, so comparing consonant classes
catches cross-script duplicates. False positives are acceptable: a match is
only a flag for the case worker, never a merge.
"""

import re
import unicodedata

import phonenumbers

TATWEEL = "\u0640"
# Letter forms that are written interchangeably.
ARABIC_UNIFY = str.maketrans({"أ": "ا", "إ": "ا", "آ": "ا", "ٱ": "ا", "ى": "ي", "ئ": "ي", "ة": "ه", "ؤ": "و",
                              "ی": "ي", "ک": "ك", "ڭ": "ك", "گ": "ك", "ڤ": "ف", "پ": "ب"})

# Consonant classes shared by both scripts; letters mapped to "" are vowels/glides/ʿayn,
# often unwritten or spelled with vowels in Latin transcriptions.
ARABIC_SKELETON = {
    "ب": "B", "ت": "T", "ث": "S", "ج": "J", "ح": "H", "خ": "X", "د": "D", "ذ": "D", "ر": "R", "ز": "Z",
    "س": "S", "ش": "C", "ص": "S", "ض": "D", "ط": "T", "ظ": "Z", "ع": "", "غ": "G", "ف": "F", "ق": "K",
    "ك": "K", "ل": "L", "م": "M", "ن": "N", "ه": "H", "و": "", "ي": "", "ا": "", "ء": "",
}
# Longest first: digraphs of French/English transcriptions before single letters.
LATIN_SKELETON = [
    ("kh", "X"), ("gh", "G"), ("ch", "C"), ("sh", "C"), ("dj", "J"), ("th", "T"), ("ph", "F"),
    ("b", "B"), ("c", "K"), ("d", "D"), ("f", "F"), ("g", "G"), ("h", "H"), ("j", "J"), ("k", "K"),
    ("l", "L"), ("m", "M"), ("n", "N"), ("p", "B"), ("q", "K"), ("r", "R"), ("s", "S"), ("t", "T"),
    ("v", "F"), ("x", "KS"), ("z", "Z"),
]
LATIN_TOKEN = re.compile("|".join(re.escape(src) for src, _ in LATIN_SKELETON))
ARTICLE = re.compile(r"^(?:al|el|ال)[\s-]*")


def normalise_name(name):
    """Same spelling, one form: no diacritics/harakat/tatweel, unified alef/ya/ta marbuta, lower case."""
    if not name:
        return ""
    text = unicodedata.normalize("NFKD", name).replace(TATWEEL, "")
    text = "".join(ch for ch in text if not unicodedata.combining(ch))
    text = text.translate(ARABIC_UNIFY).casefold()
    text = re.sub(r"[^\w\s]|_", " ", text)
    return " ".join(text.split())


def name_skeleton(name):
    """Script-independent consonant key: 'Khadija', 'Khadidja' and 'خديجة' all give 'XDJ'."""
    words = normalise_name(name).replace("-", " ").split()
    keys = []
    for word in words:
        word = ARTICLE.sub("", word)  # al-/el-/ال are written or dropped at will
        if not word:
            continue
        if any("\u0600" <= ch <= "\u06ff" for ch in word):
            raw = "".join(ARABIC_SKELETON.get(ch, "") for ch in word)
        else:
            raw = LATIN_TOKEN.sub(lambda m: dict(LATIN_SKELETON)[m.group(0)], word)
            raw = re.sub(r"[^A-Z]", "", raw)  # vowels, w, y
        raw = re.sub(r"(.)\1+", r"\1", raw)  # doubled consonants (Mohammed) and shadda
        keys.append(raw[:-1] if raw.endswith("H") else raw)  # final ta marbuta / Latin -ah
    return " ".join(k for k in keys if k)


def normalise_phone(phone, region="MA"):
    """E.164 (+212…) or None when it is not a possible number; local 06…/07… numbers are Moroccan."""
    if not phone:
        return None
    try:
        parsed = phonenumbers.parse(phone, region)
    except phonenumbers.NumberParseException:
        return None
    if not phonenumbers.is_possible_number(parsed):
        return None
    return phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164)
