"""The staff case API: the queue, a case with its conversation and timeline, and the actions on it.

Thin: visibility and reads come from helpline.selectors, every change from a service that writes the timeline.
A case a person may not see answers 404 (no hint it exists); an action their role may not take answers 403; an
illegal status change answers 409 with the reason.
"""

from __future__ import annotations

from django.db.models import Prefetch
from django.utils.translation import gettext as _
from django_filters.rest_framework import DjangoFilterBackend
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import mixins, status, viewsets
from rest_framework.authentication import SessionAuthentication, TokenAuthentication
from rest_framework.decorators import action
from rest_framework.exceptions import PermissionDenied
from rest_framework.pagination import PageNumberPagination
from rest_framework.permissions import IsAuthenticated
from rest_framework.request import Request
from rest_framework.response import Response

from helpline import selectors, services
from helpline.api.filters import CaseFilter
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
)
from helpline.models import Case, CaseRead, CaseStatus, Message, TimelineEvent
from notifications import services as notification_services
from triage.models import StaffProfile

STAFF_AUTHENTICATION = [SessionAuthentication, TokenAuthentication]


class CasePagination(PageNumberPagination):
    page_size = 25
    page_size_query_param = "page_size"
    max_page_size = 100


ACTION_RESPONSES = {
    200: CaseListSerializer,
    403: OpenApiResponse(ErrorSerializer, description="Your role may not do this."),
    404: OpenApiResponse(ErrorSerializer, description="No such case, or not yours to see."),
    409: OpenApiResponse(ErrorSerializer, description="Not allowed from the case's current status."),
}


class CaseViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    authentication_classes = STAFF_AUTHENTICATION
    permission_classes = [IsAuthenticated]
    pagination_class = CasePagination
    filter_backends = [DjangoFilterBackend]
    filterset_class = CaseFilter
    queryset = Case.objects.none()  # for the schema; get_queryset answers per person

    def get_queryset(self):
        cases = selectors.with_urgency(selectors.cases_visible_to(self.request.user))
        cases = cases.select_related("caller", "assigned_to")
        if self.action == "retrieve":
            cases = cases.prefetch_related(
                Prefetch("messages", queryset=Message.objects.order_by("created_at", "id")),
                Prefetch(
                    "timeline", queryset=TimelineEvent.objects.select_related("actor").order_by("created_at", "id")
                ),
            )
        return cases.order_by("-urgency", "acknowledge_by", "created_at")

    def get_serializer_class(self):
        return CaseDetailSerializer if self.action == "retrieve" else CaseListSerializer

    def _is_supervisor(self) -> bool:
        return selectors.is_supervisor(self.request.user)

    def retrieve(self, request: Request, *args, **kwargs) -> Response:
        case = self.get_object()
        CaseRead.objects.create(case=case, reader=request.user)
        earlier = selectors.cases_visible_to(request.user).filter(pk__in=selectors.earlier_cases_of(case))
        serializer = CaseDetailSerializer(case, context={"request": request, "earlier_cases": list(earlier)})
        return Response(serializer.data)

    # --- actions ---------------------------------------------------------------------------------------------

    def _case_for_action(self, *, supervisor_only: bool = False, own_only: bool = True) -> Case:
        case = self.get_object()
        if supervisor_only and not self._is_supervisor():
            raise PermissionDenied(_("Only a supervisor may do this."))
        if own_only and not self._is_supervisor() and case.assigned_to_id != self.request.user.pk:
            raise PermissionDenied(_("Only the assigned worker or a supervisor may do this."))
        return case

    def _answer(self, case: Case, code: int = status.HTTP_200_OK) -> Response:
        fresh = self.get_queryset().get(pk=case.pk)
        return Response(CaseListSerializer(fresh, context={"request": self.request}).data, status=code)

    def _change_status(self, case: Case, to_status: str, reason: str) -> Response:
        try:
            services.change_case_status(case, to_status, actor=self.request.user, reason=reason)
        except services.CaseTransitionError as error:
            return Response({"detail": str(error)}, status=status.HTTP_409_CONFLICT)
        return self._answer(case)

    @extend_schema(request=None, responses=ACTION_RESPONSES)
    @action(detail=True, methods=["post"])
    def acknowledge(self, request: Request, pk=None) -> Response:
        case = self._case_for_action(own_only=False)
        try:
            case = notification_services.acknowledge_case(case, by=request.user, via="API")
        except notification_services.NotAllowed:
            raise PermissionDenied(_("This case is assigned to someone else.")) from None
        except services.CaseTransitionError as error:
            return Response({"detail": str(error)}, status=status.HTTP_409_CONFLICT)
        return self._answer(case)

    @extend_schema(request=ReasonSerializer, responses=ACTION_RESPONSES)
    @action(detail=True, methods=["post"])
    def start(self, request: Request, pk=None) -> Response:
        case = self._case_for_action()
        data = _valid(ReasonSerializer, request)
        return self._change_status(case, CaseStatus.IN_PROGRESS, data["reason"] or "started work")

    @extend_schema(request=ResolveSerializer, responses=ACTION_RESPONSES)
    @action(detail=True, methods=["post"])
    def resolve(self, request: Request, pk=None) -> Response:
        case = self._case_for_action()
        data = _valid(ResolveSerializer, request)
        return self._change_status(case, CaseStatus.RESOLVED, data["outcome"])

    @extend_schema(request=ReasonSerializer, responses=ACTION_RESPONSES)
    @action(detail=True, methods=["post"])
    def reopen(self, request: Request, pk=None) -> Response:
        case = self._case_for_action()
        data = _valid(ReasonSerializer, request)
        target = CaseStatus.ASSIGNED if case.assigned_to_id else CaseStatus.TRIAGED
        return self._change_status(case, target, data["reason"] or "reopened")

    @extend_schema(request=AssignSerializer, responses=ACTION_RESPONSES)
    @action(detail=True, methods=["post"])
    def assign(self, request: Request, pk=None) -> Response:
        case = self._case_for_action(supervisor_only=True, own_only=False)
        data = _valid(AssignSerializer, request)
        staff = StaffProfile.objects.select_related("user").filter(user_id=data["staff_id"], is_active=True).first()
        if staff is None:
            return Response({"staff_id": [_("No active staff member with this id.")]}, status=400)
        if not case.is_open:
            return Response({"detail": _("A closed or resolved case must be reopened first.")}, status=409)
        case = services.assign_case(case, staff.user, by=request.user, explanation="assigned by a supervisor")
        notification_services.start_acknowledgement_clock(case, staff)
        return self._answer(case)

    @extend_schema(
        request=NoteSerializer, responses={201: OpenApiResponse(description="Note added"), **ACTION_RESPONSES}
    )
    @action(detail=True, methods=["post"])
    def note(self, request: Request, pk=None) -> Response:
        case = self._case_for_action()
        services.add_note(case, _valid(NoteSerializer, request)["text"], by=request.user)
        return self._answer(case, status.HTTP_201_CREATED)

    @extend_schema(request=ReplySerializer, responses={201: MessageSerializer, **ACTION_RESPONSES})
    @action(detail=True, methods=["post"])
    def reply(self, request: Request, pk=None) -> Response:
        case = self._case_for_action()
        message = notification_services.reply_to_citizen(
            case, _valid(ReplySerializer, request)["text"], by=request.user
        )
        return Response(MessageSerializer(message).data, status=status.HTTP_201_CREATED)

    @extend_schema(request=ReclassifySerializer, responses=ACTION_RESPONSES)
    @action(detail=True, methods=["post"])
    def reclassify(self, request: Request, pk=None) -> Response:
        case = self._case_for_action()
        data = _valid(ReclassifySerializer, request)
        services.reclassify_case(
            case, priority=data["priority"], category=data["category"], reason=data["reason"], by=request.user
        )
        return self._answer(case)


def _valid(serializer_class, request: Request) -> dict:
    serializer = serializer_class(data=request.data)
    serializer.is_valid(raise_exception=True)
    return serializer.validated_data
