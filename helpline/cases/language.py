"""Which language and script a citizen wrote in, and writing our answers in the script they used.

Bosnian, Croatian and Serbian share one reply language ("bs"); Serbian Cyrillic maps one-to-one onto the Latin
alphabet, so an answer is written in Latin and transliterated for a citizen who wrote in Cyrillic.
"""

import functools
import re
import unicodedata

_CYRILLIC_TO_LATIN = {
    "а": "a", "б": "b", "в": "v", "г": "g", "д": "d", "ђ": "đ", "е": "e", "ж": "ž", "з": "z", "и": "i",
    "ј": "j", "к": "k", "л": "l", "љ": "lj", "м": "m", "н": "n", "њ": "nj", "о": "o", "п": "p", "р": "r",
    "с": "s", "т": "t", "ћ": "ć", "у": "u", "ф": "f", "х": "h", "ц": "c", "ч": "č", "џ": "dž", "ш": "š",
}  # fmt: skip
_LATIN_DIGRAPHS_TO_CYRILLIC = {"lj": "љ", "nj": "њ", "dž": "џ"}
_LATIN_TO_CYRILLIC = {latin: cyrillic for cyrillic, latin in _CYRILLIC_TO_LATIN.items() if len(latin) == 1}

# Runs of text that must stay as they are in a Cyrillic answer: case references, placeholders, URLs, e-mail
# addresses and words in capitals such as SOS or STOP (a citizen must be able to type them back).
# A case reference first, whole: SOS-2026-00042, and one reserved during an outage, SOS-2026-S7KX3M (its letters
# turned Cyrillic would find nothing when the citizen quotes it).
# Kept Latin in a Cyrillic text: what a person must type or read as it is (references, the words a phone takes
# as commands, web and e-mail addresses, a domain written without http) and placeholders. Other words in capitals
# are words ("PAŽNJA", "DOM ZDRAVLJA") and are transliterated like the rest.
_KEEP_WORDS = "SOS|SMS|MMS|STOP|START|OK|PIN"
_DOMAIN = r"(?:www\.)?[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.(?:ba|com|org|net|rs|hr|me|eu|info|gov|int|edu)\b(?:/\S*)?"
_KEEP_AS_IS = re.compile(
    rf"(SOS-\d{{4}}-[0-9A-Z]+|%\([a-z_]+\)s|\{{[a-z_]+\}}|\b(?:{_KEEP_WORDS})\b(?:-\d+)*|https?://\S+|\S+@\S+"
    rf"|{_DOMAIN})"
)

# Words common in one language's short messages. "me" and "on" are words of both, and say nothing. A message in
# Bosnian with one English word ("HELP on me tuce") was answered in English: the people and the danger in a message
# ("otac", "bije", "nož") are words too, and weigh as much as "help".
_ENGLISH_MARKERS = frozenset(
    "the an my he she is are am was were have has had help please and you your not to of in with "
    "what how when where who can need want hurt scared afraid he's i'm im don't dont can't cant will would "
    "him her his they them this that there from for at it let kill going husband wife hitting beating "
    "father mother know".split()
)
_BOSNIAN_MARKERS = frozenset(
    "je sam si smo ste su da ne mi se na za od do sa kako sta šta što gdje gde ko tko molim pomoc "
    "pomoć treba trebam nije nisam moj moja moje mene meni ja ona oni mu joj ih ali ili jer kad kada "
    "vas vam hvala dobar dan bih bi biti ce će hoće hoce muz muž dijete djeca dete deca "
    "pomozite hitno bije tuce tuče ubit ubiti ubice ubiće prijeti preti noz nož nozem nožem otac mama mamu "
    "majka tata pije kuci kući sad sada opet jos još tu pa li kod nas te ga vec već samo sin zena žena "
    "policija policiju iz".split()
)
_BOSNIAN_LETTERS = frozenset("čćšžđ")


def _marker_counts(text: str) -> tuple[int, int]:
    """English and Bosnian evidence in a Latin text: marker words, and any word with č, ć, š, ž or đ."""
    words = re.findall(r"[\w']+", text.lower())
    english = sum(1 for word in words if word in _ENGLISH_MARKERS)
    bosnian = sum(1 for word in words if word in _BOSNIAN_MARKERS or not _BOSNIAN_LETTERS.isdisjoint(word))
    return english, bosnian


def is_cyrillic(text: str) -> bool:
    """True when most letters of the text are Cyrillic."""
    letters = [ch for ch in text if ch.isalpha()]
    if not letters:
        return False
    cyrillic = sum(1 for ch in letters if "CYRILLIC" in unicodedata.name(ch, ""))
    return cyrillic * 2 > len(letters)


# Both cases of each letter, capitals keeping the second letter of a digraph small (Љ becomes Lj): str.translate
# reads a message at C speed, where a loop over its characters cost intake a tenth of a millisecond a message.
_CYRILLIC_TO_LATIN_TABLE = str.maketrans(
    {**_CYRILLIC_TO_LATIN, **{cyr.upper(): lat[0].upper() + lat[1:] for cyr, lat in _CYRILLIC_TO_LATIN.items()}}
)


def cyrillic_to_latin(text: str) -> str:
    """Serbian Cyrillic to Latin, keeping capitals (Љ becomes Lj) and leaving other characters alone."""
    return text.translate(_CYRILLIC_TO_LATIN_TABLE)


_FOLD = str.maketrans({"č": "c", "ć": "c", "š": "s", "ž": "z", "đ": "dj"})


@functools.lru_cache(maxsize=256)  # intake, triage and the search tokens each fold the same message
def fold(text: str) -> str:
    """Lower case, Cyrillic to Latin, Bosnian diacritics folded (č ć → c, đ → dj, š → s, ž → z), other accents
    removed: one spelling for every way people write a word. Triage matches its rules on it and staff search
    matches words on it (helpline.cases.search), so a rule and a search treat "NOŽEM", "nozem" and "ножем" alike."""
    # "can't" and "don't" are one word each, as the rules write them ("cant", "dont").
    text = cyrillic_to_latin(text.lower()).translate(_FOLD).replace("'", "").replace("\u2019", "")
    if text.isascii():  # most messages once the letters above are folded: nothing left to decompose
        return text
    decomposed = unicodedata.normalize("NFKD", text)
    return "".join(ch for ch in decomposed if not unicodedata.combining(ch))


# What people type around a command's words on a phone: "POMOĆ!", "OK.", "SAFE 1234.", "(4821)".
_AROUND_WORDS = "".join(ch for ch in map(chr, range(0x20, 0x7F)) if not ch.isalnum()) + "¡¿…“”„‘’«»"


def command_words(text: str) -> list[str]:
    """The words of a command SMS, each without the punctuation around it ("POMOĆ!" is POMOĆ, "SAFE 1234." has
    the PIN 1234): a silent alarm typed in a hurry must still be read as one."""
    words = (word.strip(_AROUND_WORDS) for word in (text or "").replace(",", " ").split())
    return [word for word in words if word]


def _transliterate_run(text: str) -> str:
    out = []
    i = 0
    while i < len(text):
        pair = text[i : i + 2]
        cyrillic = _LATIN_DIGRAPHS_TO_CYRILLIC.get(pair.lower())
        step = 2
        if cyrillic is None:
            cyrillic = _LATIN_TO_CYRILLIC.get(text[i].lower())
            pair, step = text[i], 1
        if cyrillic is None:
            out.append(text[i])
        else:
            out.append(cyrillic.upper() if pair[0].isupper() else cyrillic)
        i += step
    return "".join(out)


def latin_to_cyrillic(text: str) -> str:
    """Bosnian/Serbian Latin to Serbian Cyrillic, leaving references, placeholders and addresses untouched."""
    parts = _KEEP_AS_IS.split(text)
    # re.split with one capturing group alternates: text, kept, text, kept, ...
    return "".join(part if index % 2 else _transliterate_run(part) for index, part in enumerate(parts))


def in_readers_script(text: str, *, script: str, language: str) -> str:
    """A text for a citizen in the script they read: Cyrillic for a Bosnian/Croatian/Serbian reader of Cyrillic.
    English is never transliterated, whatever script the citizen also typed (a follow-up "Маглај")."""
    return latin_to_cyrillic(text) if script == "cyrillic" and language != "en" else text


def detect_language(text: str) -> str:
    """'en' when the text reads as English, otherwise 'bs' (the default reply language of the helpline)."""
    if is_cyrillic(text):
        return "bs"
    english, bosnian = _marker_counts(text)
    return "en" if english > bosnian else "bs"


def language_evidence(text: str) -> str | None:
    """'en' or 'bs' when the words say so (Cyrillic, or more marker words of one language than of the other);
    None when they do not ("Hello", "ok", "2", a number): a case first written so takes its language from the
    citizen's next words instead."""
    if is_cyrillic(text):
        return "bs"
    english, bosnian = _marker_counts(text)
    if english == bosnian:
        return None
    return "en" if english > bosnian else "bs"


def script_evidence(text: str) -> str | None:
    """The script of a text with a few letters to judge by; None for "2", "OK" or a number."""
    return detect_script(text) if sum(ch.isalpha() for ch in text) >= 4 else None


def detect_script(text: str) -> str:
    return "cyrillic" if is_cyrillic(text) else "latin"
