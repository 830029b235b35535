"""“Take the next most urgent case”: one press, one case, and never the same case for two workers."""
import pytest
from django.conf import settings as django_settings

from helpline.cases.models import Case, CaseStatus, EventKind
from helpline.casework import actions
from tests.concurrency import run_at_once
from tests.factories import CaseFactory, StaffFactory

# SQLite serialises writers, so only PostgreSQL shows real races; CI runs these against it.
requires_postgres = pytest.mark.skipif(
    "postgresql" not in django_settings.DATABASES["default"]["ENGINE"], reason="needs concurrent transactions"
)


@pytest.mark.django_db
def test_the_button_hands_over_the_most_urgent_waiting_case(client):
    worker = StaffFactory()
    CaseFactory(status=CaseStatus.TRIAGED, priority="normal")
    critical = CaseFactory(status=CaseStatus.TRIAGED, priority="critical")
    CaseFactory(status=CaseStatus.TRIAGED, priority="high")
    client.force_login(worker.user)
    response = client.post("/console/queue/take-next/")
    assert response.status_code == 302 and response["Location"] == f"/console/cases/{critical.pk}/"
    critical.refresh_from_db()
    assert critical.assigned_to == worker.user and critical.status == CaseStatus.ACKNOWLEDGED
    assert critical.timeline.filter(kind=EventKind.ASSIGNED, details__assignee_id=worker.user.pk).exists()


@pytest.mark.django_db
def test_an_empty_queue_says_so(client):
    client.force_login(StaffFactory().user)
    response = client.post("/console/queue/take-next/", follow=True)
    assert response.status_code == 200 and 'class="flash' in response.content.decode()


@requires_postgres
@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_two_workers_pressing_at_once_get_two_different_cases():
    first, second = StaffFactory(), StaffFactory()
    cases = [CaseFactory(status=CaseStatus.TRIAGED, priority="critical") for _ in range(2)]
    results, errors = run_at_once(actions.do_take_next, [(first.user,), (second.user,)])
    assert errors == []
    assert sorted(case.pk for case in results) == sorted(case.pk for case in cases)
    owners = set(Case.objects.values_list("assigned_to", flat=True))
    assert owners == {first.user.pk, second.user.pk}


@requires_postgres
@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_when_one_case_waits_and_two_press_one_gets_it_and_the_other_nothing():
    first, second = StaffFactory(), StaffFactory()
    case = CaseFactory(status=CaseStatus.TRIAGED, priority="high")
    results, errors = run_at_once(actions.do_take_next, [(first.user,), (second.user,)])
    assert errors == []
    assert sorted(results, key=lambda r: r is None)[0].pk == case.pk and None in results
    assert case.timeline.filter(kind=EventKind.ASSIGNED).count() == 1
