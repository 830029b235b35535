"""The staff case API: the queue, a case with its conversation and timeline, and the actions on it.

Thin: visibility, reads and the read log come from helpline.casework.selectors, every action (and who may take it)
from helpline.casework.actions, the same functions the console calls.
A case a person may not see answers 404 (no hint it exists); an action their role may not take answers 403; an
illegal status change answers 409 with the reason.
"""

from __future__ import annotations

from django.utils.translation import gettext as _
from django_filters.rest_framework import DjangoFilterBackend
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import mixins, status, viewsets
from rest_framework.authentication import SessionAuthentication
from rest_framework.decorators import action
from rest_framework.exceptions import NotFound, PermissionDenied, ValidationError
from rest_framework.pagination import PageNumberPagination
from rest_framework.request import Request
from rest_framework.response import Response

from helpline.access.authentication import StaffTokenAuthentication
from helpline.api.filters import CaseFilter
from helpline.api.permissions import IsStaffMember
from helpline.api.staff_serializers import (
    AssignSerializer,
    CaseDetailSerializer,
    CaseListSerializer,
    ErrorSerializer,
    MessageSerializer,
    NoteSerializer,
    ReasonSerializer,
    ReclassifySerializer,
    ReplySerializer,
    ResolveSerializer,
    SafeContactRecordedSerializer,
    SafeContactRecordSerializer,
)
from helpline.cases.models import Case, Message
from helpline.cases.selectors import with_urgency
from helpline.cases.services import CaseTransitionError
from helpline.casework import actions, selectors
from helpline.roster.models import StaffProfile

# Knox tokens expire and are revoked by logout, a password change and deactivation (helpline.access).
STAFF_AUTHENTICATION = [SessionAuthentication, StaffTokenAuthentication]


class CasePagination(PageNumberPagination):
    page_size = 25
    page_size_query_param = "page_size"
    max_page_size = 100

    def get_page_size(self, request) -> int:
        """A page size that is not a whole number above 0 is a 400, not quietly replaced by the default (DRF's
        way), so a client's mistake shows; an empty one is "not given", and one above the maximum is the maximum."""
        asked = request.query_params.get(self.page_size_query_param, "")
        if asked and not (asked.isascii() and asked.isdigit() and int(asked) > 0):
            raise ValidationError({self.page_size_query_param: [_("A whole number above 0.")]})
        return super().get_page_size(request)


ACTION_RESPONSES = {
    200: CaseListSerializer,
    403: OpenApiResponse(ErrorSerializer, description="Your role may not do this."),
    404: OpenApiResponse(ErrorSerializer, description="No such case, or not yours to see."),
    409: OpenApiResponse(
        ErrorSerializer,
        description="Not allowed from the case's current status, or (resolve) changed since the app showed it.",
    ),
}


class CaseViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    authentication_classes = STAFF_AUTHENTICATION
    permission_classes = [IsStaffMember]
    pagination_class = CasePagination
    filter_backends = [DjangoFilterBackend]
    filterset_class = CaseFilter
    queryset = Case.objects.none()  # for the schema; get_queryset answers per person

    def get_queryset(self):
        cases = with_urgency(selectors.cases_visible_to(self.request.user)).select_related("caller", "assigned_to")
        # Real cases before a drill's; the id last, so a page never repeats or skips a case.
        return cases.order_by("is_drill", "-urgency", "acknowledge_by", "created_at", "pk")

    def get_serializer_class(self):
        return CaseDetailSerializer if self.action == "retrieve" else CaseListSerializer

    def retrieve(self, request: Request, *args, **kwargs) -> Response:
        case = selectors.read_case(request.user, _case_id(kwargs.get("pk")), via="api")
        if case is None:
            raise NotFound
        earlier = selectors.earlier_cases_for(request.user, case)
        context = {
            "request": request, "earlier_cases": list(earlier),
            "notification_log": selectors.notification_logs([case.pk]).get(case.pk, []),
        }  # fmt: skip
        serializer = CaseDetailSerializer(case, context=context)
        return Response(serializer.data)

    # --- actions: each one call into helpline.casework.actions -------------------------------------------------

    def _run(self, act, request_shape=None, code: int = status.HTTP_200_OK, answer=CaseListSerializer) -> Response:
        """Find the case the person may see (404 before anything else), read the request's fields (400), run the
        action, and answer in the API's terms: 403 for a role, 409 for an illegal change. `answer`: the case's
        shape in the response."""
        case = self.get_object()
        data = _valid(request_shape, self.request) if request_shape else {}
        try:
            result = act(case, data)
        except actions.CaseNotVisible:
            raise NotFound from None
        except actions.NotPermitted as error:
            raise PermissionDenied(str(error)) from None
        except (CaseTransitionError, actions.CaseNotOpen, actions.CannotReach, actions.ChangedSinceSeen) as error:
            return Response({"detail": str(error)}, status=status.HTTP_409_CONFLICT)
        if isinstance(result, Message):
            return Response(MessageSerializer(result).data, status=code)
        fresh = self.get_queryset().get(pk=case.pk)
        return Response(answer(fresh, context={"request": self.request}).data, status=code)

    @extend_schema(request=None, responses=ACTION_RESPONSES)
    @action(detail=True, methods=["post"])
    def acknowledge(self, request: Request, pk=None) -> Response:
        return self._run(lambda case, data: actions.do_acknowledge(case, by=request.user, via="API"))

    @extend_schema(request=ReasonSerializer, responses=ACTION_RESPONSES)
    @action(detail=True, methods=["post"])
    def start(self, request: Request, pk=None) -> Response:
        return self._run(lambda case, data: actions.do_start(case, by=request.user, reason=data["reason"]),
                         ReasonSerializer)  # fmt: skip

    @extend_schema(request=ResolveSerializer, responses=ACTION_RESPONSES)
    @action(detail=True, methods=["post"])
    def resolve(self, request: Request, pk=None) -> Response:
        return self._run(
            lambda case, data: actions.do_resolve(case, by=request.user, outcome=data["outcome"], seen=data["seen"]),
            ResolveSerializer,
        )

    @extend_schema(request=ReasonSerializer, responses=ACTION_RESPONSES)
    @action(detail=True, methods=["post"])
    def reopen(self, request: Request, pk=None) -> Response:
        return self._run(lambda case, data: actions.do_reopen(case, by=request.user, reason=data["reason"]),
                         ReasonSerializer)  # fmt: skip

    @extend_schema(request=AssignSerializer, responses=ACTION_RESPONSES)
    @action(detail=True, methods=["post"])
    def assign(self, request: Request, pk=None) -> Response:
        def assign(case: Case, data: dict) -> Case:
            staff = None
            if data.get("staff_id") is not None:
                staff = StaffProfile.objects.select_related("user").filter(user_id=data["staff_id"], is_active=True)
                staff = staff.first()
                if staff is None:
                    raise ValidationError({"staff_id": [_("No active staff member with this id.")]})
            return actions.do_assign(case, by=request.user, staff=staff)

        return self._run(assign, AssignSerializer)

    @extend_schema(
        request=NoteSerializer, responses={201: OpenApiResponse(description="Note added"), **ACTION_RESPONSES}
    )
    @action(detail=True, methods=["post"])
    def note(self, request: Request, pk=None) -> Response:
        return self._run(
            lambda case, data: actions.do_add_note(case, by=request.user, text=data["text"]) or case,
            NoteSerializer, status.HTTP_201_CREATED,
        )  # fmt: skip

    @extend_schema(request=ReplySerializer, responses={201: MessageSerializer, **ACTION_RESPONSES})
    @action(detail=True, methods=["post"])
    def reply(self, request: Request, pk=None) -> Response:
        return self._run(lambda case, data: actions.do_reply(case, by=request.user, text=data["text"]),
                         ReplySerializer, status.HTTP_201_CREATED)  # fmt: skip

    @extend_schema(
        request=SafeContactRecordSerializer, responses={**ACTION_RESPONSES, 200: SafeContactRecordedSerializer}
    )
    @action(detail=True, methods=["post"], url_path="safe-contact")
    def safe_contact(self, request: Request, pk=None) -> Response:
        """What the person said about a safe call or SMS (on the phone, say), on the timeline; replies obey it."""
        return self._run(lambda case, data: actions.do_record_safe_contact(case, by=request.user, **data),
                         SafeContactRecordSerializer, answer=SafeContactRecordedSerializer)  # fmt: skip

    @extend_schema(request=ReclassifySerializer, responses=ACTION_RESPONSES)
    @action(detail=True, methods=["post"])
    def reclassify(self, request: Request, pk=None) -> Response:
        return self._run(lambda case, data: actions.do_reclassify(case, by=request.user, **data), ReclassifySerializer)


def _case_id(raw) -> int:
    if not (str(raw).isascii() and str(raw).isdigit()):
        raise NotFound
    return int(raw)


def _valid(serializer_class, request: Request) -> dict:
    serializer = serializer_class(data=request.data)
    serializer.is_valid(raise_exception=True)
    return serializer.validated_data
