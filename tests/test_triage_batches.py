"""In a surge one triage doorbell triages the new cases waiting behind it, and their own doorbells cost next to
nothing: the rules, the crisis events and the assignment turn are read once for many cases. Nothing is triaged
twice, no follow-up is missed, and a case that reads as critical is never held behind a batch of calm ones."""

import datetime as dt

import pytest
from django.conf import settings as django_settings
from django.db import DatabaseError, connection, transaction
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from helpline.cases import services as case_services
from helpline.cases.models import Case, CaseStatus, EventKind, Priority
from helpline.casework import actions
from notifications import ladder
from tests.concurrency import run_at_once
from tests.factories import CaseFactory, MessageFactory, case_saying, on_duty_worker
from triage import semantic_model as triage_semantic_model
from triage import services as triage_services
from triage.services import install_default_rules

pytestmark = pytest.mark.django_db
requires_postgres = pytest.mark.skipif(
    "postgresql" not in django_settings.DATABASES["default"]["ENGINE"], reason="needs concurrent transactions"
)

CALM = ["treba nam pomoć oko ogrjeva", "kako se predaje zahtjev za jednokratnu pomoć", "nemamo drva za zimu",
        "trebam savjet oko starateljstva", "majka je stara i sama, treba joj kućna njega"]  # fmt: skip
CRITICAL = "muž me tuče, ima nož, pomozite"
MORE_CRITICAL = ["otac prijeti nožem mami", "progutala sam sve tablete, ne želim više živjeti"]


def triage_events(case: Case) -> int:
    return case.timeline.filter(kind=EventKind.TRIAGED).count()


def test_one_doorbell_triages_and_gives_out_the_new_cases_waiting_behind_it():
    workers = [on_duty_worker(max_open_cases=5) for _ in range(3)]
    cases = [case_saying(text) for text in CALM]
    actions.do_triage_case(cases[0].pk)
    for case in cases:
        case.refresh_from_db()
        assert case.status == CaseStatus.ASSIGNED and case.assigned_to in [worker.user for worker in workers]
        assert triage_events(case) == 1 and case.awaiting_model  # the model's second look still reads each


def test_each_case_a_batch_writes_together_keeps_its_own_triage_and_deadline():
    """A batch updates its cases in one statement for their triage and one for their assignment: each case still
    gets its own priority, category and acknowledgement deadline, as it would alone."""
    on_duty_worker(max_open_cases=10)
    cases = [case_saying(text) for text in CALM]
    actions.do_triage_case(cases[0].pk)
    for case, text in zip(cases, CALM, strict=True):
        case.refresh_from_db()
        alone = triage_services.classify_by_rules(text)
        assert (case.priority, case.category) == (alone.priority, alone.category)
        deadline = case.acknowledge_by - case.triaged_at
        expected = dt.timedelta(minutes=ladder.ladder_for(case.priority).acknowledge_within_minutes)
        assert expected <= deadline < expected + dt.timedelta(seconds=5)
        assert case.updated_at >= case.triaged_at
    assert {case.priority for case in cases} == {Priority.NORMAL, Priority.LOW}  # the batch's values differ


def test_the_doorbells_of_cases_a_batch_took_along_do_nothing_more():
    on_duty_worker()
    first, taken_along = case_saying(CALM[0]), case_saying(CALM[1])
    actions.do_triage_case(first.pk)
    with CaptureQueriesContext(connection) as queries:
        actions.do_triage_case(taken_along.pk)
    assert len(queries.captured_queries) == 1  # it only asks whether the case was triaged as it stands
    assert triage_events(taken_along) == 1
    assert taken_along.timeline.filter(kind=EventKind.ASSIGNED).count() == 1


def test_a_case_that_reads_as_critical_is_left_to_its_own_doorbell_on_the_critical_queue():
    worker = on_duty_worker()
    calm, critical = case_saying(CALM[0]), case_saying(CRITICAL)
    actions.do_triage_case(calm.pk)
    critical.refresh_from_db()
    assert critical.status == CaseStatus.NEW  # its critical worker reads it with the model, not this batch
    actions.do_triage_case(critical.pk)
    critical.refresh_from_db()
    assert (critical.priority, critical.status, critical.assigned_to) == (
        Priority.CRITICAL, CaseStatus.ASSIGNED, worker.user
    )  # fmt: skip


def test_a_case_stored_as_calm_whose_words_now_read_as_critical_is_left_to_its_own_doorbell():
    """Its flag says calm (a follow-up came after it was stored, or the rules changed since): a calm batch still
    leaves it alone, and its own doorbell triages it as critical."""
    worker = on_duty_worker()
    calm, now_critical = case_saying(CALM[0]), case_saying(CRITICAL, sounds_critical=False)
    actions.do_triage_case(calm.pk)
    assert Case.objects.get(pk=now_critical.pk).status == CaseStatus.NEW
    assert not now_critical.timeline.filter(kind=EventKind.TRIAGED).exists()
    actions.do_triage_case(now_critical.pk)
    now_critical.refresh_from_db()
    assert (now_critical.priority, now_critical.assigned_to) == (Priority.CRITICAL, worker.user)


def test_a_critical_doorbell_has_the_model_read_the_other_critical_messages_waiting_and_gives_them_out_too():
    worker = on_duty_worker()
    calm = case_saying(CALM[0])
    first, *waiting = [case_saying(text) for text in (CRITICAL, *MORE_CRITICAL)]
    actions.do_triage_case(first.pk)
    for case in waiting:
        case.refresh_from_db()
        assert (case.priority, case.status, case.assigned_to) == (Priority.CRITICAL, CaseStatus.ASSIGNED, worker.user)
        reasons = case.timeline.filter(kind=EventKind.TRIAGED).get().details["reasons"]
        assert any(reason.startswith("semantic model:") for reason in reasons)  # read before anyone was called
    assert Case.objects.get(pk=calm.pk).status == CaseStatus.NEW  # never in a critical batch
    with CaptureQueriesContext(connection) as queries:
        for case in waiting:
            actions.do_triage_case(case.pk)
    assert len(queries) == len(waiting)  # their own doorbells: one question each
    assert all(triage_events(case) == 1 for case in waiting)


def test_a_critical_batch_goes_on_by_the_rules_when_the_model_fails(monkeypatch):
    on_duty_worker()
    first, other = case_saying(CRITICAL), case_saying(MORE_CRITICAL[0])
    model = triage_semantic_model.semantic_model()

    def broken(texts):
        raise RuntimeError("the engine failed")

    monkeypatch.setattr(model, "predict_many", broken)
    actions.do_triage_case(first.pk)
    other.refresh_from_db()
    assert other.priority == Priority.CRITICAL and other.status == CaseStatus.ASSIGNED
    reasons = other.timeline.filter(kind=EventKind.TRIAGED).get().details["reasons"]
    assert reasons[-1] == triage_services.RULES_ONLY_REASON


def test_a_critical_case_is_given_out_without_waiting_for_anyone_elses():
    on_duty_worker()
    critical, calm = case_saying(CRITICAL), case_saying(CALM[0])
    actions.do_triage_case(critical.pk)
    assert Case.objects.get(pk=critical.pk).status == CaseStatus.ASSIGNED
    assert Case.objects.get(pk=calm.pk).status == CaseStatus.NEW  # left to its own doorbell


def test_a_follow_up_to_a_case_a_batch_took_along_is_still_read():
    on_duty_worker()
    first, taken_along = case_saying(CALM[0]), case_saying(CALM[2])
    actions.do_triage_case(first.pk)
    actions.do_triage_case(taken_along.pk)  # its own doorbell: nothing new
    MessageFactory(case=taken_along, body="sad je došao pijan i prijeti da će nas ubiti, ima nož")
    actions.do_triage_case(taken_along.pk)  # the follow-up's doorbell
    taken_along.refresh_from_db()
    assert triage_events(taken_along) == 2 and taken_along.priority == Priority.CRITICAL


def test_a_batch_links_each_case_to_the_same_persons_recent_cases_as_a_case_alone_would():
    on_duty_worker()
    earlier = case_saying("Muž me tuče", status=CaseStatus.RESOLVED)
    actions.do_triage_case(earlier.pk)  # critical, and nothing else waits yet to be taken along
    long_ago = case_saying("Muž me tuče", status=CaseStatus.RESOLVED, caller=earlier.caller)
    actions.do_triage_case(long_ago.pk)
    Case.objects.filter(pk=long_ago.pk).update(created_at=timezone.now() - dt.timedelta(hours=30))
    doorbell = case_saying(CALM[0])
    by_sms = case_saying("koje je radno vrijeme", caller=earlier.caller)
    by_web = case_saying("koje je radno vrijeme", channel="web", caller=None, contact_phone=earlier.caller.phone)
    stranger = case_saying("koje je radno vrijeme")

    actions.do_triage_case(doorbell.pk)  # takes the other three along

    for case, same_person in ((by_sms, {earlier, by_web}), (by_web, {earlier, by_sms})):
        case.refresh_from_db()
        assert set(case.linked_cases.all()) == same_person  # not the contact of 30 hours ago
        assert case.priority == Priority.CRITICAL
        assert case.timeline.get(kind=EventKind.TRIAGED).details["raised_by_earlier_contact"] == earlier.reference
    stranger.refresh_from_db()
    assert not stranger.linked_cases.exists() and stranger.priority == Priority.LOW


def test_a_case_without_a_written_word_is_triaged_along_too():
    on_duty_worker()
    first = case_saying(CALM[0])
    call = CaseFactory(channel="voice")
    actions.do_triage_case(first.pk)
    call.refresh_from_db()
    # A call with nothing written down: someone must call back soon.
    assert call.priority == Priority.HIGH and call.status == CaseStatus.ASSIGNED
    with CaptureQueriesContext(connection) as queries:
        actions.do_triage_case(call.pk)
    assert len(queries.captured_queries) == 1


def test_a_case_that_cannot_be_triaged_holds_back_neither_its_batch_nor_the_batches_after_it(monkeypatch, caplog):
    on_duty_worker()
    first, broken, third = case_saying(CALM[0]), case_saying("PORUKA KOJA RUŠI TRIJAŽU"), case_saying(CALM[1])
    tried = []
    classify = triage_services.classify_by_rules

    def failing_on_one_message(text, channel=None, **options):
        tried.append(text)
        if "RUŠI" in text:
            raise RuntimeError("a defect this message reveals")
        return classify(text, channel, **options)

    monkeypatch.setattr(triage_services, "classify_by_rules", failing_on_one_message)
    actions.do_triage_case(first.pk)
    assert [Case.objects.get(pk=case.pk).status for case in (first, broken, third)] == [
        CaseStatus.ASSIGNED, CaseStatus.NEW, CaseStatus.ASSIGNED
    ]  # fmt: skip
    assert not broken.timeline.exists()  # nothing of its failed triage was kept
    assert "failed in a batch" in caplog.text

    tried.clear()
    actions.do_triage_case(case_saying(CALM[2]).pk)
    assert not any("RUŠI" in text for text in tried)  # not tried, and logged, by every batch after it
    with pytest.raises(RuntimeError):  # its own doorbell still tries it, and fails where it is seen
        actions.do_triage_case(broken.pk)


def test_a_case_whose_triage_cannot_be_written_holds_back_neither_the_doorbells_case_nor_the_batches_after_it(
    monkeypatch, caplog
):
    """A batch writes its cases without a savepoint each: when writing one fails, the whole batch is rolled back
    (nothing of it is kept half-way), and the doorbell's own case is triaged and given out at once without it."""
    on_duty_worker()
    first, broken, third = case_saying(CALM[0]), case_saying(CALM[1]), case_saying(CALM[3])
    record_triage = case_services.record_triage

    def failing_after_writing(case, **fields):
        record_triage(case, **fields)
        if case.pk == broken.pk:
            raise RuntimeError("a defect in writing this case's triage")

    monkeypatch.setattr(case_services, "record_triage", failing_after_writing)
    actions.do_triage_case(first.pk)
    assert [Case.objects.get(pk=case.pk).status for case in (first, broken, third)] == [
        CaseStatus.ASSIGNED, CaseStatus.NEW, CaseStatus.NEW
    ]  # fmt: skip
    assert not broken.timeline.exists() and not third.timeline.exists()  # the batch was rolled back whole
    assert triage_events(first) == 1
    assert "failed in a batch" in caplog.text

    actions.do_triage_case(third.pk)  # a later batch leaves the case out
    assert Case.objects.get(pk=third.pk).status == CaseStatus.ASSIGNED
    assert Case.objects.get(pk=broken.pk).status == CaseStatus.NEW
    with pytest.raises(RuntimeError):  # its own doorbell still tries it, and fails where it is seen
        actions.do_triage_case(broken.pk)


@requires_postgres
def test_when_the_database_refuses_a_batchs_one_update_the_batch_is_rolled_back_and_the_doorbells_case_given_out(
    caplog,
):
    """A batch updates its cases in one statement. When the database refuses that statement, nothing of the batch
    is kept, the doorbell's own case is triaged and given out alone, and the cases it took along are left to their
    own doorbells."""
    on_duty_worker()
    first, broken, third = case_saying(CALM[0]), case_saying(CALM[1]), case_saying(CALM[3])
    with connection.cursor() as cursor:  # a fault of the database's own, in this test's transaction only
        cursor.execute(
            "CREATE FUNCTION refuse_the_update() RETURNS trigger LANGUAGE plpgsql AS "
            "$$ BEGIN RAISE EXCEPTION 'refused by the test'; END $$"
        )
        cursor.execute(
            "CREATE TRIGGER refuse_one_case BEFORE UPDATE ON helpline_case FOR EACH ROW "
            f"WHEN (OLD.id = {int(broken.pk)}) EXECUTE FUNCTION refuse_the_update()"
        )
    actions.do_triage_case(first.pk)
    assert [Case.objects.get(pk=case.pk).status for case in (first, broken, third)] == [
        CaseStatus.ASSIGNED, CaseStatus.NEW, CaseStatus.NEW
    ]  # fmt: skip
    assert not broken.timeline.exists() and not third.timeline.exists()
    assert triage_events(first) == 1
    assert "writing a batch's triage failed" in caplog.text

    caplog.clear()
    actions.do_triage_case(third.pk)  # its own doorbell; no later batch takes the refused case along
    assert Case.objects.get(pk=third.pk).status == CaseStatus.ASSIGNED
    assert "writing a batch's triage failed" not in caplog.text
    assert Case.objects.get(pk=broken.pk).status == CaseStatus.NEW


@requires_postgres
@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_doorbells_rung_together_in_a_surge_triage_every_case_once_and_fill_nobody_over_their_maximum():
    workers = [on_duty_worker(max_open_cases=6) for _ in range(3)]
    cases = [case_saying(f"{CALM[n % len(CALM)]} ({n})") for n in range(60)]
    _, errors = run_at_once(actions.do_triage_case, [(case.pk,) for case in cases[:8]])
    assert errors == []
    for case in cases:
        actions.do_triage_case(case.pk)  # every other doorbell, in queue order
    assert all(triage_events(case) == 1 for case in cases)
    assert not Case.objects.filter(status=CaseStatus.NEW).exists()
    for worker in workers:
        assert Case.objects.filter(assigned_to=worker.user).count() == 6
    assert Case.objects.filter(status=CaseStatus.TRIAGED, assigned_to__isnull=True).count() == 60 - 18


def lockable_from_another_connection(case_id: int) -> bool:
    """Whether another worker could lock the case's row right now, without waiting."""
    results, errors = run_at_once(_lock_at_once, [(case_id,)])
    return results == [True] and errors == []


def _lock_at_once(case_id: int) -> bool:
    try:
        with transaction.atomic():
            list(Case.objects.select_for_update(nowait=True).filter(pk=case_id))
    except DatabaseError:
        return False
    return True


@requires_postgres
@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_a_batch_of_calm_cases_never_holds_the_row_of_a_case_that_reads_as_critical(monkeypatch):
    """Its own doorbell, on the critical worker, would otherwise wait for the whole batch of a worker that gives way
    to everything else."""
    install_default_rules()  # the shipped rules (a transactional test before may have flushed them)
    on_duty_worker()
    first, critical, calm = case_saying(CALM[0]), case_saying(CRITICAL), case_saying(CALM[1])
    during_the_batch = {}
    work_out = triage_services._verdict

    def triage_watched(case, *args, **kwargs):
        if case.pk == calm.pk:
            during_the_batch.update(
                critical=lockable_from_another_connection(critical.pk), calm=lockable_from_another_connection(calm.pk)
            )
        return work_out(case, *args, **kwargs)

    monkeypatch.setattr(triage_services, "_verdict", triage_watched)
    actions.do_triage_case(first.pk)
    assert during_the_batch == {"critical": True, "calm": False}  # the calm one is the batch's, as it should be
    assert Case.objects.get(pk=critical.pk).status == CaseStatus.NEW  # left to its own doorbell
