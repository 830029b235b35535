"""Working a case: "Start work" counts as taking it, and every action decides on the case as it is under its row
lock, not on the copy the request read before another person's change landed."""
import pytest
from django.conf import settings as django_settings
from django.db import transaction
from django.utils import timezone

from helpline.cases import services as case_services
from helpline.cases.models import Case, CaseStatus, EventKind
from helpline.cases.selectors import with_urgency
from helpline.cases.services import CaseTransitionError
from helpline.casework import actions
from notifications import ladder
from notifications.models import Notification
from tests.concurrency import run_at_once
from tests.factories import CaseFactory, MessageFactory, StaffFactory

requires_postgres = pytest.mark.skipif(
    "postgresql" not in django_settings.DATABASES["default"]["ENGINE"], reason="needs concurrent transactions"
)


@pytest.fixture
def people():
    return {
        "amra": StaffFactory(phone="+38761300001"),
        "berin": StaffFactory(phone="+38761300002"),
        "supervisor": StaffFactory(role="supervisor", phone="+38761300009"),
    }


def given_to(staff, priority: str = "critical") -> Case:
    case = CaseFactory(status=CaseStatus.TRIAGED, priority=priority, category="domestic_violence")
    MessageFactory(case=case, body="Muž me tuče")
    return ladder.hand_over(case, staff, explanation="triage")


# --- Start work on a case nobody acknowledged ----------------------------------------------------------------------


@pytest.mark.django_db
def test_starting_work_on_ones_own_assigned_case_acknowledges_it(people):
    case = given_to(people["amra"])
    actions.do_start(case, by=people["amra"].user)
    case.refresh_from_db()
    assert case.status == CaseStatus.IN_PROGRESS
    assert case.acknowledged_at is not None and case.first_acknowledged_at is not None
    assert case.escalation_due_at is None
    assert case.timeline.filter(kind=EventKind.ACKNOWLEDGED, actor=people["amra"].user).exists()


@pytest.mark.django_db
def test_started_case_is_not_overdue_once_its_deadline_passes(people):
    case = given_to(people["amra"])
    actions.do_start(case, by=people["amra"].user)
    Case.objects.filter(pk=case.pk).update(acknowledge_by=timezone.now() - timezone.timedelta(minutes=5))
    assert not with_urgency(Case.objects.filter(pk=case.pk)).get().is_overdue


@pytest.mark.django_db
def test_a_supervisor_cannot_start_work_on_a_case_its_worker_has_not_taken(people):
    case = given_to(people["amra"])
    with pytest.raises(CaseTransitionError):
        actions.do_start(case, by=people["supervisor"].user)
    case.refresh_from_db()
    assert (case.status, case.acknowledged_at) == (CaseStatus.ASSIGNED, None)
    assert case.escalation_due_at is not None  # the ladder still runs


@pytest.mark.django_db
def test_the_start_button_shows_only_to_whoever_can_start(client, people):
    case = given_to(people["amra"])
    client.force_login(people["supervisor"].user)
    assert f"/cases/{case.pk}/start/" not in client.get(f"/console/cases/{case.pk}/").content.decode()
    client.force_login(people["amra"].user)
    assert f"/cases/{case.pk}/start/" in client.get(f"/console/cases/{case.pk}/").content.decode()


# --- Decided on the locked row -------------------------------------------------------------------------------------


@pytest.mark.django_db
def test_a_worker_cannot_resolve_a_case_a_supervisor_just_gave_to_someone_else(people):
    case = given_to(people["amra"])
    read_by_amra = Case.objects.get(pk=case.pk)  # her request read the case ...
    actions.do_assign(case, by=people["supervisor"].user, staff=people["berin"])  # ... the reassign landed first
    with pytest.raises(actions.NotPermitted):
        actions.do_resolve(read_by_amra, by=people["amra"].user, outcome="riješeno")
    case.refresh_from_db()
    assert (case.status, case.assigned_to) == (CaseStatus.ASSIGNED, people["berin"].user)
    assert Notification.objects.filter(case=case, recipient=people["berin"].user, status="queued").exists()


@pytest.mark.parametrize("act", ["start", "note", "reply", "reclassify"])
@pytest.mark.django_db
def test_a_former_assignee_cannot_work_a_case_reassigned_while_their_request_was_on_its_way(people, act):
    case = given_to(people["amra"])
    actions.do_acknowledge(case, by=people["amra"].user, via="console")
    read_by_amra = Case.objects.get(pk=case.pk)
    actions.do_assign(case, by=people["supervisor"].user, staff=people["berin"])
    calls = {
        "start": lambda: actions.do_start(read_by_amra, by=people["amra"].user),
        "note": lambda: actions.do_add_note(read_by_amra, by=people["amra"].user, text="x"),
        "reply": lambda: actions.do_reply(read_by_amra, by=people["amra"].user, text="Jeste li sigurni?"),
        "reclassify": lambda: actions.do_reclassify(read_by_amra, by=people["amra"].user, priority="low",
                                                    category="information", reason="x"),
    }  # fmt: skip
    with pytest.raises(actions.NotPermitted):
        calls[act]()
    case.refresh_from_db()
    assert (case.status, case.priority) == (CaseStatus.ASSIGNED, "critical")
    assert not case.timeline.filter(kind__in=[EventKind.NOTE, EventKind.MESSAGE_SENT]).exists()


@pytest.mark.django_db
def test_a_reassign_that_lands_after_the_resolution_does_not_reopen_the_case(people):
    case = given_to(people["amra"])
    read_by_supervisor = Case.objects.get(pk=case.pk)
    actions.do_resolve(case, by=people["amra"].user, outcome="u sigurnoj kući")
    for staff in (people["berin"], None):
        with pytest.raises(actions.CaseNotOpen):
            actions.do_assign(read_by_supervisor, by=people["supervisor"].user, staff=staff)
    case.refresh_from_db()
    assert (case.status, case.assigned_to) == (CaseStatus.RESOLVED, people["amra"].user)


@pytest.mark.django_db
def test_handing_a_resolved_case_to_a_person_on_someones_behalf_is_refused(people):
    case = given_to(people["amra"])
    case_services.change_case_status(case, CaseStatus.RESOLVED, reason="x")
    with pytest.raises(CaseTransitionError), transaction.atomic():  # as the request's transaction: all or nothing
        ladder.hand_over(case, people["berin"], by=people["supervisor"].user, explanation="assigned by a supervisor")
    case.refresh_from_db()
    assert case.status == CaseStatus.RESOLVED


@requires_postgres
@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_resolve_and_reassign_at_once_leave_either_a_resolved_case_or_berins():
    amra, berin = StaffFactory(phone="+38761300001"), StaffFactory(phone="+38761300002")
    supervisor = StaffFactory(role="supervisor", phone="+38761300009")
    case = given_to(amra)
    case_services.change_case_status(case, CaseStatus.ACKNOWLEDGED, reason="x")

    def resolve():
        return actions.do_resolve(case, by=amra.user, outcome="u sigurnoj kući")

    def reassign():
        return actions.do_assign(case, by=supervisor.user, staff=berin)

    results, errors = run_at_once(lambda call: call(), [(resolve,), (reassign,)])
    assert len(results) == 1 and len(errors) == 1
    case.refresh_from_db()
    if case.status == CaseStatus.RESOLVED:
        assert isinstance(errors[0], actions.CaseNotOpen) and case.assigned_to == amra.user
    else:
        assert isinstance(errors[0], actions.NotPermitted)
        assert (case.status, case.assigned_to) == (CaseStatus.ASSIGNED, berin.user)
