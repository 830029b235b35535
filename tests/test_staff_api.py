"""Social workers and supervisors work cases through the API; each sees only what their role allows."""

import datetime as dt

import pytest
import time_machine
from django.utils import timezone
from rest_framework.test import APIClient

from helpline.cases.models import Case, CaseRead, CaseStatus, Direction, EventKind
from helpline.casework import actions
from notifications import acknowledgement
from notifications.models import Notification
from tests.factories import CaseFactory, MessageFactory, ShiftFactory, StaffFactory
from tests.tokens import api_token

pytestmark = pytest.mark.django_db


def client_for(staff=None) -> APIClient:
    client = APIClient()
    if staff is not None:
        client.credentials(HTTP_AUTHORIZATION=f"Token {api_token(staff.user)}")
    return client


@pytest.fixture
def people():
    worker = StaffFactory(phone="+38761300001")
    other = StaffFactory(phone="+38761300002")
    supervisor = StaffFactory(role="supervisor", phone="+38761300009")
    return {"worker": worker, "other": other, "supervisor": supervisor}


@pytest.fixture
def cases(people):
    mine = CaseFactory(assigned_to=people["worker"].user, status=CaseStatus.ASSIGNED, priority="high")
    MessageFactory(case=mine, body="Muž me tuče")
    theirs = CaseFactory(assigned_to=people["other"].user, status=CaseStatus.ASSIGNED, priority="critical")
    queue = CaseFactory(status=CaseStatus.TRIAGED, priority="normal")
    return {"mine": mine, "theirs": theirs, "queue": queue}


def test_a_token_is_issued_for_a_username_and_password(people):
    user = people["worker"].user
    user.set_password("correct horse battery")
    user.save()
    response = APIClient().post("/api/v1/auth/token/", {"username": user.username, "password": "correct horse battery"})
    assert response.status_code == 200 and len(response.json()["token"]) == 64 and response.json()["expiry"]
    assert APIClient().post("/api/v1/auth/token/", {"username": user.username, "password": "x"}).status_code == 400


def test_failed_logins_are_rate_limited(people):
    client = APIClient()
    # A different name each time, so the login lockout (test_login_lockout) is not what stops them here.
    codes = [client.post("/api/v1/auth/token/", {"username": f"x{n}", "password": "y"}).status_code for n in range(11)]
    assert codes[:10] == [400] * 10 and codes[10] == 429


def test_a_worker_sees_their_cases_and_the_unassigned_queue_only(people, cases):
    response = client_for(people["worker"]).get("/api/v1/cases/")
    references = {row["reference"] for row in response.json()["results"]}
    assert references == {cases["mine"].reference, cases["queue"].reference}


def test_a_supervisor_sees_every_case_most_urgent_first(people, cases):
    rows = client_for(people["supervisor"]).get("/api/v1/cases/").json()["results"]
    assert [row["priority"] for row in rows] == ["critical", "high", "normal"]


def test_a_drills_cases_come_after_every_real_one(people, cases):
    drill = CaseFactory(status=CaseStatus.TRIAGED, priority="critical", is_drill=True)
    rows = client_for(people["supervisor"]).get("/api/v1/cases/").json()["results"]
    assert [row["reference"] for row in rows][-1] == drill.reference


def test_someone_elses_case_does_not_exist_for_a_worker(people, cases):
    client = client_for(people["worker"])
    assert client.get(f"/api/v1/cases/{cases['theirs'].pk}/").status_code == 404
    assert client.post(f"/api/v1/cases/{cases['theirs'].pk}/note/", {"text": "x"}).status_code == 404


def test_a_case_once_assigned_to_a_worker_stays_visible_to_them(people, cases):
    from helpline.cases import services

    services.assign_case(cases["mine"], people["worker"].user, explanation="first")
    services.assign_case(cases["mine"], people["other"].user, explanation="handover")
    assert client_for(people["worker"]).get(f"/api/v1/cases/{cases['mine'].pk}/").status_code == 200


@pytest.mark.parametrize(
    ("who", "method", "path", "expected"),
    [
        (None, "get", "/api/v1/cases/", 401),
        (None, "get", "/api/v1/me/", 401),
        (None, "get", "/api/v1/stats/", 401),
        (None, "get", "/api/v1/staff/", 401),
        ("worker", "get", "/api/v1/cases/", 200),
        ("worker", "get", "/api/v1/me/", 200),
        ("worker", "get", "/api/v1/stats/", 200),
        ("worker", "get", "/api/v1/staff/", 403),
        ("worker", "get", "/api/v1/shifts/", 403),
        ("worker", "post", "/api/v1/cases/{mine}/assign/", 403),
        ("worker", "post", "/api/v1/cases/{mine}/start/", 200),
        ("worker", "post", "/api/v1/cases/{queue}/start/", 403),
        ("worker", "post", "/api/v1/cases/{theirs}/start/", 404),
        ("other", "get", "/api/v1/cases/{mine}/", 404),
        ("supervisor", "get", "/api/v1/cases/{theirs}/", 200),
        ("supervisor", "get", "/api/v1/staff/", 200),
        ("supervisor", "get", "/api/v1/shifts/", 200),
        # Not acknowledged by its worker yet: a supervisor takes it (or reassigns it) before starting work.
        ("supervisor", "post", "/api/v1/cases/{theirs}/start/", 409),
    ],
)
def test_permission_matrix(people, cases, who, method, path, expected):
    client = client_for(people[who]) if who else APIClient()
    path = path.format(**{name: case.pk for name, case in cases.items()})
    response = getattr(client, method)(path, {}, format="json") if method == "post" else client.get(path)
    assert response.status_code in ((401, 403) if expected == 401 else (expected,)), response.content


def test_every_detail_read_is_on_record_for_supervisors(people, cases):
    client_for(people["worker"]).get(f"/api/v1/cases/{cases['mine'].pk}/")
    read = CaseRead.objects.get()
    assert (read.case, read.reader) == (cases["mine"], people["worker"].user)


def test_numbers_are_masked_in_lists_and_whole_only_for_the_assignee_and_supervisors(people, cases):
    number = str(cases["mine"].caller.phone)
    row = next(
        r for r in client_for(people["worker"]).get("/api/v1/cases/").json()["results"] if r["id"] == cases["mine"].pk
    )
    assert row["caller"] == f"{number[:6]} *** {number[-3:]}"
    assert client_for(people["worker"]).get(f"/api/v1/cases/{cases['mine'].pk}/").json()["caller_phone"] == number
    queue_number = str(cases["queue"].caller.phone)
    detail = client_for(people["worker"]).get(f"/api/v1/cases/{cases['queue'].pk}/").json()
    assert detail["caller_phone"] != queue_number and "***" in detail["caller_phone"]


def test_the_detail_has_the_conversation_timeline_and_earlier_cases(people, cases):
    earlier = CaseFactory(caller=cases["mine"].caller, status=CaseStatus.RESOLVED)
    body = client_for(people["supervisor"]).get(f"/api/v1/cases/{cases['mine'].pk}/").json()
    assert [m["body"] for m in body["messages"]] == ["Muž me tuče"]
    assert [c["reference"] for c in body["earlier_cases"]] == [earlier.reference]
    assert isinstance(body["timeline"], list)


def test_work_a_case_from_acknowledgement_to_resolution_and_reopening(people, cases):
    client = client_for(people["worker"])
    base = f"/api/v1/cases/{cases['mine'].pk}"
    assert client.post(f"{base}/acknowledge/").json()["status"] == "acknowledged"
    assert client.post(f"{base}/start/", {}, format="json").json()["status"] == "in_progress"
    assert client.post(f"{base}/resolve/", {}, format="json").status_code == 400  # an outcome is required
    shown = client.get(f"{base}/").json()["messages"][-1]["id"]
    resolved = client.post(f"{base}/resolve/", {"outcome": "safe house", "seen_message_id": shown}, format="json")
    assert resolved.json()["status"] == "resolved"
    reopened = client.post(f"{base}/reopen/", {"reason": "she wrote again"}, format="json").json()
    assert reopened["status"] == "acknowledged"  # the worker reopening their own case has it in hand
    kinds = list(
        cases["mine"].timeline.filter(kind=EventKind.STATUS_CHANGED).values_list("details__to_status", flat=True)
    )
    assert kinds == ["acknowledged", "in_progress", "resolved", "assigned", "acknowledged"]


def test_an_illegal_transition_is_a_409_with_the_reason(people, cases):
    client = client_for(people["worker"])
    response = client.post(f"/api/v1/cases/{cases['mine'].pk}/reopen/", {}, format="json")
    assert response.status_code == 409 and "detail" in response.json()


def test_a_supervisor_reassigns_and_the_new_worker_is_notified(people, cases):
    response = client_for(people["supervisor"]).post(
        f"/api/v1/cases/{cases['theirs'].pk}/assign/", {"staff_id": people["worker"].user.pk}, format="json"
    )
    assert response.status_code == 200 and response.json()["assigned_to"]["id"] == people["worker"].user.pk
    assert Notification.objects.filter(recipient=people["worker"].user, kind="assignment").exists()


def test_a_note_is_internal_and_a_reply_reaches_the_citizen_through_the_outbox(people, cases):
    client = client_for(people["worker"])
    base = f"/api/v1/cases/{cases['mine'].pk}"
    assert client.post(f"{base}/note/", {"text": "Called the police."}, format="json").status_code == 201
    reply = client.post(f"{base}/reply/", {"text": "Pomoć stiže."}, format="json")
    assert reply.status_code == 201 and reply.json()["delivery_status"] == "queued"
    sms = Notification.objects.get(kind="citizen_reply")
    assert str(sms.to_number) == str(cases["mine"].caller.phone) and sms.body == "Pomoć stiže."
    assert cases["mine"].messages.filter(direction=Direction.OUTBOUND).count() == 1  # the note is not a message


def test_a_reply_on_a_web_case_appears_on_the_citizens_status_page_without_an_sms(people, client):
    created = client.post("/api/v1/inquiries/", {"message": "Pomoć"}, content_type="application/json").json()
    case = Case.objects.get()
    case.assigned_to, case.status = people["worker"].user, CaseStatus.ASSIGNED
    case.save()
    client_for(people["worker"]).post(f"/api/v1/cases/{case.pk}/reply/", {"text": "Zovemo sutra."}, format="json")
    status = client.get(created["status_url"], HTTP_X_INQUIRY_TOKEN=created["token"]).json()
    assert [r["text"] for r in status["replies"]] == ["Zovemo sutra."]
    assert not Notification.objects.filter(kind="citizen_reply").exists()


def test_reclassify_needs_a_reason_and_is_on_the_timeline(people, cases):
    client = client_for(people["worker"])
    base = f"/api/v1/cases/{cases['mine'].pk}/reclassify/"
    assert client.post(base, {"priority": "critical", "category": "child_protection"}, format="json").status_code == 400
    ok = client.post(base, {"priority": "critical", "category": "child_protection", "reason": "djeca"}, format="json")
    assert ok.json()["priority"] == "critical"
    assert cases["mine"].timeline.get(kind=EventKind.RECLASSIFIED).details["reason"] == "djeca"


def test_filters(people, cases):
    client = client_for(people["supervisor"])

    def refs(query: str) -> set[str]:
        return {row["reference"] for row in client.get(f"/api/v1/cases/?{query}").json()["results"]}

    assert refs("priority=critical&priority=high") == {cases["theirs"].reference, cases["mine"].reference}
    assert refs("status=triaged") == {cases["queue"].reference}
    assert refs(f"assigned_to={people['other'].user.pk}") == {cases["theirs"].reference}
    assert refs("search=tuče") == {cases["mine"].reference}
    assert refs(f"search={cases['queue'].reference}") == {cases["queue"].reference}
    Case.objects.filter(pk=cases["theirs"].pk).update(acknowledge_by=timezone.now() - dt.timedelta(minutes=1))
    assert refs("overdue=true") == {cases["theirs"].reference}
    newest_first = [row["reference"] for row in client.get("/api/v1/cases/?ordering=-created").json()["results"]]
    assert newest_first == [cases[name].reference for name in ("queue", "theirs", "mine")]


def test_assigned_to_me(people, cases):
    rows = client_for(people["worker"]).get("/api/v1/cases/?assigned_to=me").json()["results"]
    assert [row["reference"] for row in rows] == [cases["mine"].reference]


def test_the_list_takes_the_same_number_of_queries_for_a_few_or_many_cases(people, django_assert_max_num_queries):
    client = client_for(people["supervisor"])
    for _ in range(3):
        CaseFactory(assigned_to=people["worker"].user, status=CaseStatus.ASSIGNED)
    with django_assert_max_num_queries(6):
        client.get("/api/v1/cases/?page_size=100")
    for _ in range(40):
        CaseFactory(assigned_to=people["worker"].user, status=CaseStatus.ASSIGNED)
    with django_assert_max_num_queries(6):
        assert len(client.get("/api/v1/cases/?page_size=100").json()["results"]) == 43


def test_the_detail_takes_a_constant_number_of_queries(people, cases, django_assert_max_num_queries):
    client = client_for(people["supervisor"])
    for _ in range(20):
        MessageFactory(case=cases["mine"], body="još")
    with django_assert_max_num_queries(12):
        client.get(f"/api/v1/cases/{cases['mine'].pk}/")


def test_me_tells_whether_i_am_on_duty_and_my_open_cases(people, cases):
    ShiftFactory(staff=people["worker"])
    body = client_for(people["worker"]).get("/api/v1/me/").json()
    assert body["is_on_duty"] is True and [c["reference"] for c in body["open_cases"]] == [cases["mine"].reference]


def test_a_shift_ending_before_it_starts_is_a_400(people):
    client = client_for(people["supervisor"])
    start = timezone.now()
    bad = {
        "staff": people["worker"].pk,
        "starts_at": start.isoformat(),
        "ends_at": (start - dt.timedelta(hours=1)).isoformat(),
    }
    response = client.post("/api/v1/shifts/", bad, format="json")
    assert response.status_code == 400 and "ends_at" in response.json()
    good = {**bad, "ends_at": (start + dt.timedelta(hours=8)).isoformat()}
    assert client.post("/api/v1/shifts/", good, format="json").status_code == 201
    assert client.post("/api/v1/shifts/", good, format="json").status_code == 201  # overlapping shifts are allowed


def test_stats_count_and_time_acknowledgements(people, cases):
    taken_at = cases["mine"].created_at + dt.timedelta(seconds=90)
    with time_machine.travel(taken_at, tick=False):
        acknowledgement.acknowledge_case(cases["mine"], by=people["worker"].user, via="API")
    body = client_for(people["supervisor"]).get("/api/v1/stats/").json()
    assert body["cases"] == 3 and body["by_priority"] == {"critical": 1, "high": 1, "normal": 1}
    assert body["time_to_acknowledge_seconds"]["median"] == 90.0
    # Reassigned two days later and taken at once by someone else: the citizen waited 90 s, not two days.
    with time_machine.travel(taken_at + dt.timedelta(days=2), tick=False):
        actions.do_assign(Case.objects.get(pk=cases["mine"].pk), by=people["supervisor"].user, staff=people["worker"])
        acknowledgement.acknowledge_case(cases["mine"], by=people["worker"].user, via="API")
    body = client_for(people["supervisor"]).get("/api/v1/stats/").json()
    assert body["time_to_acknowledge_seconds"]["median"] == 90.0
    assert people["worker"].user.username in body["per_worker"]
    assert "per_worker" not in client_for(people["worker"]).get("/api/v1/stats/").json()


def test_the_schema_and_its_docs_page_are_served_without_the_internet(client):
    schema = client.get("/api/v1/schema/")
    assert schema.status_code == 200 and b"/api/v1/cases/{id}/acknowledge/" in schema.content
    docs = client.get("/api/v1/docs/").content.decode()
    assert "drf_spectacular_sidecar/swagger-ui-dist" in docs and "cdn" not in docs.lower()


@pytest.mark.parametrize(
    ("moment", "expected"),
    [("9384-11-02T11:20:14-23:44", 200), ("not-a-date", 400), ("0001-01-01T00:10:00+05:00", 400)],
)
def test_any_date_gets_an_answer_or_a_400_never_a_500(people, moment, expected):
    client = client_for(people["supervisor"])
    assert client.get("/api/v1/cases/", {"created_before": moment}).status_code == expected
    assert client.get("/api/v1/stats/", {"created_after": moment}).status_code == expected


def test_a_date_with_an_unusual_offset_is_understood(people, cases):
    client = client_for(people["supervisor"])
    response = client.get("/api/v1/cases/", {"created_after": "2000-01-01T00:00:00-09:30"})
    assert response.status_code == 200 and response.json()["count"] == 3


def test_the_worker_sees_that_the_reply_reached_the_citizens_phone(people, cases, twilio_api, twilio):
    from notifications import outbox

    client = client_for(people["worker"])
    client.post(f"/api/v1/cases/{cases['mine'].pk}/reply/", {"text": "Pomoć stiže."}, format="json")
    sms = Notification.objects.get(kind="citizen_reply")
    outbox.deliver(sms.pk)
    sms.refresh_from_db()
    for status in ("delivered", "sent"):  # Twilio's callbacks, the later one first
        twilio.post(f"/webhooks/twilio/message-status/?n={sms.pk}", {"MessageSid": sms.provider_sid,
                                                                     "MessageStatus": status})  # fmt: skip
    case = client.get(f"/api/v1/cases/{cases['mine'].pk}/").json()
    replies = [m for m in case["messages"] if m["direction"] == "outbound"]
    assert [(m["body"], m["delivery_status"]) for m in replies] == [("Pomoć stiže.", "delivered")]


@pytest.mark.parametrize("ordering", ["priority", "-priority", "deadline"])
def test_paging_through_a_chosen_order_shows_every_case_once(people, ordering):
    """Most cases share a priority and many no deadline: without a tie-breaker PostgreSQL may give ties in another
    order on each page, and a critical case fell between two pages."""
    now = timezone.now()
    Case.objects.bulk_create(
        Case(reference=f"T-{n:04d}", channel="sms", status=CaseStatus.TRIAGED, priority=("normal", "high")[n % 2],
             acknowledge_by=now if n % 3 else None)
        for n in range(300)
    )  # fmt: skip
    client = client_for(people["supervisor"])
    seen = []
    for page in range(1, 13):
        rows = client.get(f"/api/v1/cases/?ordering={ordering}&page={page}").json()["results"]
        seen += [row["reference"] for row in rows]
    assert len(seen) == 300 and len(set(seen)) == 300
