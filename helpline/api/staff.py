"""The staff member's own view (`me`), figures for the period (`stats`) and token login."""
from __future__ import annotations

import datetime as dt

from django.contrib.auth.signals import user_login_failed
from django.core.exceptions import ValidationError as DjangoValidationError
from django.utils import timezone
from django.utils.dateparse import parse_datetime
from django.utils.translation import gettext as _
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema, inline_serializer
from knox.views import LoginView as KnoxLoginView
from knox.views import LogoutAllView as KnoxLogoutAllView
from knox.views import LogoutView as KnoxLogoutView
from rest_framework import serializers
from rest_framework.authtoken.serializers import AuthTokenSerializer
from rest_framework.parsers import FormParser, JSONParser, MultiPartParser
from rest_framework.permissions import AllowAny, IsAuthenticated
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.throttling import AnonRateThrottle
from rest_framework.views import APIView

from helpline.access import second_factor
from helpline.access.authentication import StaffTokenAuthentication
from helpline.access.lockout import is_locked_out, retry_after_seconds
from helpline.access.revocation import has_access
from helpline.api.cases import STAFF_AUTHENTICATION
from helpline.api.filters import as_utc
from helpline.api.permissions import IsStaffMember
from helpline.api.staff_serializers import CaseListSerializer
from helpline.cases.models import OPEN_STATUSES, Case
from helpline.cases.selectors import by_urgency
from helpline.casework import selectors
from helpline.roster.selectors import is_supervisor, on_duty


class TokenLoginSerializer(AuthTokenSerializer):
    """DRF's token login, with the username as long as a username can be (150): a longer one went on to the
    login-attempt log's column and failed there with a 500."""

    username = serializers.CharField(label=_("Username"), max_length=150, write_only=True)


class LoginRateThrottle(AnonRateThrottle):
    scope = "login"

    def get_cache_key(self, request, view):
        # Every attempt counts, signed in or not: this is what slows down password guessing.
        return self.cache_format % {"scope": self.scope, "ident": self.get_ident(request)}


class TokenLoginView(KnoxLoginView):
    """POST username and password (and `otp_token`, the authenticator code, for anyone with a second factor and
    every supervisor), get `{token, expiry}` for the Authorization header (`Token <token>`).

    Each login is a new token (one per device), valid for API_TOKEN_HOURS; logging out revokes it. The password
    check goes through the same lockout as the admin and the console (helpline.access.lockout)."""

    authentication_classes: list = []
    permission_classes = [AllowAny]
    throttle_classes = [LoginRateThrottle]
    parser_classes = [JSONParser, FormParser, MultiPartParser]  # as DRF's token login took them

    @extend_schema(
        request=TokenLoginSerializer,
        responses=inline_serializer("Token", {"token": serializers.CharField(), "expiry": serializers.DateTimeField()}),
    )
    def post(self, request: Request, format=None) -> Response:
        # Axes reads and marks the Django request, not DRF's wrapper around it.
        credentials = TokenLoginSerializer(data=request.data, context={"request": request._request})
        is_valid = credentials.is_valid()
        if is_locked_out(request._request):
            return Response(
                {"detail": _("Too many failed logins. Try again later.")},
                status=429,
                headers={"Retry-After": str(retry_after_seconds())},
            )
        if not is_valid or not has_access(credentials.validated_data["user"]):
            raise serializers.ValidationError(
                credentials.errors or {"non_field_errors": [_("Unable to log in with provided credentials.")]}
            )
        user = credentials.validated_data["user"]
        if second_factor.has_second_factor(user) or second_factor.must_have_second_factor(user):
            code = str(request.data.get("otp_token", ""))
            if second_factor.device_for_code(user, code) is None:
                # A wrong code counts towards the lockout like a wrong password.
                user_login_failed.send(
                    sender=__name__, credentials={"username": user.get_username()}, request=request._request
                )
                if not second_factor.has_second_factor(user):
                    problem = _("Set up a second factor in the console first.")
                else:
                    problem = _("The code from your authenticator app is needed.")
                raise serializers.ValidationError({"otp_token": [problem]})
        request.user = user
        return super().post(request, format)


class TokenLogoutView(KnoxLogoutView):
    """Revokes the token this request carries; the person's other devices stay signed in."""

    authentication_classes = [StaffTokenAuthentication]

    @extend_schema(request=None, responses={204: None})
    def post(self, request: Request, format=None) -> Response:
        return super().post(request, format)


class TokenLogoutEverywhereView(KnoxLogoutAllView):
    """Revokes every token of the person (a lost phone)."""

    authentication_classes = [StaffTokenAuthentication]

    @extend_schema(request=None, responses={204: None})
    def post(self, request: Request, format=None) -> Response:
        return super().post(request, format)


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
    permission_classes = [IsStaffMember]

    @extend_schema(
        parameters=[
            OpenApiParameter("created_after", OpenApiTypes.DATETIME, description="ISO date-time; default: 7 days ago"),
            OpenApiParameter("created_before", OpenApiTypes.DATETIME, description="ISO date-time; default: now"),
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
