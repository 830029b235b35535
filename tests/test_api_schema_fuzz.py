"""schemathesis generates requests from our own OpenAPI schema and runs every one of its checks, signed in as a
worker and as a supervisor: no 5xx, and every answer is the one the schema documents.

`make test` runs a small fixed set of examples per operation and role, so a landing never depends on luck;
`make fuzz` explores with fresh random examples (FUZZ_EXAMPLES per operation, 200 by default)."""
import os

import pytest
import schemathesis
from django.core import signals
from django.db import close_old_connections
from hypothesis import HealthCheck, settings
from schemathesis.specs.openapi.checks import positive_data_acceptance

from helpline.project.wsgi import application
from tests.factories import CaseFactory, MessageFactory, ShiftFactory, StaffFactory
from tests.tokens import api_token

schema = schemathesis.openapi.from_wsgi("/api/v1/schema/", application)

EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES", "6"))
_signed_in = {"token": ""}
# Input the schema cannot describe, refused with a 400 that names the field: a row that must exist (a shift's
# staff member, a profile's user), a visit's case that must be one's own, an incident in the past, two PINs that
# must differ, a citizen's phone number that must be a real number of a numbering plan. schemathesis's
# "schema-valid data is accepted" check is left out for these alone.
RULES_BEYOND_THE_SCHEMA = {
    "POST /api/v1/shifts/", "PUT /api/v1/shifts/{id}/", "PATCH /api/v1/shifts/{id}/",
    "POST /api/v1/staff/", "PUT /api/v1/staff/{id}/", "PATCH /api/v1/staff/{id}/",
    "POST /api/v1/visits/", "POST /api/v1/staff-incidents/", "POST /api/v1/visits/pins/",
    "POST /api/v1/inquiries/",
}  # fmt: skip


@schema.auth(refresh_interval=None)
class StaffToken:
    """The token of the person the test signs in. Given to schemathesis as the API's auth, so its auth check
    knows which header is the credential: it removes it or puts in a wrong one and expects a 401 or 403."""

    def get(self, case, context) -> str:
        return _signed_in["token"]

    def set(self, case, data: str, context) -> None:
        case.headers = {**(case.headers or {}), "Authorization": f"Token {data}"}


@pytest.fixture(autouse=True)
def keep_the_test_connection_open():
    """Calling the WSGI app directly fires request_finished, which would close the test transaction's database
    connection; Django's own test client disconnects this handler in the same way."""
    signals.request_started.disconnect(close_old_connections)
    signals.request_finished.disconnect(close_old_connections)
    yield
    signals.request_started.connect(close_old_connections)
    signals.request_finished.connect(close_old_connections)


@pytest.fixture(params=["worker", "supervisor"])
def signed_in(request, db):
    """A signed-in staff member with a case of their own, an unassigned case and a shift, so reads find rows."""
    staff = StaffFactory(role=request.param)
    MessageFactory(case=CaseFactory(assigned_to=staff.user, status="assigned", priority="high"))
    MessageFactory(case=CaseFactory())
    ShiftFactory(staff=staff)
    _signed_in["token"] = api_token(staff.user)
    yield staff
    _signed_in["token"] = ""


@pytest.mark.django_db
@schema.parametrize()
@settings(
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=list(HealthCheck),
    derandomize=not os.environ.get("HYPOTHESIS_RANDOM"),
)
def test_the_api_never_errs_and_answers_as_documented(case, signed_in):
    beyond = case.operation.label in RULES_BEYOND_THE_SCHEMA
    case.call_and_validate(headers={"Host": "localhost"}, excluded_checks=[positive_data_acceptance] if beyond else [])
