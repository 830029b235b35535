"""New calm cases ring one triage doorbell between them: while one waits unanswered (a flag in the shared cache
says so), intake rings no other, and the worker that answers it triages every new calm case waiting. No case is
ever left without a doorbell that reads it: not when contacts come while the worker reads, not when the flag's
doorbell is lost, not when there is no shared cache to keep the flag (then every contact rings, as before)."""

import itertools
import os
import threading
import time
from urllib.parse import urlsplit

import pytest
import redis
from django.conf import settings as django_settings
from django.db import connections

from helpline.cases import dispatch
from helpline.cases.intake import CALM_TRIAGE_FLAG, TRIAGE_TASK, TRIAGE_WAITING_TASK, record_inbound_sms
from helpline.cases.models import Case, CaseStatus
from helpline.casework import actions
from tests.factories import on_duty_worker
from triage import services as triage_services
from triage.services import install_default_rules, queue_for_text

BROKER = os.environ.get("CELERY_BROKER_URL", "")
requires_redis = pytest.mark.skipif(
    not BROKER.startswith("redis://"), reason="the flag lives in a shared cache: needs Redis (CELERY_BROKER_URL)"
)
requires_postgres = pytest.mark.skipif(
    "postgresql" not in django_settings.DATABASES["default"]["ENGINE"], reason="needs concurrent transactions"
)

CALM = ["treba nam pomoć oko ogrjeva", "kako se predaje zahtjev za jednokratnu pomoć", "nemamo drva za zimu",
        "trebam savjet oko starateljstva", "majka je stara i sama, treba joj kućna njega"]  # fmt: skip
CRITICAL = "muž me tuče, ima nož, pomozite"
_numbers = itertools.count(1)
_sids = itertools.count(1)


def sms(body: str, number: str | None = None) -> Case:
    """An SMS stored by intake, from a new number unless one is given; its doorbell rung once it commits."""
    number = number or f"+3876100{next(_numbers):05d}"
    return record_inbound_sms(
        message_sid=f"SM{next(_sids):032d}", from_number=number, body=body, triage_queue=queue_for_text(body)
    ).case


@pytest.fixture
def shared_cache(settings):
    """The cache as in production: Redis, shared by every process (a database of its own, emptied around)."""
    location = urlsplit(BROKER)._replace(path="/13").geturl()
    redis.Redis.from_url(location).flushdb()
    settings.CACHES = {"default": {"BACKEND": "helpline.project.cache.FailOpenRedisCache", "LOCATION": location}}
    yield redis.Redis.from_url(location)
    redis.Redis.from_url(location).flushdb()


def doorbells(queues, name: str = "triage") -> list[tuple[str, tuple]]:
    return queues.taken_with_names(name)


def answer(doorbell: tuple[str, tuple]) -> None:
    """What the worker does with a doorbell it takes from the triage queue."""
    task, args = doorbell
    {TRIAGE_TASK: actions.do_triage_case, TRIAGE_WAITING_TASK: actions.do_triage_waiting}[task](*args)


def flag_is_up(cache_redis) -> bool:
    return any(CALM_TRIAGE_FLAG in key.decode() for key in cache_redis.keys("*"))


@requires_redis
@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_calm_contacts_stored_while_a_doorbell_waits_ring_no_other_and_are_all_triaged_by_it(shared_cache, queues):
    install_default_rules()
    on_duty_worker(max_open_cases=10)
    first, second, third = (sms(text) for text in CALM[:3])
    rung = doorbells(queues)
    assert rung == [(TRIAGE_WAITING_TASK, (first.pk,))]
    assert flag_is_up(shared_cache)
    answer(rung[0])
    assert not flag_is_up(shared_cache)
    assert {Case.objects.get(pk=case.pk).status for case in (first, second, third)} == {CaseStatus.ASSIGNED}
    fourth = sms(CALM[3])  # the doorbell was answered: the next calm contact rings again
    assert doorbells(queues) == [(TRIAGE_WAITING_TASK, (fourth.pk,))]


@requires_redis
@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_a_critical_contact_and_a_follow_up_each_ring_their_own_doorbell_while_a_calm_one_waits(
    shared_cache, queues
):
    install_default_rules()
    calm = sms(CALM[0], number="+38761999001")
    critical = sms(CRITICAL)
    follow_up = sms("i jos nesto", number="+38761999001")  # the same number: joins its new case
    assert follow_up.pk == calm.pk
    assert doorbells(queues, "critical") == [(TRIAGE_TASK, (critical.pk,))]
    assert doorbells(queues) == [(TRIAGE_WAITING_TASK, (calm.pk,)), (TRIAGE_TASK, (calm.pk,))]


@requires_redis
@requires_postgres
@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_a_contact_stored_while_the_worker_reads_the_waiting_cases_rings_again(shared_cache, queues, monkeypatch):
    """The worker lowers the flag before it reads: a contact stored during the read finds it down and rings."""
    install_default_rules()
    sms(CALM[0])
    rung = doorbells(queues)
    stored: list[Case] = []
    read_waiting = triage_services.triage_waiting_cases

    def reading_while_a_contact_comes(**options):
        runs = read_waiting(**options)
        if not stored:  # another request, on its own connection, while this read's transaction is open
            thread = threading.Thread(target=lambda: (stored.append(sms(CALM[1])), connections.close_all()))
            thread.start()
            thread.join()
        return runs

    monkeypatch.setattr(triage_services, "triage_waiting_cases", reading_while_a_contact_comes)
    answer(rung[0])
    assert doorbells(queues) == [(TRIAGE_WAITING_TASK, (stored[0].pk,))]


@requires_redis
@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_one_doorbell_triages_more_new_calm_cases_than_a_batch_holds(shared_cache, queues, monkeypatch):
    install_default_rules()
    monkeypatch.setattr(actions, "TAKEN_ALONG", 4)
    cases = [sms(CALM[n % len(CALM)]) for n in range(11)]
    rung = doorbells(queues)
    assert len(rung) == 1
    answer(rung[0])
    assert not Case.objects.filter(pk__in=[case.pk for case in cases], status=CaseStatus.NEW).exists()
    assert doorbells(queues) == []  # nothing left: it rang no other


@requires_redis
@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_past_its_time_a_doorbell_rings_another_for_the_cases_still_waiting(shared_cache, queues, monkeypatch):
    install_default_rules()
    monkeypatch.setattr(actions, "TAKEN_ALONG", 2)
    cases = [sms(CALM[n % len(CALM)]) for n in range(7)]
    rung = doorbells(queues)
    actions.do_triage_waiting(*rung[0][1], seconds=0)
    waiting = Case.objects.filter(pk__in=[case.pk for case in cases], status=CaseStatus.NEW).count()
    assert waiting == 7 - (1 + 2)  # its own case with the batch it took along
    another = doorbells(queues)
    assert another == [(TRIAGE_WAITING_TASK, ())]
    answer(another[0])
    assert not Case.objects.filter(pk__in=[case.pk for case in cases], status=CaseStatus.NEW).exists()


@requires_redis
@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_when_the_flags_doorbell_is_lost_a_contact_after_the_flag_lapses_rings_again(
    shared_cache, queues, monkeypatch
):
    monkeypatch.setattr(dispatch, "RUNG_FLAG_SECONDS", 1)
    sms(CALM[0])
    queues.purge("triage")  # the doorbell lost (a worker killed holding it)
    sms(CALM[1])
    assert doorbells(queues) == []  # the flag still says one waits
    time.sleep(1.2)
    third = sms(CALM[2])
    rung = doorbells(queues)
    assert rung == [(TRIAGE_WAITING_TASK, (third.pk,))]
    answer(rung[0])
    assert not Case.objects.filter(status=CaseStatus.NEW).exists()  # the second, stored under the lost flag, too


@requires_redis
@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_a_doorbells_own_case_that_cannot_be_triaged_holds_back_none_of_the_cases_waiting(
    shared_cache, queues, monkeypatch, caplog
):
    install_default_rules()
    broken = sms("PORUKA KOJA RUŠI TRIJAŽU")
    others = [sms(text) for text in CALM[:3]]
    classify = triage_services.classify_by_rules

    def failing_on_one_message(text, channel=None, **options):
        if "RUŠI" in text:
            raise RuntimeError("a defect this message reveals")
        return classify(text, channel, **options)

    monkeypatch.setattr(triage_services, "classify_by_rules", failing_on_one_message)
    answer(doorbells(queues)[0])
    assert "goes on with the cases waiting" in caplog.text
    assert not Case.objects.filter(pk__in=[case.pk for case in others], status=CaseStatus.NEW).exists()
    broken.refresh_from_db()
    assert broken.status == CaseStatus.NEW
    assert broken.triage_requested_at is None  # handed back (a batch tried it too): the next sweep rings it alone


@requires_redis
@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_a_case_that_cannot_be_grouped_into_a_crisis_event_keeps_its_triage_and_holds_back_no_other(
    shared_cache, queues, monkeypatch, caplog
):
    install_default_rules()
    monkeypatch.setattr(actions.crisis, "active_events", lambda: ["an event"])
    grouped = []

    def failing_on_one_case(case, events=None):
        if "RUŠI" in case.messages.first().body:
            raise RuntimeError("a defect this case reveals")
        grouped.append(case.pk)

    monkeypatch.setattr(actions.crisis, "group_case", failing_on_one_case)
    monkeypatch.setattr(actions, "TAKEN_ALONG", 1)
    first = sms(CALM[0])
    broken, *others = sms("PORUKA KOJA RUŠI GRUPIRANJE"), sms(CALM[1]), sms(CALM[2])
    answer(doorbells(queues)[0])
    assert "its triage stands" in caplog.text
    everyone = [first.pk, broken.pk, *(case.pk for case in others)]
    assert not Case.objects.filter(pk__in=everyone, status=CaseStatus.NEW).exists()
    assert set(grouped) == set(everyone) - {broken.pk}


@requires_redis
@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_a_calm_case_that_fails_in_a_batch_is_rung_again_alone_by_the_next_sweep(shared_cache, queues, monkeypatch):
    install_default_rules()
    first = sms(CALM[0])
    broken = sms("PORUKA KOJA RUŠI TRIJAŽU")
    classify = triage_services.classify_by_rules

    def failing_on_one_message(text, channel=None, **options):
        if "RUŠI" in text:
            raise RuntimeError("a defect this message reveals")
        return classify(text, channel, **options)

    monkeypatch.setattr(triage_services, "classify_by_rules", failing_on_one_message)
    answer(doorbells(queues)[0])
    assert Case.objects.get(pk=first.pk).status != CaseStatus.NEW
    assert actions.sweep_untriaged() == 1
    assert doorbells(queues) == [(TRIAGE_TASK, (broken.pk,))]  # its own doorbell, where its failure is seen


@requires_redis
@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_a_doorbell_the_broker_would_not_take_lowers_its_flag_and_leaves_the_case_to_the_sweep(
    shared_cache, unreachable_broker
):
    case = sms(CALM[0])
    assert not flag_is_up(shared_cache)  # the next contact tries again
    assert Case.objects.get(pk=case.pk).triage_requested_at is None  # the sweep rings it at once


@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_without_a_shared_cache_every_calm_contact_rings(queues, settings):
    settings.CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}
    cases = [sms(text) for text in CALM[:3]]
    assert doorbells(queues) == [(TRIAGE_WAITING_TASK, (case.pk,)) for case in cases]


@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_with_the_shared_cache_down_every_calm_contact_rings(queues, settings):
    settings.CACHES = {
        "default": {"BACKEND": "helpline.project.cache.FailOpenRedisCache", "LOCATION": "redis://127.0.0.1:1/0"}
    }
    cases = [sms(text) for text in CALM[:3]]
    assert doorbells(queues) == [(TRIAGE_WAITING_TASK, (case.pk,)) for case in cases]


@requires_redis
@requires_postgres
@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_contacts_stored_while_workers_answer_doorbells_are_every_one_triaged(shared_cache, queues, monkeypatch):
    """Four senders store calm contacts as fast as they can while two workers take doorbells from the queue and
    answer them: when the senders stop and the queue is empty, no case is still new."""
    install_default_rules()
    monkeypatch.setattr(actions, "TAKEN_ALONG", 3)
    sending = threading.Event()
    sending.set()
    stored: list[int] = []
    errors: list[Exception] = []

    def sender(n: int) -> None:
        try:
            for m in range(15):
                stored.append(sms(CALM[(n + m) % len(CALM)]).pk)
        except Exception as error:
            errors.append(error)
        finally:
            connections.close_all()

    def worker() -> None:
        try:
            while True:
                rung = doorbells(queues)
                for doorbell in rung:
                    answer(doorbell)
                if not rung and not sending.is_set():
                    return
                time.sleep(0.005)
        except Exception as error:
            errors.append(error)
        finally:
            connections.close_all()

    workers = [threading.Thread(target=worker) for _ in range(2)]
    senders = [threading.Thread(target=sender, args=(n,)) for n in range(4)]
    for thread in workers + senders:
        thread.start()
    for thread in senders:
        thread.join()
    sending.clear()
    for thread in workers:
        thread.join()
    assert errors == []
    assert len(stored) == 60
    assert not Case.objects.filter(pk__in=stored, status=CaseStatus.NEW).exists()
