"""A citizen calls the SOS line: the call is a case at once, they choose a language and can leave a voicemail."""
import pytest

from helpline.cases.models import Case, EventKind, Message

pytestmark = pytest.mark.django_db

VOICE = "/webhooks/twilio/voice/"


def test_a_call_opens_a_case_and_offers_a_language_menu(twilio):
    response = twilio.call(sid="CA001")

    assert response.status_code == 200
    twiml = response.content.decode()
    assert "<Gather" in twiml and 'numDigits="1"' in twiml
    assert "https://sos.example.test/webhooks/twilio/voice/language/" in twiml
    assert "English, press 2" in twiml
    case = Case.objects.get()
    assert case.channel == "voice"
    assert case.messages.get().twilio_sid == "CA001"
    assert list(case.timeline.values_list("kind", flat=True)) == [EventKind.CREATED, EventKind.CALL_RECEIVED]


def test_a_repeated_call_webhook_is_one_case_and_one_message(twilio):
    twilio.call(sid="CA002")
    twilio.call(sid="CA002")
    assert Case.objects.count() == 1 and Message.objects.count() == 1


def test_choosing_english_leads_to_a_voicemail_in_english_with_the_case_number(twilio):
    twilio.call(sid="CA003")
    response = twilio.call(VOICE + "language/", sid="CA003", Digits="2")

    twiml = response.content.decode()
    case = Case.objects.get()
    assert case.language == "en"
    assert "<Record" in twiml
    assert 'recordingStatusCallback="https://sos.example.test/webhooks/twilio/voice/recording/"' in twiml
    assert 'language="en-GB"' in twiml
    number = case.reference.rsplit("-", 1)[1]
    assert " ".join(number) in twiml  # the number is read digit by digit
    assert "122" in twiml and "124" in twiml
    assert EventKind.LANGUAGE_CHOSEN in case.timeline.values_list("kind", flat=True)


def test_no_key_pressed_continues_in_bosnian(twilio):
    twilio.call(sid="CA004")
    response = twilio.call(VOICE + "language/", sid="CA004")
    assert Case.objects.get().language == "bs"
    assert 'language="hr-HR"' in response.content.decode()


def test_the_voicemail_recording_is_attached_to_the_case_once(twilio):
    twilio.call(sid="CA005")
    params = {"RecordingSid": "RE005", "RecordingUrl": "https://api.twilio.com/rec/RE005", "RecordingDuration": "42",
              "RecordingStatus": "completed"}  # fmt: skip
    first = twilio.call(VOICE + "recording/", sid="CA005", **params)
    second = twilio.call(VOICE + "recording/", sid="CA005", **params)

    assert first.status_code == second.status_code == 204
    message = Message.objects.get()
    assert message.recording_url == "https://api.twilio.com/rec/RE005" and message.recording_seconds == 42
    kinds = list(message.case.timeline.values_list("kind", flat=True))
    assert kinds.count(EventKind.VOICEMAIL_RECEIVED) == 1


def test_the_caller_who_hangs_up_before_the_voicemail_is_marked_for_a_call_back(twilio):
    twilio.call(sid="CA006")
    twilio.call(VOICE + "status/", sid="CA006", CallStatus="completed", CallDuration="4")
    twilio.call(VOICE + "status/", sid="CA006", CallStatus="completed", CallDuration="4")

    case = Case.objects.get()
    assert case.needs_callback
    assert list(case.timeline.values_list("kind", flat=True)).count(EventKind.CALL_MISSED) == 1


def test_a_call_with_a_voicemail_is_not_recorded_as_missed(twilio):
    twilio.call(sid="CA007")
    twilio.call(VOICE + "recording/", sid="CA007", RecordingSid="RE007", RecordingUrl="https://x.test/r",
                RecordingDuration="10", RecordingStatus="completed")  # fmt: skip
    twilio.call(VOICE + "status/", sid="CA007", CallStatus="completed")
    case = Case.objects.get()
    assert EventKind.CALL_MISSED not in case.timeline.values_list("kind", flat=True)


def test_a_voicemail_whose_recording_callback_comes_after_the_call_ended_is_not_a_missed_call(twilio):
    # Twilio usually posts the call's "completed" before the recording's callback: the Record action (which comes
    # first, and carries the recording) attaches it.
    twilio.call(sid="CA017")
    twilio.call(VOICE + "recorded/", sid="CA017", RecordingSid="RE017", RecordingUrl="https://x.test/r",
                RecordingDuration="12")  # fmt: skip
    twilio.call(VOICE + "status/", sid="CA017", CallStatus="completed")
    twilio.call(VOICE + "recording/", sid="CA017", RecordingSid="RE017", RecordingUrl="https://x.test/r",
                RecordingDuration="12", RecordingStatus="completed")  # fmt: skip
    case = Case.objects.get()
    kinds = list(case.timeline.values_list("kind", flat=True))
    assert EventKind.CALL_MISSED not in kinds and kinds.count(EventKind.VOICEMAIL_RECEIVED) == 1
    assert not case.needs_callback and case.messages.get().recording_sid == "RE017"


def test_a_voicemail_first_reported_without_its_address_can_be_played_once_the_address_comes(twilio):
    # Twilio's Record action may post before the recording is stored, with no RecordingUrl; its status callback then
    # brings the address, which was dropped as a repeat: the console had a voicemail nobody could play.
    twilio.call(sid="CA018")
    twilio.call(VOICE + "recorded/", sid="CA018", RecordingSid="RE018", RecordingUrl="", RecordingDuration="15")
    twilio.call(VOICE + "recording/", sid="CA018", RecordingSid="RE018", RecordingUrl="https://api.twilio.com/rec/RE018",
                RecordingDuration="15", RecordingStatus="completed")  # fmt: skip
    message = Message.objects.get()
    assert message.recording_url == "https://api.twilio.com/rec/RE018" and message.recording_seconds == 15
    assert list(message.case.timeline.values_list("kind", flat=True)).count(EventKind.VOICEMAIL_RECEIVED) == 1


@pytest.mark.parametrize("withheld", ["+266696687", "+8656696", "+86282452253"], ids=["anonymous", "unknown",
                                                                                      "unavailable"])  # fmt: skip
def test_a_withheld_number_is_an_anonymous_case_that_cannot_be_called_back(twilio, withheld):
    twilio.call(sid="CA008", from_number=withheld)
    twilio.call(VOICE + "status/", sid="CA008", CallStatus="no-answer")
    twilio.call(sid="CA008b", from_number=withheld)  # another stranger: a case of their own
    case = Case.objects.order_by("pk").first()
    assert case.caller is None and not case.needs_callback
    assert case.timeline.get(kind=EventKind.CALL_MISSED).details["can_call_back"] is False
    assert Case.objects.count() == 2


def test_a_second_call_from_the_same_number_joins_the_open_case(twilio):
    twilio.call(sid="CA009")
    twilio.call(sid="CA010")
    assert Case.objects.count() == 1 and Message.objects.count() == 2


def test_a_forged_voice_webhook_is_refused(twilio):
    response = twilio.post(VOICE, {"CallSid": "CA011", "From": "+38761123456"}, signature="nope")
    assert response.status_code == 403
    assert not Case.objects.exists()


def test_recorded_action_says_goodbye_and_hangs_up(twilio):
    twilio.call(sid="CA012")
    twilio.call(VOICE + "language/", sid="CA012", Digits="2")
    response = twilio.call(VOICE + "recorded/", sid="CA012")
    twiml = response.content.decode()
    assert "<Hangup />" in twiml and "Thank you" in twiml
