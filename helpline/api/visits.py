"""The staff API for home visits: a worker starts, extends and checks out of their own visit; supervisors list
every visit with its address and take or end an alarm. Incidents against staff are reported here too."""
from __future__ import annotations

import datetime as dt

from django.core.exceptions import PermissionDenied as DjangoPermissionDenied
from django.utils import timezone
from django.utils.text import format_lazy
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy
from drf_spectacular.utils import extend_schema
from rest_framework import mixins, serializers, status, viewsets
from rest_framework.decorators import action
from rest_framework.exceptions import PermissionDenied, ValidationError
from rest_framework.request import Request
from rest_framework.response import Response

from helpline.api.cases import STAFF_AUTHENTICATION
from helpline.api.permissions import IsStaffMember
from helpline.roster.models import StaffProfile
from helpline.visits import selectors, services
from helpline.visits.models import IncidentKind, StaffIncident, Visit


class VisitSerializer(serializers.ModelSerializer):
    worker_name = serializers.CharField(source="worker.__str__", read_only=True)
    case_reference = serializers.CharField(source="case.reference", read_only=True, allow_null=True, default=None)

    class Meta:
        model = Visit
        fields = ["id", "worker", "worker_name", "case", "case_reference", "address", "colleague", "status",
                  "started_at", "expected_end_at", "ended_at", "escalation_step", "acknowledged_at"]  # fmt: skip
        read_only_fields = fields

    def to_representation(self, visit: Visit) -> dict:
        # A duress alarm is shown to the worker as the check-out or the extension it pretended.
        request = self.context.get("request")
        return super().to_representation(selectors.seen_by(visit, getattr(request, "user", None)))


class StartVisitSerializer(serializers.Serializer):
    minutes = serializers.IntegerField(min_value=1, max_value=services.MAX_VISIT_MINUTES)
    address = serializers.CharField(max_length=300, allow_blank=True, required=False, default="")
    case_reference = serializers.CharField(max_length=20, required=False, allow_blank=True, default="")
    colleague = serializers.PrimaryKeyRelatedField(queryset=StaffProfile.objects.filter(is_active=True),
                                                   required=False, allow_null=True, default=None)  # fmt: skip


class ExtendSerializer(serializers.Serializer):
    minutes = serializers.IntegerField(min_value=1, max_value=services.MAX_VISIT_MINUTES)
    pin = serializers.CharField(
        max_length=6, required=False, allow_blank=True, default="",
        help_text=format_lazy(gettext_lazy("The worker's check-out PIN: needed once the visit is overdue, or for "
                                           "more than {minutes} minutes."),
                              minutes=services.EXTEND_WITHOUT_PIN_MAX_MINUTES),
    )  # fmt: skip


class PinSerializer(serializers.Serializer):
    pin = serializers.CharField(max_length=6, required=False, allow_blank=True, default="")


PIN_PATTERN = r"^[0-9]{4,6}$"  # in the schema too, so a client knows before it asks (services.set_pins checks)
_PIN_ERRORS = {"invalid": gettext_lazy("A PIN is 4 to 6 digits.")}


class PinsSerializer(serializers.Serializer):
    checkout_pin = serializers.RegexField(PIN_PATTERN, error_messages=_PIN_ERRORS)
    duress_pin = serializers.RegexField(PIN_PATTERN, error_messages=_PIN_ERRORS)


class IncidentSerializer(serializers.ModelSerializer):
    case_reference = serializers.CharField(max_length=20, required=False, allow_blank=True, write_only=True)
    kind = serializers.ChoiceField(choices=IncidentKind.choices)

    class Meta:
        model = StaffIncident
        fields = ["id", "kind", "occurred_at", "place", "description", "perpetrator", "case_reference",
                  "police_informed", "reported_at"]  # fmt: skip
        read_only_fields = ["id", "reported_at"]

    def validate_occurred_at(self, value):
        now = timezone.now()
        if not now - dt.timedelta(days=366) <= value <= now + dt.timedelta(hours=1):
            raise serializers.ValidationError(_("An incident of the past year, not in the future."))
        return value


def _profile(request: Request) -> StaffProfile:
    profile = getattr(request.user, "staff_profile", None)
    if profile is None:
        raise PermissionDenied(_("Only staff members with a profile make visits."))
    return profile


class VisitViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    authentication_classes = STAFF_AUTHENTICATION
    permission_classes = [IsStaffMember]
    serializer_class = VisitSerializer

    def get_queryset(self):
        return selectors.visible_visits(self.request.user)

    def _done(self, visit: Visit, code: int = status.HTTP_200_OK) -> Response:
        return Response(VisitSerializer(visit, context={"request": self.request}).data, status=code)

    @extend_schema(request=StartVisitSerializer, responses=VisitSerializer)
    def create(self, request: Request) -> Response:
        data = StartVisitSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        staff = _profile(request)
        reference = data.validated_data["case_reference"]
        case = services.staff_case_by_reference(staff, reference) if reference else None
        if reference and case is None:
            raise ValidationError({"case_reference": [_("No such case among yours.")]})
        try:
            visit = services.start_visit(
                staff, minutes=data.validated_data["minutes"], address=data.validated_data["address"], case=case,
                colleague=data.validated_data["colleague"], via="api", by=request.user,
            )  # fmt: skip
        except services.VisitRefused as refusal:
            raise ValidationError({"non_field_errors": [str(refusal)]}) from refusal
        return self._done(visit, status.HTTP_201_CREATED)

    @extend_schema(request=ExtendSerializer, responses=VisitSerializer)
    @action(detail=True, methods=["post"])
    def extend(self, request: Request, pk=None) -> Response:
        """The worker's duress PIN answers as an extension would, and raises the silent alarm."""
        data = ExtendSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        try:
            visit = services.extend_visit(self.get_object(), minutes=data.validated_data["minutes"],
                                          by=request.user, via="api", pin=data.validated_data["pin"])  # fmt: skip
        except services.PinRefused as refusal:
            raise ValidationError({"pin": [str(refusal)]}) from refusal
        except services.VisitRefused as refusal:
            raise ValidationError({"non_field_errors": [str(refusal)]}) from refusal
        except DjangoPermissionDenied as refusal:
            raise PermissionDenied(str(refusal)) from refusal
        return self._done(visit)

    @extend_schema(request=PinSerializer, responses=VisitSerializer)
    @action(detail=True, methods=["post"], url_path="check-out")
    def check_out(self, request: Request, pk=None) -> Response:
        """The worker checks out with their PIN when they have one; the duress PIN answers the same."""
        visit = self.get_object()
        data = PinSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        if request.user.pk == visit.worker.user_id and services.has_pins(visit.worker):
            answer = services.check_out_with_pin(visit.worker, data.validated_data["pin"], via="api")
            if not answer.accepted:
                raise ValidationError({"pin": [answer.reply]})
            visit.refresh_from_db()
            return self._done(visit)
        try:
            return self._done(services.check_out(visit, by=request.user, via="api"))
        except DjangoPermissionDenied as refusal:
            raise PermissionDenied(str(refusal)) from refusal

    @extend_schema(request=None, responses=VisitSerializer)
    @action(detail=True, methods=["post"])
    def acknowledge(self, request: Request, pk=None) -> Response:
        try:
            return self._done(services.acknowledge_visit(self.get_object(), by=request.user, via="api"))
        except DjangoPermissionDenied as refusal:
            raise PermissionDenied(str(refusal)) from refusal

    @extend_schema(request=None, responses={204: None})
    @action(detail=False, methods=["post"])
    def alarm(self, request: Request) -> Response:
        """The silent alarm from an app: answered like any accepted request, nothing more."""
        services.raise_alarm(_profile(request), via="api")
        return Response(status=status.HTTP_204_NO_CONTENT)

    @extend_schema(request=PinsSerializer, responses={204: None})
    @action(detail=False, methods=["post"])
    def pins(self, request: Request) -> Response:
        data = PinsSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        try:
            services.set_pins(_profile(request), **data.validated_data)
        except services.VisitRefused as refusal:
            raise ValidationError({"non_field_errors": [str(refusal)]}) from refusal
        return Response(status=status.HTTP_204_NO_CONTENT)


class IncidentViewSet(mixins.CreateModelMixin, mixins.ListModelMixin, viewsets.GenericViewSet):
    """A staff member reports what happened to them; each sees their own reports, supervisors see all."""

    authentication_classes = STAFF_AUTHENTICATION
    permission_classes = [IsStaffMember]
    serializer_class = IncidentSerializer

    def get_queryset(self):
        incidents = StaffIncident.objects.order_by("-occurred_at", "-pk")
        if getattr(self.request.user, "staff_profile", None) and self.request.user.staff_profile.is_supervisor:
            return incidents
        return incidents.filter(staff_affected__user=self.request.user)

    def perform_create(self, serializer) -> None:
        data = dict(serializer.validated_data)
        reference = data.pop("case_reference", "")
        case = services.staff_case_by_reference(_profile(self.request), reference) if reference else None
        if reference and case is None:
            raise ValidationError({"case_reference": [_("No such case among yours.")]})
        serializer.instance = services.record_incident(
            staff_affected=_profile(self.request), reported_by=self.request.user, case=case, **data
        )
