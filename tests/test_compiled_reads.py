"""Reads compiled once per process give each call its own values, and refuse values they cannot put in later."""
import datetime as dt

import pytest

from helpline.cases.compiled_reads import CompiledRead
from helpline.cases.encryption import phone_index
from helpline.roster.models import StaffProfile
from tests.factories import StaffFactory

pytestmark = pytest.mark.django_db


def staff_with_index(index: str):
    return StaffProfile.objects.filter(phone_index=index).values_list("pk", "last_assigned_at")


def test_each_call_reads_with_its_own_values_and_rows_come_back_as_the_orm_gives_them():
    read = CompiledRead(staff_with_index)
    at = dt.datetime(2026, 11, 23, 9, 0, tzinfo=dt.UTC)
    first = StaffFactory(phone="+38761200401", last_assigned_at=at)
    second = StaffFactory(phone="+38761200402")
    assert read.fetch(phone_index("+38761200401")) == [(first.pk, at)]  # an aware datetime, SQLite included
    assert read.fetch(phone_index("+38761200402")) == [(second.pk, None)]
    assert read.fetch(phone_index("+38761200499")) == []


def test_a_list_of_ids_is_compiled_once_for_each_length():
    read = CompiledRead(lambda *ids: StaffProfile.objects.filter(pk__in=ids).values_list("pk").order_by("pk"))
    staff = [StaffFactory(phone=f"+3876120050{n}") for n in range(3)]
    assert read.fetch(staff[0].pk) == [(staff[0].pk,)]
    assert read.fetch(staff[1].pk, staff[2].pk) == [(staff[1].pk,), (staff[2].pk,)]
    assert read.fetch(staff[2].pk, staff[0].pk) == [(staff[0].pk,), (staff[2].pk,)]


def test_a_value_changed_on_its_way_into_the_sql_is_refused_at_once():
    hashing = CompiledRead(lambda number: StaffProfile.objects.filter(phone_index=phone_index(number)).values("pk"))
    with pytest.raises(ValueError, match="do not reach the SQL unchanged"):
        hashing.sql_with_params("+38761200401")
    with pytest.raises(TypeError, match="strings and integers"):
        CompiledRead(staff_with_index).sql_with_params(True)
