"""Print the TwiML for the SOS number's "Primary handler fails" URLs in the Twilio console (a TwiML Bin each).

Twilio answers with these itself when our webhooks cannot be reached: the caller hears, in both languages, that the
call was seen and the emergency numbers, and is put through to the first of ESCALATION_FALLBACK_NUMBERS if any; the
texter reads that the message was received. Both contacts stay in Twilio's log, and the worker stores them once the
service is back (helpline/intake/recovery.py). Run again after changing the emergency or fallback numbers.
"""
from django.conf import settings
from django.core.management.base import BaseCommand
from twilio.twiml.messaging_response import MessagingResponse
from twilio.twiml.voice_response import VoiceResponse

from helpline.intake import replies

# How long the fallback number rings before the caller is told goodbye: about six rings.
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


def fallback_sms_twiml() -> str:
    response = MessagingResponse()
    response.message(replies.fallback_sms())
    return str(response)


class Command(BaseCommand):
    help = 'The TwiML for the SOS number\'s "Primary handler fails" URLs (voice and messaging), for TwiML Bins.'

    def handle(self, *args, **options) -> None:
        self.stdout.write("Voice (A call comes in > Primary handler fails):")
        self.stdout.write(fallback_voice_twiml())
        self.stdout.write("\nMessaging (A message comes in > Primary handler fails):")
        self.stdout.write(fallback_sms_twiml())
