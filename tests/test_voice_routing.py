"""A live call rings the people on duty one after another; whoever presses 1 takes the case."""
import pytest

from helpline.cases.models import Case, CaseStatus, EventKind
from helpline.casework import actions
from tests.factories import ShiftFactory, StaffFactory

pytestmark = pytest.mark.django_db

VOICE = "/webhooks/twilio/voice/"


def on_duty(**profile):
    return ShiftFactory(staff=StaffFactory(**profile)).staff


def start_call(twilio, sid="CA500", digits="1"):
    twilio.call(sid=sid)
    return twilio.call(VOICE + "language/", sid=sid, Digits=digits).content.decode()


def test_after_the_language_choice_the_call_rings_the_worker_on_duty(twilio):
    worker = on_duty(phone="+38761555001")
    twiml = start_call(twilio)
    assert "<Dial" in twiml and 'timeout="20"' in twiml and 'answerOnBridge="true"' in twiml
    assert "dial-result/?attempt=0" in twiml
    assert f">{worker.phone}</Number>" in twiml
    assert "voice/whisper/?case=" in twiml
    assert "<Record" not in twiml


def test_workers_are_rung_before_the_supervisor(twilio):
    worker = on_duty(phone="+38761555001")
    supervisor = on_duty(role="supervisor", phone="+38761555009")
    first = start_call(twilio)
    assert str(worker.phone) in first and str(supervisor.phone) not in first
    second = twilio.call(VOICE + "dial-result/?attempt=0", sid="CA500", DialCallStatus="no-answer").content.decode()
    assert str(supervisor.phone) in second and "attempt=1" in second


def test_someone_who_does_not_speak_the_callers_language_is_not_rung(twilio):
    on_duty(phone="+38761555001", languages=["bs"])
    twiml = start_call(twilio, digits="2")
    assert "<Dial" not in twiml and "<Record" in twiml


def test_when_nobody_answers_the_caller_leaves_a_voicemail(twilio):
    on_duty(phone="+38761555001")
    start_call(twilio)
    twiml = twilio.call(VOICE + "dial-result/?attempt=0", sid="CA500", DialCallStatus="no-answer").content.decode()
    assert "<Record" in twiml and "<Dial" not in twiml


def test_staff_without_a_phone_are_skipped(twilio):
    on_duty(phone="")
    assert "<Dial" not in start_call(twilio)


def test_the_worker_hears_the_case_and_must_press_1(twilio):
    worker = on_duty(phone="+38761555001")
    start_call(twilio)
    case = Case.objects.get()
    twiml = twilio.post(f"{VOICE}whisper/?case={case.reference}&staff={worker.pk}", {"CallSid": "CA501"}).content
    twiml = twiml.decode()
    assert "<Gather" in twiml and "Pritisnite 1" in twiml and twiml.endswith("<Hangup /></Response>")


def test_pressing_1_gives_the_worker_the_case_acknowledged_and_ends_the_hunt(twilio):
    worker = on_duty(phone="+38761555001")
    on_duty(role="supervisor", phone="+38761555009")
    start_call(twilio)
    case = Case.objects.get()
    accept = f"{VOICE}whisper/accept/?case={case.reference}&staff={worker.pk}"
    twilio.post(accept, {"CallSid": "CA501", "Digits": "1"})

    case.refresh_from_db()
    assert case.assigned_to == worker.user and case.status == CaseStatus.ACKNOWLEDGED
    after = twilio.call(VOICE + "dial-result/?attempt=0", sid="CA500", DialCallStatus="completed").content.decode()
    assert "<Hangup />" in after and "<Dial" not in after
    # The call ends: answered, not missed; nobody is sent to call back a caller a colleague just spoke with.
    twilio.call(VOICE + "status/", sid="CA500", CallStatus="completed", CallDuration="600")
    case.refresh_from_db()
    assert not case.needs_callback and not case.timeline.filter(kind=EventKind.CALL_MISSED).exists()


def test_another_key_is_not_an_answer(twilio):
    worker = on_duty(phone="+38761555001")
    start_call(twilio)
    case = Case.objects.get()
    twilio.post(f"{VOICE}whisper/accept/?case={case.reference}&staff={worker.pk}", {"CallSid": "CA501", "Digits": "9"})
    case.refresh_from_db()
    assert case.assigned_to is None


def test_a_forged_whisper_accept_is_refused(twilio):
    worker = on_duty(phone="+38761555001")
    start_call(twilio)
    case = Case.objects.get()
    path = f"{VOICE}whisper/accept/?case={case.reference}&staff={worker.pk}"
    assert twilio.post(path, {"CallSid": "CA501", "Digits": "1"}, signature="forged").status_code == 403
    assert Case.objects.get().assigned_to is None


def test_each_person_is_rung_once_although_the_order_of_the_hunt_changes_during_the_call(twilio):
    """The hunt is ordered by open cases; a case given to the first person while their phone rings must not make
    the next step ring them again and skip the other."""
    import html
    import re

    from tests.factories import CaseFactory

    busier = on_duty(phone="+38761555002")  # the lower id: first among equals
    CaseFactory(assigned_to=busier.user, status=CaseStatus.ASSIGNED)
    freer = on_duty(phone="+38761555001")
    first = start_call(twilio)
    assert f">{freer.phone}</Number>" in first

    CaseFactory(assigned_to=freer.user, status=CaseStatus.ASSIGNED)  # now level, and `busier` sorts first
    action = html.unescape(re.search(r'<Dial action="([^"]+)"', first).group(1))
    second = twilio.call(action.removeprefix("https://sos.example.test"), sid="CA500",
                         DialCallStatus="no-answer").content.decode()  # fmt: skip
    assert f">{busier.phone}</Number>" in second and str(freer.phone) not in second

    action = html.unescape(re.search(r'<Dial action="([^"]+)"', second).group(1))
    third = twilio.call(action.removeprefix("https://sos.example.test"), sid="CA500",
                        DialCallStatus="no-answer").content.decode()  # fmt: skip
    assert "<Record" in third and "<Dial" not in third  # both rung once: the caller leaves a voicemail


def test_a_caller_who_withholds_their_number_is_asked_for_one_and_not_promised_a_call_back(twilio):
    from helpline.intake import replies

    twilio.call(sid="CAanon", from_number="anonymous")
    prompt = twilio.call(VOICE + "language/", sid="CAanon", from_number="anonymous", Digits="1").content.decode()
    assert "<Record" in prompt  # nobody on duty: voicemail
    asked = replies.voice_voicemail_prompt(reference="X", language="bs", number_withheld=True).split(". ")[-1]
    assert asked.rstrip(".") in prompt
    promised = replies.voice_goodbye(language="bs")
    goodbye = twilio.call(VOICE + "recorded/", sid="CAanon", from_number="anonymous").content.decode()
    assert promised not in goodbye and promised not in prompt
    assert replies.voice_goodbye(language="bs", number_withheld=True) in goodbye


def _follow(twilio, twiml: str, pattern: str, sid: str, **params):
    """Post to a URL the TwiML gave Twilio (a Dial's action, a Number's whisper, a Gather's action), as Twilio does."""
    import html
    import re

    url = html.unescape(re.search(pattern, twiml).group(1)).removeprefix("https://sos.example.test")
    return twilio.call(url, sid=sid, **params).content.decode()


def answer(twilio, dialling: str, *, leg: str = "CA599") -> None:
    """The person the TwiML rings picks up and presses 1 at the whisper."""
    whisper = _follow(twilio, dialling, r'<Number [^>]*url="([^"]+)"', leg)
    _follow(twilio, whisper, r'<Gather action="([^"]+)"', leg, Digits="1")


def dial_ends(twilio, dialling: str, *, sid: str, status: str = "no-answer") -> str:
    return _follow(twilio, dialling, r'<Dial action="([^"]+)"', sid, DialCallStatus=status)


def test_a_citizen_who_calls_again_on_a_case_answered_live_before_is_rung_through_to_the_next_person(twilio):
    """The first call was answered live; on the second, the first person rung does not answer: the caller must reach
    the next one, then the voicemail, not be hung up on because the case's earlier call was answered."""
    worker = on_duty(phone="+38761555001")
    supervisor = on_duty(role="supervisor", phone="+38761555009")
    first_call = start_call(twilio, sid="CA500")
    answer(twilio, first_call, leg="CA501")
    assert "<Hangup />" in dial_ends(twilio, first_call, sid="CA500", status="completed")
    twilio.call(VOICE + "status/", sid="CA500", CallStatus="completed", CallDuration="300")

    second_call = start_call(twilio, sid="CA600")
    assert f">{worker.phone}</Number>" in second_call
    next_person = dial_ends(twilio, second_call, sid="CA600")
    assert f">{supervisor.phone}</Number>" in next_person
    assert "<Record" in dial_ends(twilio, next_person, sid="CA600")


def test_a_worker_who_presses_1_on_their_own_acknowledged_case_has_answered_the_call(twilio):
    """The case is theirs and acknowledged already (by SMS); the citizen calls, they press 1 and talk: the caller is
    not then rung through to someone else and the voicemail, and the call is not a missed one."""
    from notifications.acknowledgement import acknowledge_case

    worker = on_duty(phone="+38761555001")
    on_duty(role="supervisor", phone="+38761555009")
    twilio.sms("Treba mi pomoć", sid="SM700")
    case = Case.objects.get()
    acknowledge_case(case, by=worker.user, via="SMS")

    call = start_call(twilio, sid="CA700")
    assert f">{worker.phone}</Number>" in call
    answer(twilio, call, leg="CA701")
    assert "<Hangup />" in dial_ends(twilio, call, sid="CA700", status="completed")
    twilio.call(VOICE + "status/", sid="CA700", CallStatus="completed", CallDuration="300")
    case.refresh_from_db()
    assert not case.needs_callback and not case.timeline.filter(kind=EventKind.CALL_MISSED).exists()


def test_a_worker_who_resolved_the_case_while_its_caller_rang_them_still_answers_the_call(twilio):
    # Pressing 1 on a case resolved meanwhile raised (a closed case is not taken): a server error on a live call.
    worker = on_duty(phone="+38761555001")
    twilio.sms("Treba mi pomoć", sid="SM710")
    case = Case.objects.get()
    call = start_call(twilio, sid="CA710")
    Case.objects.filter(pk=case.pk).update(status=CaseStatus.RESOLVED, assigned_to=worker.user)
    answer(twilio, call, leg="CA711")
    assert "<Hangup />" in dial_ends(twilio, call, sid="CA710", status="completed")
    assert case.timeline.filter(kind=EventKind.CALL_ANSWERED).exists()


def test_someone_whose_phone_is_failing_is_rung_after_those_whose_phones_work(twilio):
    """Their SMS came back undelivered minutes ago: the caller would wait out their ring for nothing first."""
    import datetime as dt

    from django.utils import timezone

    failing = on_duty(phone="+38761555002", phone_failing_since=timezone.now() - dt.timedelta(minutes=5))
    working = on_duty(phone="+38761555001")  # the higher id: last among equals, were it not for the phone
    first = start_call(twilio)
    assert f">{working.phone}</Number>" in first and str(failing.phone) not in first
    assert f">{failing.phone}</Number>" in dial_ends(twilio, first, sid="CA500")


def test_a_caller_nobody_could_take_during_a_crisis_hears_its_answer_before_the_emergency_numbers(twilio):
    supervisor = StaffFactory(role="supervisor", phone="")
    actions.do_declare_crisis_event(
        by=supervisor.user, title="Poplava Maglaj", places="Maglaj", answer="Zbog poplave odgovaramo sporije. "
        "Prihvatni centar: OŠ Maglaj.", answer_english="Because of the flood we answer slowly. Shelter: Maglaj school.",
    )  # fmt: skip

    in_bosnian = start_call(twilio, sid="CA800", digits="1")
    in_english = start_call(twilio, sid="CA801", digits="2")

    assert "<Record" in in_bosnian and "Prihvatni centar: OŠ Maglaj." in in_bosnian
    assert in_bosnian.index("OŠ Maglaj") < in_bosnian.index("122")  # then the police's number
    assert "Shelter: Maglaj school." in in_english and "Prihvatni" not in in_english


def test_a_caller_hears_no_crisis_answer_once_the_event_has_ended(twilio):
    supervisor = StaffFactory(role="supervisor", phone="")
    flood = actions.do_declare_crisis_event(
        by=supervisor.user, title="Poplava Maglaj", places="Maglaj", answer="Prihvatni centar: OŠ Maglaj."
    )
    actions.do_end_crisis_event(flood, by=supervisor.user)
    voicemail = start_call(twilio, sid="CA802")
    assert "<Record" in voicemail and "OŠ Maglaj" not in voicemail  # the prompt is said, without the event
