"""factory_boy factories for the case domain."""
import datetime as dt

import factory
from django.contrib.auth import get_user_model
from django.utils import timezone

from helpline.cases.dispatch import CRITICAL_QUEUE
from helpline.cases.intake import next_case_reference
from helpline.cases.models import Caller, Case, Channel, Direction, Message
from helpline.roster.models import StaffProfile
from triage.services import queue_for_text


class UserFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = get_user_model()
        django_get_or_create = ["username"]

    username = factory.Sequence(lambda n: f"worker{n}")


class CallerFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Caller

    phone = factory.Sequence(lambda n: f"+3876155{n:04d}")


class CaseFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Case

    reference = factory.LazyFunction(next_case_reference)
    channel = Channel.SMS
    caller = factory.SubFactory(CallerFactory)
    triage_requested_at = factory.LazyFunction(timezone.now)  # as intake stamps it: triage was rung


class MessageFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Message

    case = factory.SubFactory(CaseFactory)
    direction = Direction.INBOUND
    channel = Channel.SMS
    body = "Treba mi pomoć."


class StaffFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = "triage.StaffProfile"

    user = factory.SubFactory(UserFactory)
    role = "worker"
    phone = factory.Sequence(lambda n: f"+3876200{n:04d}")
    languages = factory.LazyFunction(lambda: ["bs"])
    skills = factory.LazyFunction(list)
    max_open_cases = 5


class ShiftFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = "triage.Shift"

    staff = factory.SubFactory(StaffFactory)
    starts_at = factory.LazyFunction(lambda: timezone.now() - dt.timedelta(hours=1))
    ends_at = factory.LazyAttribute(lambda shift: shift.starts_at + dt.timedelta(hours=8))


def on_duty_worker(**profile) -> StaffProfile:
    """A staff member (a worker unless `role` says otherwise) on a shift that started an hour ago."""
    return ShiftFactory(staff=StaffFactory(**profile)).staff


def case_saying(text: str, **fields) -> Case:
    """A case whose citizen wrote `text`, its doorbell on the queue the intake would choose for it."""
    fields.setdefault("sounds_critical", queue_for_text(text) == CRITICAL_QUEUE)
    case = CaseFactory(**fields)
    MessageFactory(case=case, body=text)
    return case
