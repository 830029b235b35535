"""What the helpline says to a citizen: always the case reference, what happens next and the emergency numbers,
in the citizen's language, and in Cyrillic when they wrote in Cyrillic."""
from __future__ import annotations

from collections.abc import Sequence

from django.conf import settings
from django.utils import translation
from django.utils.translation import gettext

from helpline.cases.language import in_readers_script
from helpline.cases.models import Priority


def _in_citizens_words(language: str, script: str, render) -> str:
    with translation.override(language):
        text = render()
    return in_readers_script(text, script=script, language=language)


def _numbers() -> dict[str, str]:
    return {"helpline": settings.HELPLINE_NAME, **settings.EMERGENCY_NUMBERS}


def emergency_sentence() -> str:
    return gettext(
        "If you are in immediate danger, call the police on %(police)s or an ambulance on %(ambulance)s."
    ) % _numbers()


def _sms_emergency_sentence() -> str:
    # Shorter than the pages' sentence: with diacritics or Cyrillic an SMS segment holds 67 characters, and the
    # receipt must stay within two (a surge sends thousands, each segment paid for and queued at the number's rate).
    return gettext("In danger now? Police %(police)s, ambulance %(ambulance)s.") % _numbers()


def sms_case_reply(*, reference: str, is_new_case: bool, language: str, script: str) -> str:
    """The receipt: the reference, what happens next and the emergency numbers, in at most two SMS segments."""

    def render() -> str:
        if is_new_case:
            first = gettext("%(helpline)s: message received, case %(reference)s.")
        else:
            first = gettext("%(helpline)s: message added to case %(reference)s.")
        next_step = gettext("A social worker will contact you.")
        return " ".join([first % {**_numbers(), "reference": reference}, next_step, _sms_emergency_sentence()])

    return _in_citizens_words(language, script, render)


def sms_opt_out_reply(*, language: str, script: str) -> str:
    def render() -> str:
        return " ".join(
            [
                gettext("%(helpline)s: you will receive no more SMS from us. Send START to receive them again.")
                % _numbers(),
                _sms_emergency_sentence(),
            ]
        )

    return _in_citizens_words(language, script, render)


def sms_opt_in_reply(*, language: str, script: str) -> str:
    def render() -> str:
        return " ".join(
            [gettext("%(helpline)s: you will receive our SMS again.") % _numbers(), _sms_emergency_sentence()]
        )

    return _in_citizens_words(language, script, render)


def spoken_reference(reference: str) -> str:
    """SOS-2026-00042 read aloud digit by digit, so the caller can write it down."""
    return ", ".join(" ".join(part) for part in reference.split("-"))


def voice_greeting() -> dict[str, str]:
    """The language menu, each line in its own language."""
    with translation.override("bs"):
        bosnian = gettext("You have reached %(helpline)s. For Bosnian, Croatian or Serbian, press 1.") % _numbers()
    with translation.override("en"):
        english = gettext("For English, press 2.")
    return {"bs": bosnian, "en": english}


def voice_voicemail_prompt(
    *, reference: str, language: str, number_withheld: bool = False, crisis_answers: Sequence[str] = ()
) -> str:
    """With the number withheld nobody can call back unless the caller says a number: they are asked for one.
    `crisis_answers`: what the supervisors' declared crisis events tell citizens (the delay, where help points are),
    said before the emergency numbers."""
    with translation.override(language):
        return " ".join(
            [
                gettext("Your call has been recorded under case number %(reference)s.")
                % {"reference": spoken_reference(reference)},
                *crisis_answers,
                emergency_sentence(),
                gettext(
                    "Please leave a message after the tone: tell us what is happening, where you are, and "
                    "whether it is safe to call you back. Then hang up."
                ),
                *([gettext("We cannot see your number: say a number where we can call you back.")]
                  if number_withheld else []),
            ]
        )  # fmt: skip


def fallback_voice(*, language: str) -> str:
    """What a caller hears from Twilio's "Primary handler fails" TwiML while our service cannot answer at all: the
    call is in Twilio's log, and the worker turns it into a missed call to call back (helpline/intake/recovery.py)
    once the service is back. Never the case number: there is none yet."""
    with translation.override(language):
        return " ".join([
            gettext("Our service cannot answer the call right now. We can see that you called: unless your number "
                    "is hidden, a social worker will call you back as soon as possible."),
            emergency_sentence(),
        ])  # fmt: skip


def voice_goodbye(*, language: str, number_withheld: bool = False) -> str:
    """Never the promise of a call back that cannot come: with the number withheld, the caller is told so."""
    with translation.override(language):
        if number_withheld:
            thanks = gettext(
                "Thank you. A social worker will listen to your message as soon as possible. We cannot see your "
                "number: if you did not say one, please call us again."
            )
        else:
            thanks = gettext("Thank you. A social worker will call you back as soon as possible.")
        return " ".join([thanks, emergency_sentence()])


def voice_connecting(*, language: str) -> str:
    with translation.override(language):
        return gettext("We are connecting you to a social worker on duty. Please stay on the line.")


def voice_whisper(*, reference: str, priority: str) -> str:
    """What the worker hears before the caller is put through (in the centre's language)."""
    with translation.override(settings.LANGUAGE_CODE):
        return gettext("%(helpline)s: a call for case %(reference)s, priority %(priority)s. Press 1 to take it.") % {
            **_numbers(),
            "reference": spoken_reference(reference),
            "priority": _priority_label(priority),
        }


def _priority_label(priority: str) -> str:
    return str(Priority(priority).label).lower() if priority in Priority.values else gettext("not yet known")
