"""What a welfare campaign says to a person, in their language and script (SMS and the spoken call)."""
from __future__ import annotations

from django.conf import settings

from helpline.cases.language import in_readers_script
from helpline.cases.models import Language
from helpline.welfare.models import Campaign
from notifications.texts import console_url

_INSTRUCTIONS = {
    Language.BOSNIAN: "Odgovorite 1 ako ste sigurni, 2 ako trebate pomoć.",
    Language.ENGLISH: "Reply 1 if you are safe, 2 if you need help.",
}
_SPOKEN = {
    Language.BOSNIAN: "Pritisnite 1 ako ste sigurni, 2 ako trebate pomoć.",
    Language.ENGLISH: "Press 1 if you are safe, 2 if you need help.",
}
_THANKS_SAFE = {
    Language.BOSNIAN: "Hvala. Zabilježili smo da ste sigurni. Ako vam zatreba pomoć, pišite ili zovite nas.",
    Language.ENGLISH: "Thank you. We have noted that you are safe. If you need help, text or call us.",
}
_HELP_COMING = {
    Language.BOSNIAN: "Primili smo vaš odgovor ({reference}). Radnik centra će vas kontaktirati. "
    "Hitne službe: policija {police}, vatrogasci {fire}, hitna pomoć {ambulance}.",
    Language.ENGLISH: "We have your answer ({reference}). A social worker will contact you. "
    "Emergency: police {police}, fire {fire}, ambulance {ambulance}.",
}
CENTRE_NAME = "Centar za socijalni rad"


def _lang(language: str) -> str:
    return language if language in _INSTRUCTIONS else Language.BOSNIAN


def _in_script(text: str, script: str, language: str) -> str:
    # A register row saying "English, Cyrillic" means Latin letters: English is never transliterated.
    return in_readers_script(text, script=script, language=_lang(language))


def _question(campaign: Campaign, language: str) -> str:
    """The supervisor's English question for people who read English, when given; else the question."""
    english = (campaign.question_english or "").strip()
    return english if _lang(language) == Language.ENGLISH and english else campaign.question.strip()


def question_sms(campaign: Campaign, *, language: str, script: str) -> str:
    """The campaign's question and how to answer; Serbian Cyrillic readers get both in Cyrillic."""
    text = f"{CENTRE_NAME}: {_question(campaign, language)} {_INSTRUCTIONS[_lang(language)]}"
    return _in_script(text, script, language)


def question_spoken(campaign: Campaign, *, language: str) -> str:
    # Spoken text is never Cyrillic: the text-to-speech voices read Latin.
    return f"{CENTRE_NAME}. {_question(campaign, language)} {_SPOKEN[_lang(language)]}"


def thanks_safe(*, language: str, script: str) -> str:
    return _in_script(_THANKS_SAFE[_lang(language)], script, language)


def answer_with_a_digit(*, language: str, script: str) -> str:
    """To a bare "Da": which of the two it means, asked again. It is the SMS's only sign that the answer was read."""
    return _in_script(f"{CENTRE_NAME}: {_INSTRUCTIONS[_lang(language)]}", script, language)


def help_coming(reference: str, *, language: str, script: str) -> str:
    # The numbers the centre configured (settings.EMERGENCY_NUMBERS), as every other text to citizens gives them.
    numbers = {name: settings.EMERGENCY_NUMBERS[name] for name in ("police", "fire", "ambulance")}
    return _in_script(_HELP_COMING[_lang(language)].format(reference=reference, **numbers), script, language)


def visit_task(person_name: str, address: str, area: str, visit_id: int) -> str:
    """To the worker sent to visit: who, where, and where in the console to take it (a link, when the service
    knows its public address)."""
    page = console_url("/console/welfare/visits/")
    return (
        f"Posjeta (provjera dobrobiti) #{visit_id}: {person_name}, {address}, {area}. "
        "Nismo ih uspjeli dobiti ni porukom ni pozivom. Preuzmite zadatak u konzoli"
        + (f": {page}" if page else " (Obilasci).")
    )


# Needs as a short SMS names them, for the visit to go to first.
_NEEDS_IN_SHORT = {
    "power_device": "aparat na struju", "dialysis": "dijaliza", "lives_alone": "živi sam/a",
    "mobility": "otežano kretanje", "dementia": "demencija", "children_in_care": "djeca na brizi",
}  # fmt: skip


def visits_waiting(
    *, count: int, areas: list[tuple[str, int]], oldest_minutes: int, first: int, first_area: str,
    first_needs: list[str], yours: int,
) -> str:  # fmt: skip
    """Several visits nobody has taken, in one SMS to a person the ladder tells: how many, where, how long the
    oldest has waited, and which to go to first (its number and needs: no name or address, which the console
    shows, so a lost phone holds less). `yours`: how many of them are this person's to take."""
    where = ", ".join(f"{area} {n}" for area, n in areas[:3]) + (", ..." if len(areas) > 3 else "")
    needs = ", ".join(_NEEDS_IN_SHORT[need] for need in first_needs if need in _NEEDS_IN_SHORT)
    page = console_url("/console/welfare/visits/")
    return (
        f"Obilasci: {count} nepreuzeto ({where}), najstariji {oldest_minutes} min. "
        f"Prvo #{first} ({first_area}{': ' + needs if needs else ''})."
        + (f" Vasih: {yours}." if yours else "")
        + (f" {page}" if page else " Konzola: Obilasci.")
    )
