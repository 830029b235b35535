"""Print the TwiML for the SOS number's "Primary handler fails" URL for calls in the Twilio console (a TwiML Bin).

Twilio answers with it itself when our voice webhook cannot be reached: the caller hears, in both languages, that
the call was seen and the emergency numbers, and is put through to the first of ESCALATION_FALLBACK_NUMBERS if any.
The call stays in Twilio's log, and the worker stores it as a missed call once the service is back
(helpline/intake/recovery.py). Messages get no fallback answer: Twilio's own would reach a staff phone's silent alarm
too, and the receipt with the case number goes out once the SMS is recovered. Run again after changing the
emergency or fallback numbers.
"""
from django.conf import settings
from django.core.management.base import BaseCommand
from twilio.twiml.voice_response import VoiceResponse

from helpline.intake import replies

# How long the fallback number rings before the call ends: about six rings.
DIAL_TIMEOUT_SECONDS = 30


def fallback_voice_twiml() -> str:
    response = VoiceResponse()
    for language in ("bs", "en"):
        voice = settings.TWILIO_SAY_VOICES.get(language, {})
        response.say(
            replies.fallback_voice(language=language), language=voice.get("language"), voice=voice.get("voice") or None
        )
    if settings.ESCALATION_FALLBACK_NUMBERS:
        response.dial(settings.ESCALATION_FALLBACK_NUMBERS[0], timeout=DIAL_TIMEOUT_SECONDS)
    return str(response)


class Command(BaseCommand):
    help = 'The TwiML for the SOS number\'s "Primary handler fails" URL for calls, for a TwiML Bin.'

    def handle(self, *args, **options) -> None:
        self.stdout.write(fallback_voice_twiml())
