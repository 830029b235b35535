"""The staff member's own view (`me`), figures for the period (`stats`) and token login."""
from __future__ import annotations

import datetime as dt

from django.core.exceptions import ValidationError as DjangoValidationError
from django.utils import timezone
from django.utils.dateparse import parse_datetime
from drf_spectacular.utils import OpenApiParameter, extend_schema, inline_serializer
from rest_framework import serializers
from rest_framework.authtoken.views import ObtainAuthToken
from rest_framework.permissions import IsAuthenticated
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.throttling import AnonRateThrottle
from rest_framework.views import APIView

from helpline.api.cases import STAFF_AUTHENTICATION
from helpline.api.filters import as_utc
from helpline.api.staff_serializers import CaseListSerializer
from helpline.cases.models import OPEN_STATUSES, Case
from helpline.cases.selectors import by_urgency
from helpline.casework import selectors
from helpline.roster.selectors import is_supervisor, on_duty


class LoginRateThrottle(AnonRateThrottle):
    scope = "login"

    def get_cache_key(self, request, view):
        # Every attempt counts, signed in or not: this is what slows down password guessing.
        return self.cache_format % {"scope": self.scope, "ident": self.get_ident(request)}


class TokenLoginView(ObtainAuthToken):
    """POST username and password, get `{token}` for the Authorization header (`Token <token>`)."""

    throttle_classes = [LoginRateThrottle]


class MeView(APIView):
    authentication_classes = STAFF_AUTHENTICATION
    permission_classes = [IsAuthenticated]

    @extend_schema(
        responses=inline_serializer(
            "Me",
            {
                "id": serializers.IntegerField(),
                "username": serializers.CharField(),
                "name": serializers.CharField(),
                "role": serializers.CharField(),
                "is_on_duty": serializers.BooleanField(),
                "open_cases": CaseListSerializer(many=True),
            },
        )
    )
    def get(self, request: Request) -> Response:
        user = request.user
        profile = getattr(user, "staff_profile", None)
        cases = by_urgency(Case.objects.filter(assigned_to=user, status__in=OPEN_STATUSES)).select_related(
            "caller", "assigned_to"
        )
        return Response(
            {
                "id": user.pk,
                "username": user.get_username(),
                "name": user.get_full_name() or user.get_username(),
                "role": "supervisor" if is_supervisor(user) else (profile.role if profile else "staff"),
                "is_on_duty": profile is not None and on_duty(timezone.now()).filter(pk=profile.pk).exists(),
                "open_cases": CaseListSerializer(cases, many=True, context={"request": request}).data,
            }
        )


def _moment(request: Request, name: str) -> dt.datetime | None:
    raw = request.query_params.get(name, "")
    if not raw:
        return None
    parsed = parse_datetime(raw)
    if parsed is None:
        raise ValueError(name)
    return as_utc(parsed if timezone.is_aware(parsed) else timezone.make_aware(parsed))


class StatsView(APIView):
    authentication_classes = STAFF_AUTHENTICATION
    permission_classes = [IsAuthenticated]

    @extend_schema(
        parameters=[
            OpenApiParameter("created_after", str, description="ISO date-time; default: 7 days ago"),
            OpenApiParameter("created_before", str, description="ISO date-time; default: now"),
        ],
        responses=inline_serializer("Stats", {"period": serializers.DictField(), "cases": serializers.IntegerField()}),
    )
    def get(self, request: Request) -> Response:
        now = timezone.now()
        try:
            start = _moment(request, "created_after") or now - dt.timedelta(days=7)
            end = _moment(request, "created_before") or now
        except (ValueError, OverflowError, DjangoValidationError):
            return Response({"detail": "created_after and created_before must be ISO date-times."}, status=400)
        return Response(selectors.case_stats(request.user, start, end))
