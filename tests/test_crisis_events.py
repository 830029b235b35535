"""Crisis events: contacts about the same flood are grouped in the worker's triage step, each citizen gets the
event's automatic answer once, and one broadcast reply reaches every grouped citizen once."""
import datetime as dt

import pytest
import time_machine
from django.conf import settings
from django.utils import timezone

from helpline.cases.encryption import phone_index
from helpline.cases.models import Caller, Case
from helpline.casework import actions
from notifications import crisis, outbox
from notifications.models import CrisisContact, CrisisEvent, DeliveryStatus, Notification, NotificationKind
from tests.factories import CaseFactory, MessageFactory, ShiftFactory, StaffFactory

pytestmark = pytest.mark.django_db
START = dt.datetime(2026, 11, 23, 9, 0, tzinfo=dt.UTC)


@pytest.fixture(autouse=True)
def clock():
    with time_machine.travel(START, tick=False) as traveller:
        yield traveller


@pytest.fixture
def supervisor():
    staff = StaffFactory(role="supervisor", phone="+38761200309")
    ShiftFactory(staff=staff, starts_at=START - dt.timedelta(hours=1), ends_at=START + dt.timedelta(hours=12))
    return staff


@pytest.fixture
def flood(supervisor) -> CrisisEvent:
    return actions.do_declare_crisis_event(
        by=supervisor.user, title="Poplava Maglaj", places="Maglaj, Novi Šeher", keywords="poplava",
        answer="Zbog poplave odgovaramo sporije. Prihvatni centar: OŠ Maglaj.",
    )  # fmt: skip


def contact(text: str, *, phone: str, script: str = "latin", language: str = "bs") -> Case:
    """A citizen's SMS as intake stores it, then the worker's triage step."""
    caller = Caller.objects.get_or_create(phone_index=phone_index(phone), defaults={"phone": phone})[0]
    case = CaseFactory(caller=caller, script=script, language=language)
    MessageFactory(case=case, body=text)
    return actions.do_triage_case(case.pk)


def sent_to(phone: str, kind: str) -> list[Notification]:
    return list(Notification.objects.filter(to_number=phone, kind=kind))


def web_form(text: str, *, phone: str, safe_to_text: bool | None) -> Case:
    """A web inquiry that gave a phone number and answered "is it safe to text you?", then triage."""
    case = CaseFactory(channel="web", caller=None, contact_phone=phone, safe_to_text=safe_to_text)
    MessageFactory(case=case, channel="web", body=text)
    return actions.do_triage_case(case.pk)


def test_contacts_naming_the_event_are_grouped_and_answered_once_in_their_script(flood):
    latin = contact("Voda nam je ušla u kuću u Maglaju, treba nam pomoć", phone="+38761000001")
    cyrillic = contact("Поплава, заробљени смо на спрату", phone="+38761000002", script="cyrillic")
    elsewhere = contact("Treba mi pomoć oko ogrjeva u Tuzli", phone="+38761000003")
    assert set(CrisisContact.objects.values_list("case", flat=True)) == {latin.pk, cyrillic.pk}
    assert elsewhere.pk not in CrisisContact.objects.values_list("case", flat=True)

    actions.do_triage_case(latin.pk)  # triage ringing twice groups and answers once
    [answer] = sent_to("+38761000001", NotificationKind.CRISIS_ANSWER)
    assert "Prihvatni centar" in answer.body and "122" in answer.body  # the help point and the police number
    [answer] = sent_to("+38761000002", NotificationKind.CRISIS_ANSWER)
    assert "Прихватни центар" in answer.body
    assert not sent_to("+38761000003", NotificationKind.CRISIS_ANSWER)


def test_the_events_broadcast_reply_reaches_each_grouped_citizen_once(client, flood, supervisor):
    first = contact("Poplava u Novom Šeheru, nemamo struje", phone="+38761000011")
    Case.objects.filter(pk=first.pk).update(status="resolved")
    contact("Još uvijek čekamo, voda raste", phone="+38761000011")  # the same citizen again: one citizen
    second = contact("Maglaj: stara majka sama u kući, voda do prozora", phone="+38761000012")
    opted_out = contact("Poplava, Maglaj", phone="+38761000013")
    Caller.objects.filter(phone_index=phone_index("+38761000013")).update(has_opted_out=True)
    contact("Treba mi pomoć oko ogrjeva u Tuzli", phone="+38761000014")  # not in the event

    client.force_login(supervisor.user)
    board = client.get(f"/console/events/{flood.pk}/").content.decode()
    assert first.reference in board and second.reference in board
    token = board.split('name="token" value="')[1].split('"')[0]
    form = {"token": token, "text": "Spasilačke ekipe stižu večeras. Ostanite na spratu."}
    assert client.post(f"/console/events/{flood.pk}/broadcast/", form).status_code == 302
    assert client.post(f"/console/events/{flood.pk}/broadcast/", form).status_code == 302  # a re-click
    [broadcast] = flood.broadcasts.all()
    crisis.deliver_broadcast(broadcast.pk)
    crisis.deliver_broadcast(broadcast.pk)  # the doorbell rang twice (a redelivered task)

    reached = Notification.objects.filter(kind=NotificationKind.CRISIS_BROADCAST)
    assert sorted(reached.values_list("to_number", flat=True)) == ["+38761000011", "+38761000012"]
    assert all("Spasilačke ekipe" in n.body and "122" in n.body for n in reached)
    broadcast.refresh_from_db()
    assert (broadcast.reached, broadcast.skipped) == (2, 1)
    assert not any("Spasilačke" in m.body for m in opted_out.messages.filter(direction="outbound"))
    assert "stiglo do 2, preskočeno 1" in client.get(f"/console/events/{flood.pk}/").content.decode()  # in Bosnian


def test_a_citizen_who_writes_in_english_gets_the_english_answer_and_reply_when_the_supervisor_gave_them(
    client, supervisor
):
    event = actions.do_declare_crisis_event(
        by=supervisor.user, title="Poplava Maglaj", places="Maglaj", answer="Prihvatni centar: OŠ Maglaj.",
        answer_english="Shelter: Maglaj primary school.",
    )  # fmt: skip
    contact("Flood in Maglaj, water is in our house, we need help", phone="+38761000021", language="en")
    contact("Poplava u Maglaju, voda u kući", phone="+38761000022")
    [answer] = sent_to("+38761000021", NotificationKind.CRISIS_ANSWER)
    assert "Shelter: Maglaj primary school." in answer.body and "Prihvatni" not in answer.body
    assert "immediate danger" in answer.body  # the emergency numbers in English too
    [answer] = sent_to("+38761000022", NotificationKind.CRISIS_ANSWER)
    assert "Prihvatni centar" in answer.body

    client.force_login(supervisor.user)
    token = client.get(f"/console/events/{event.pk}/").content.decode().split('name="token" value="')[1].split('"')[0]
    form = {"token": token, "text": "Ekipe stižu večeras.", "text_english": "Rescue teams arrive tonight."}
    client.post(f"/console/events/{event.pk}/broadcast/", form)
    crisis.deliver_broadcast(event.broadcasts.get().pk)
    [reply] = sent_to("+38761000021", NotificationKind.CRISIS_BROADCAST)
    assert "Rescue teams arrive tonight." in reply.body
    [reply] = sent_to("+38761000022", NotificationKind.CRISIS_BROADCAST)
    assert "Ekipe stižu večeras." in reply.body
    assert "Rescue teams arrive tonight." in client.get(f"/console/events/{event.pk}/").content.decode()


def test_a_citizen_who_writes_in_english_gets_the_latin_answer_when_there_is_no_english_one(flood):
    contact("Flood in Maglaj, water is in our house", phone="+38761000023", language="en")
    [answer] = sent_to("+38761000023", NotificationKind.CRISIS_ANSWER)
    assert "Prihvatni centar" in answer.body and "immediate danger" in answer.body


def test_english_is_never_turned_into_cyrillic_letters_for_a_citizen_who_also_typed_cyrillic(flood, supervisor):
    # A case in English whose citizen then wrote "Маглај" is marked Cyrillic: its English stays in Latin letters.
    contact("Flood in Маглај, water is in our house", phone="+38761000024", script="cyrillic", language="en")
    [answer] = sent_to("+38761000024", NotificationKind.CRISIS_ANSWER)
    assert "immediate danger" in answer.body and "Prihvatni centar" in answer.body
    actions.do_end_crisis_event(flood, by=supervisor.user)
    actions.do_declare_crisis_event(
        by=supervisor.user, title="Poplava", places="Maglaj", answer="Kasnimo.", answer_english="We are slow.",
    )  # fmt: skip
    crisis.group_case(contact("Flood in Маглај again", phone="+38761000025", script="cyrillic", language="en"))
    [answer] = sent_to("+38761000025", NotificationKind.CRISIS_ANSWER)
    assert answer.body.startswith(f"{settings.HELPLINE_NAME}: We are slow.")


def test_a_broadcast_whose_doorbell_was_lost_is_rung_again_once_it_should_have_finished(
    flood, supervisor, clock, queues, django_capture_on_commit_callbacks
):
    # Its task was published once, and nothing looked at it again: "on its way to everyone" reached nobody.
    contact("Poplava u Maglaju, voda ulazi", phone="+38761000031")
    queues.purge("notifications", "default")
    broadcast = crisis.start_broadcast(flood, by=supervisor.user, token="t-1", text="Ekipe stižu večeras.")
    # (The test's transaction never commits: the doorbell above is never rung, as when the broker lost it.)
    assert crisis.ring_stalled_broadcasts() == 0  # not yet late
    clock.shift(dt.timedelta(minutes=3))
    with django_capture_on_commit_callbacks(execute=True):
        assert crisis.ring_stalled_broadcasts() == 1
    assert crisis.ring_stalled_broadcasts() == 0  # rung: not again at once
    assert queues.taken_in_order("notifications") == [(broadcast.pk,)]
    crisis.deliver_broadcast(broadcast.pk)
    assert Notification.objects.filter(kind=NotificationKind.CRISIS_BROADCAST).count() == 1
    clock.shift(dt.timedelta(minutes=3))
    assert crisis.ring_stalled_broadcasts() == 0  # finished


def test_one_person_with_an_sms_case_and_web_cases_is_one_citizen_and_drills_stay_out(flood, supervisor):
    # Keyed by caller, web cases (which have none) were each "a citizen": one number got the same broadcast and
    # the same automatic answer three times, and "reached 3" counted one person. Drill cases joined too.
    contact("Poplava u Maglaju, voda ulazi", phone="+38761000041")
    for _ in range(2):
        web = CaseFactory(channel="web", caller=None, contact_phone="+38761000041", safe_to_text=True)
        MessageFactory(case=web, body="Maglaj, poplava, trebamo evakuaciju")
        actions.do_triage_case(web.pk)
    drill = CaseFactory(is_drill=True, caller=None)
    MessageFactory(case=drill, body="Poplava u Maglaju (vježba)")
    actions.do_triage_case(drill.pk)

    assert len(sent_to("+38761000041", NotificationKind.CRISIS_ANSWER)) == 1
    broadcast = crisis.start_broadcast(flood, by=supervisor.user, token="t-41", text="Ekipe stižu.")
    crisis.deliver_broadcast(broadcast.pk)
    broadcast.refresh_from_db()
    assert (broadcast.reached, len(sent_to("+38761000041", NotificationKind.CRISIS_BROADCAST))) == (1, 1)
    assert not CrisisContact.objects.filter(case=drill).exists()
    assert crisis.event_figures(flood).grouped == 3


def test_declaring_an_event_needs_a_place_or_keyword_and_an_answer(client, supervisor):
    client.force_login(supervisor.user)
    response = client.post("/console/events/", {"title": "Poplava", "answer": "Sporije odgovaramo."})
    assert response.status_code == 400 and "barem jedno mjesto ili ključnu riječ" in response.content.decode()
    assert not CrisisEvent.objects.exists()
    response = client.post("/console/events/", {"title": "Poplava", "places": "Maglaj", "answer": "Sporije."})
    assert response.status_code == 302 and CrisisEvent.objects.get().title == "Poplava"


def test_a_broadcast_or_answer_too_long_for_one_sms_is_refused_saying_how_much_to_cut(client, flood, supervisor):
    # Twilio refuses an SMS over 1,600 characters: accepted, it failed for every citizen of the event at once.
    client.force_login(supervisor.user)
    board = client.get(f"/console/events/{flood.pk}/").content.decode()
    token = board.split('name="token" value="')[1].split('"')[0]
    shelters = "Prihvatni centar: Osnovna škola Maglaj, Ulica Maršala Tita 12. " * 30
    response = client.post(f"/console/events/{flood.pk}/broadcast/", {"token": token, "text": shelters}, follow=True)
    assert "shorten it by" in response.content.decode() or "skratite" in response.content.decode().lower()
    assert not flood.broadcasts.exists()
    response = client.post("/console/events/", {"title": "Poplava\x00", "places": "Tuzla", "answer": shelters})
    assert response.status_code == 400 and CrisisEvent.objects.count() == 1
    response = client.post("/console/events/", {"title": "Poplava\x00 Tuzla", "places": "Tuzla", "answer": "Sporije."})
    assert response.status_code == 302 and CrisisEvent.objects.filter(title="Poplava Tuzla").exists()


def test_an_ended_event_groups_no_new_contacts(flood, supervisor):
    actions.do_end_crisis_event(flood, by=supervisor.user)
    contact("Poplava u Maglaju", phone="+38761000021")
    assert not CrisisContact.objects.exists()


def test_a_worker_cannot_declare_an_event_or_broadcast(client, flood):
    worker = StaffFactory(phone="+38761200301")
    client.force_login(worker.user)
    assert client.post("/console/events/", {"title": "x", "places": "y", "answer": "z"}).status_code == 403
    assert client.post(f"/console/events/{flood.pk}/broadcast/", {"token": "t", "text": "x"}).status_code == 403


# --- Nobody who said no to SMS gets one: the refusal belongs to the number, whichever case it came through ------


def test_a_number_that_texted_stop_gets_no_crisis_sms_through_the_web_form_it_also_sent(flood, supervisor):
    Caller.objects.create(phone="+38761000051", has_opted_out=True)  # texted STOP before the flood
    web = web_form("Maglaj, voda u kući, trebamo pomoć", phone="+38761000051", safe_to_text=True)
    assert CrisisContact.objects.filter(case=web).exists()
    assert not sent_to("+38761000051", NotificationKind.CRISIS_ANSWER)
    assert web.messages.filter(direction="outbound", channel="web").exists()  # still on their status page

    broadcast = crisis.start_broadcast(flood, by=supervisor.user, token="t-51", text="Ekipe stižu.")
    crisis.deliver_broadcast(broadcast.pk)
    assert not sent_to("+38761000051", NotificationKind.CRISIS_BROADCAST)


def test_a_call_from_a_number_whose_web_form_said_texts_are_not_safe_gets_no_crisis_sms(flood, supervisor):
    # "Texts are not safe" means someone else reads that phone: it holds for every case from the number.
    web_form("Nasilje u kući, Maglaj", phone="+38761000052", safe_to_text=False)
    caller = Caller.objects.create(phone="+38761000052")
    call = CaseFactory(channel="voice", caller=caller)
    MessageFactory(case=call, channel="voice", body="Poplava u Maglaju, zarobljeni smo")
    actions.do_triage_case(call.pk)
    assert CrisisContact.objects.filter(case=call).exists()
    assert not sent_to("+38761000052", NotificationKind.CRISIS_ANSWER)

    broadcast = crisis.start_broadcast(flood, by=supervisor.user, token="t-52", text="Ekipe stižu.")
    crisis.deliver_broadcast(broadcast.pk)
    assert not sent_to("+38761000052", NotificationKind.CRISIS_BROADCAST)


def test_a_later_form_saying_texts_are_safe_again_lets_the_crisis_answer_go(flood, supervisor):
    # The citizen's latest word counts: "not safe" once (he was at home then) must not silence them for good.
    old = web_form("Nasilje u kući", phone="+38761000054", safe_to_text=False)
    Case.objects.filter(pk=old.pk).update(created_at=timezone.now() - dt.timedelta(days=30))
    web_form("Maglaj, voda u kući, sama sam, sada je sigurno pisati", phone="+38761000054", safe_to_text=True)
    assert sent_to("+38761000054", NotificationKind.CRISIS_ANSWER)


def test_a_broadcast_reaches_on_her_status_page_a_citizen_whose_form_said_texts_are_unsafe_and_who_then_called(
    flood, supervisor
):
    # Her call's case counted as able to take an SMS, so her web case was passed over; the call's SMS was then
    # refused at the number: she was skipped, and the notice never reached her one safe channel.
    web = web_form("Maglaj, voda u kući, muž mi čita poruke", phone="+38761000055", safe_to_text=False)
    caller = Caller.objects.create(phone="+38761000055")
    call = CaseFactory(channel="voice", caller=caller)
    MessageFactory(case=call, channel="voice", body="Poplava u Maglaju, zarobljeni smo")
    actions.do_triage_case(call.pk)
    broadcast = crisis.start_broadcast(flood, by=supervisor.user, token="t-55", text="Evakuacija u 18 h.")
    assert crisis.deliver_broadcast(broadcast.pk) == 1
    assert any("Evakuacija" in message.body for message in web.messages.all())
    assert not sent_to("+38761000055", NotificationKind.CRISIS_BROADCAST)


def test_stop_arriving_after_the_broadcast_was_queued_stops_its_sms(flood, supervisor, twilio, twilio_api):
    # The flood queue sends about one SMS a second: minutes pass between queueing and sending.
    web = web_form("Maglaj, voda u kući", phone="+38761000053", safe_to_text=True)
    broadcast = crisis.start_broadcast(flood, by=supervisor.user, token="t-53", text="Ekipe stižu.")
    crisis.deliver_broadcast(broadcast.pk)
    [queued] = sent_to("+38761000053", NotificationKind.CRISIS_BROADCAST)
    [answer] = sent_to("+38761000053", NotificationKind.CRISIS_ANSWER)

    assert twilio.sms("STOP", sid="SM0530", from_number="+38761000053").status_code == 200
    outbox.deliver(queued.pk)
    outbox.deliver(answer.pk)
    queued.refresh_from_db()
    answer.refresh_from_db()
    assert (queued.status, answer.status) == (DeliveryStatus.CANCELLED, DeliveryStatus.CANCELLED)
    assert "opted out" in queued.last_error
    assert not [m for m in twilio_api.messages if "Ekipe" in str(m)]
    assert queued.message.delivery_status.startswith("not sent")  # what the case's timeline shows
    assert web.pk == queued.case_id


def test_ending_an_event_stops_its_answers_and_broadcasts_still_waiting_to_be_sent(flood, supervisor, twilio_api):
    # The shelter the answer names may have flooded since: the supervisor ends the event to stop sending it.
    contact("Poplava u Maglaju, voda ulazi", phone="+38761000061")
    queued = crisis.start_broadcast(flood, by=supervisor.user, token="t-61", text="Prihvatni centar: OŠ Maglaj.")
    crisis.deliver_broadcast(queued.pk)  # in the outbox, waiting for its second
    running = crisis.start_broadcast(flood, by=supervisor.user, token="t-62", text="Ekipe stižu.")

    actions.do_end_crisis_event(flood, by=supervisor.user)
    crisis.deliver_broadcast(running.pk)  # its doorbell rings after the end
    for notification in Notification.objects.all():
        outbox.deliver(notification.pk)

    assert not [m for m in twilio_api.messages if m.form["To"] == "+38761000061"]
    stopped = Notification.objects.filter(kind__in=[NotificationKind.CRISIS_ANSWER, NotificationKind.CRISIS_BROADCAST])
    assert {(n.status, n.last_error) for n in stopped} == {(DeliveryStatus.CANCELLED, "the crisis event has ended")}
    case = Case.objects.get(caller__phone_index=phone_index("+38761000061"))
    assert not [m for m in case.messages.filter(direction="outbound") if "Ekipe" in m.body]  # never even written


def test_a_citizens_second_case_shows_no_automatic_answer_stuck_as_queued(flood):
    # The citizen gets the answer once, on their first case: the second case showed a copy "queued" for ever.
    first = contact("Poplava u Maglaju", phone="+38761000071")
    Case.objects.filter(pk=first.pk).update(status="resolved")
    second = contact("Voda i dalje raste u Maglaju", phone="+38761000071")
    assert first.pk != second.pk
    [answer] = sent_to("+38761000071", NotificationKind.CRISIS_ANSWER)
    assert answer.case_id == first.pk and answer.message.case_id == first.pk
    assert not second.messages.filter(direction="outbound").exists()


def test_declaring_the_same_event_twice_is_refused_so_each_citizen_gets_one_answer(client, flood, supervisor):
    # A double-click, or a second supervisor declaring the flood a minute later: two events, two answers each.
    client.force_login(supervisor.user)
    again = {"title": " poplava  maglaj", "places": "Novi Seher, Maglaj", "keywords": "voda", "answer": "Sporije."}
    response = client.post("/console/events/", again)
    assert response.status_code == 400 and "već postoji" in response.content.decode()
    assert CrisisEvent.objects.count() == 1
    contact("Poplava u Maglaju, voda ulazi", phone="+38761000081")
    assert len(sent_to("+38761000081", NotificationKind.CRISIS_ANSWER)) == 1

    other_town = {**again, "places": "Doboj"}
    assert client.post("/console/events/", other_town).status_code == 302
    actions.do_end_crisis_event(flood, by=supervisor.user)  # the water came back after the event ended
    assert client.post("/console/events/", again).status_code == 302


# --- Which contacts an event's places and keywords find -----------------------------------------------------------

TUZLA = CrisisEvent(places="Tuzla, Novi Šeher, Bare, Đurđevik", keywords="poplava")


@pytest.mark.parametrize(
    "text",
    [
        "Voda je u Tuzli do koljena",  # the last vowel changes with the case ending
        "Tuzla: voda do koljena",
        "Zarobljeni smo u Novom Šeheru",  # each word of a two-word name inflects
        "novom seheru, hitno",
        "Imamo poplave u podrumu",
        "Поплава у Тузли",  # Cyrillic as Latin
        "Вода у Новом Шехеру",
        "Durdevik je pod vodom",  # đ typed as d
        "Djurdjeviku treba pomoc",  # or as dj
        "Ђурђевик под водом",
        "U Barama? Ne, Bare su poplavljene",  # a short name as a whole word
    ],
)
def test_a_contact_naming_a_place_or_keyword_in_any_form_joins_the_event(text):
    assert crisis.matching_events(text, "other", [TUZLA])


@pytest.mark.parametrize(
    "text",
    [
        "Barem mi recite kad dolazite",  # "Bare" is not the start of "barem"
        "Novi auto mi je pokvaren",  # one word of "Novi Šeher" is not the place
        "Šeher je lijep u proljeće",
        "Stari Šeher, Novi Grad",  # both words, but not together
    ],
)
def test_a_contact_that_only_looks_like_a_place_is_not_grouped(text):
    assert not crisis.matching_events(text, "other", [TUZLA])


def test_a_call_from_tuzla_is_grouped_and_answered(supervisor):
    actions.do_declare_crisis_event(
        by=supervisor.user, title="Poplava Tuzla", places="Tuzla, Novi Šeher", keywords="poplava",
        answer="Prihvatni centar: OŠ Tuzla.",
    )  # fmt: skip
    contact("Voda nam je u kući u Tuzli", phone="+38761000091")
    assert sent_to("+38761000091", NotificationKind.CRISIS_ANSWER)


def test_a_broadcast_reaches_a_citizen_by_sms_through_whichever_of_their_cases_allows_it(flood, supervisor):
    # Claimed through their first case, a web form that never said SMS is safe, the citizen who then texted got
    # nothing but a line on a status page; and a call from a withheld number counted as "reached" with nothing sent.
    web_form("Maglaj, poplava", phone="+38761000101", safe_to_text=None)
    contact("Poplava u Maglaju, još čekamo", phone="+38761000101")
    withheld = CaseFactory(channel="voice", caller=None)
    MessageFactory(case=withheld, channel="voice", body="Poplava u Maglaju, zarobljeni smo")
    actions.do_triage_case(withheld.pk)
    assert CrisisContact.objects.filter(case=withheld).exists()

    broadcast = crisis.start_broadcast(flood, by=supervisor.user, token="t-101", text="Ekipe stižu.")
    crisis.deliver_broadcast(broadcast.pk)
    assert len(sent_to("+38761000101", NotificationKind.CRISIS_BROADCAST)) == 1
    broadcast.refresh_from_db()
    assert (broadcast.reached, broadcast.skipped) == (1, 1)


def test_a_broadcast_form_whose_token_holds_a_nul_character_is_sent_once_not_an_error_page(client, flood, supervisor):
    client.force_login(supervisor.user)
    form = {"token": "abc\x00def", "text": "Ekipe stižu večeras."}
    response = client.post(f"/console/events/{flood.pk}/broadcast/", form)
    assert response.status_code == 302
    assert client.post(f"/console/events/{flood.pk}/broadcast/", form).status_code == 302  # a re-click
    assert flood.broadcasts.count() == 1


def test_ending_an_event_asks_first_and_records_who_ended_it(client, flood, supervisor, caplog):
    # One tap ended the event, for good, and the event never said who had ended it.
    client.force_login(supervisor.user)
    page = client.get(f"/console/events/{flood.pk}/").content.decode()
    assert "Završi događaj…" in page and 'name="confirm"' in page

    client.post(f"/console/events/{flood.pk}/end/")  # without the confirmation: nothing ends
    flood.refresh_from_db()
    assert flood.ended_at is None

    with caplog.at_level("INFO"):
        client.post(f"/console/events/{flood.pk}/end/", {"confirm": "yes"})
    flood.refresh_from_db()
    assert flood.ended_at is not None and flood.ended_by == supervisor.user
    assert any(f"crisis event {flood.pk} ended by user {supervisor.user.pk}" in r.getMessage() for r in caplog.records)
    page = client.get(f"/console/events/{flood.pk}/").content.decode()
    assert f"završio/la {supervisor.user.get_full_name() or supervisor.user.get_username()}" in page


def voice_call(text: str, *, phone: str, safe_to_text: bool | None = None) -> Case:
    """A call whose voicemail names the event, then triage; `safe_to_text` as a worker recorded what they said."""
    caller = Caller.objects.get_or_create(phone_index=phone_index(phone), defaults={"phone": phone})[0]
    call = CaseFactory(channel="voice", caller=caller, safe_to_text=safe_to_text)
    MessageFactory(case=call, channel="voice", body=text)
    return actions.do_triage_case(call.pk)


def test_a_caller_who_never_said_sms_is_safe_gets_no_crisis_sms_but_one_who_said_so_does(flood, supervisor):
    # Replies already text a caller only when they said SMS is safe; the event's automatic answer and its
    # broadcast texted every caller, and the phone may be read by the person they called about.
    never_asked = voice_call("Poplava u Maglaju, zarobljeni smo", phone="+38761000111")
    voice_call("Maglaj, voda u kući", phone="+38761000112", safe_to_text=True)
    assert CrisisContact.objects.filter(case=never_asked).exists()
    assert not sent_to("+38761000111", NotificationKind.CRISIS_ANSWER)
    assert sent_to("+38761000112", NotificationKind.CRISIS_ANSWER)

    broadcast = crisis.start_broadcast(flood, by=supervisor.user, token="t-111", text="Ekipe stižu.")
    crisis.deliver_broadcast(broadcast.pk)
    assert not sent_to("+38761000111", NotificationKind.CRISIS_BROADCAST)
    assert sent_to("+38761000112", NotificationKind.CRISIS_BROADCAST)
    broadcast.refresh_from_db()
    assert (broadcast.reached, broadcast.skipped) == (1, 1)
    assert not never_asked.messages.filter(direction="outbound").exists()  # nothing that reads as sent


def test_a_crisis_sms_queued_for_a_caller_never_asked_about_sms_is_not_sent(flood, twilio_api):
    # Queued before the rule (or by any other path), it is held back when the outbox checks again before sending.
    call = voice_call("Poplava u Maglaju", phone="+38761000113")
    queued = outbox.queue_notification(
        key=f"crisis-answer:{flood.pk}:test", to_number="+38761000113", body="Prihvatni centar: OŠ Maglaj.",
        kind=NotificationKind.CRISIS_ANSWER, case=call,
    )  # fmt: skip
    outbox.deliver(queued.pk)
    queued.refresh_from_db()
    assert queued.status == DeliveryStatus.CANCELLED and "not asked" in queued.last_error
    assert not twilio_api.messages
