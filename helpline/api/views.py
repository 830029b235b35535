"""The public inquiry API: open an inquiry, read its status with the secret token, write again.

An inquiry or follow-up that cannot be stored (the database is away) is spooled and answered 202 with its
reference (helpline.intake.spool); an Idempotency-Key header makes a retried request store one inquiry."""

import logging
import uuid

from django.core.exceptions import PermissionDenied
from django.http import Http404
from django.urls import reverse
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema, inline_serializer
from rest_framework import serializers, status
from rest_framework.exceptions import APIException, ValidationError
from rest_framework.permissions import AllowAny
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from helpline.api.serializers import (
    FollowUpSerializer,
    InquiryCreatedSerializer,
    InquiryCreateSerializer,
    InquiryStatusSerializer,
)
from helpline.cases import intake, selectors
from helpline.cases.models import Case, Channel
from helpline.drill.marker import is_drill_request
from helpline.intake import services, spool
from helpline.intake.throttles import InquiryStatusRateThrottle, limit_reached

logger = logging.getLogger(__name__)


class PublicAPIView(APIView):
    # Citizens have no account; no session means no CSRF check that a mobile app could not pass.
    authentication_classes: list = []
    permission_classes = [AllowAny]


def citizen_case_or_404(request: Request, reference: str) -> Case:
    """The web case with this reference, if the X-Inquiry-Token matches; otherwise 404, whatever was wrong."""
    case = selectors.case_by_reference(reference)
    token = request.headers.get("X-Inquiry-Token", "")
    if case is None or case.channel != Channel.WEB or not intake.citizen_token_matches(case, token):
        raise Http404
    return case


TOKEN_HEADER = OpenApiParameter(
    "X-Inquiry-Token", str, OpenApiParameter.HEADER, required=True, description="The token the inquiry returned."
)
IDEMPOTENCY_HEADER = OpenApiParameter(
    "Idempotency-Key",
    str,
    OpenApiParameter.HEADER,
    required=False,
    description="A value unique to this submission (a UUID). Sending the request again with the same key and the "
    "same message stores it once and returns the first answer.",
)


def idempotency_key(request: Request) -> str | None:
    key = request.headers.get("Idempotency-Key", "").strip()
    if not key:
        return None
    if len(key) > 100 or not key.isprintable() or not key.isascii():
        raise ValidationError({"idempotency_key": ["At most 100 printable ASCII characters."]})
    return key


class SpoolsWhenStoringFails:
    """Any failure that is not an answer (a field error, a throttle, a 404) spools the request and answers 202."""

    def handle_exception(self, exc: Exception) -> Response:
        if isinstance(exc, APIException | Http404 | PermissionDenied):
            return super().handle_exception(exc)
        logger.error("public API %s failed (%s); spooling the request", self.request.path, type(exc).__name__)
        try:
            return self.spool()
        except Exception as error:
            logger.critical("could not spool a request on %s (%s)", self.request.path, type(error).__name__)
            return Response({"detail": "Temporarily unavailable."}, status=status.HTTP_503_SERVICE_UNAVAILABLE)

    def spool(self) -> Response:
        raise NotImplementedError


def _inquiry(request: Request) -> dict:
    serializer = InquiryCreateSerializer(data=request.data)
    serializer.is_valid(raise_exception=True)
    data = serializer.validated_data
    safe = data["safe_contact"]
    return {
        "message": data["message"],
        "name": data["name"],
        "phone": str(data["phone"] or ""),
        "email": data["email"],
        "language": data["language"],
        "safe_to_call": safe.get("call"),
        "safe_to_text": safe.get("text"),
        "safe_contact_note": safe.get("note", ""),
        "is_drill": is_drill_request(request),
    }


def _created(request: Request, reference: str, token: str, answer: int, notice: str = "") -> Response:
    body = InquiryCreatedSerializer(
        {
            "reference": reference,
            "token": token,
            "status_url": request.build_absolute_uri(reverse("api:inquiry-status", args=[reference])),
            "notice": notice,  # the surge notice; none from the spool, which answers without the database
        }
    ).data
    return Response(body, status=answer)


class InquiryCreateView(SpoolsWhenStoringFails, PublicAPIView):
    # Never refused for rate: over the per-address limits an inquiry is stored and flagged (intake.throttles).
    throttle_classes: list = []

    @extend_schema(
        parameters=[IDEMPOTENCY_HEADER],
        request=InquiryCreateSerializer,
        responses={
            201: InquiryCreatedSerializer,
            202: OpenApiResponse(InquiryCreatedSerializer, description="Received; stored shortly"),
            400: OpenApiResponse(description="Field errors"),
            422: OpenApiResponse(description="Idempotency-Key already used for another message"),
            429: None,
        },
    )
    def post(self, request: Request) -> Response:
        key = idempotency_key(request)
        inquiry = {**_inquiry(request), "over_address_limit": limit_reached(request)}
        try:
            received = services.receive_web_inquiry(**inquiry, idempotency_key=key)
        except intake.IdempotencyKeyReused:
            return Response(
                {"idempotency_key": ["This Idempotency-Key was already used for another message."]},
                status=status.HTTP_422_UNPROCESSABLE_ENTITY,
            )
        return _created(
            request, received.case.reference, received.token, status.HTTP_201_CREATED,
            notice=services.surge_notice(received.case.script, received.case.language),
        )  # fmt: skip

    def spool(self) -> Response:
        """Kept in the spool: the reference reserved for it, and the token the key will open it with."""
        inquiry = _inquiry(self.request)
        key = spool.key_for("web", idempotency_key(self.request) or uuid.uuid4().hex, inquiry["message"])
        contact, _is_new = spool.spool_inquiry(key, inquiry, reference=intake.reserve_spool_reference())
        return _created(
            self.request, contact.reference, intake.token_for_idempotency_key(key), status.HTTP_202_ACCEPTED
        )


class InquiryStatusView(PublicAPIView):
    throttle_classes = [InquiryStatusRateThrottle]

    @extend_schema(parameters=[TOKEN_HEADER], responses={200: InquiryStatusSerializer, 404: None, 429: None})
    def get(self, request: Request, reference: str) -> Response:
        case = citizen_case_or_404(request, reference)
        case.citizen_replies = selectors.replies_for_citizen(case)
        return Response(InquiryStatusSerializer(case).data)


class InquiryFollowUpView(SpoolsWhenStoringFails, PublicAPIView):
    # The token check is what is limited (a guess at a token); the follow-up itself is stored and flagged when
    # the address is over the intake limits.
    throttle_classes = [InquiryStatusRateThrottle]

    @extend_schema(
        parameters=[TOKEN_HEADER, IDEMPOTENCY_HEADER],
        request=FollowUpSerializer,
        responses={
            201: inline_serializer(
                "FollowUpAccepted", {"reference": serializers.CharField(), "status": serializers.CharField()}
            ),
            202: OpenApiResponse(description="Received; stored shortly"),
            400: OpenApiResponse(description="Field errors"),
            404: None,
            429: None,
        },
    )
    def post(self, request: Request, reference: str) -> Response:
        key = idempotency_key(request)
        case = citizen_case_or_404(request, reference)
        serializer = FollowUpSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        services.receive_follow_up(
            case, serializer.validated_data["message"], idempotency_key=key, over_address_limit=limit_reached(request)
        )
        case.refresh_from_db()
        return Response({"reference": case.reference, "status": case.status}, status=status.HTTP_201_CREATED)

    def spool(self) -> Response:
        """Kept in the spool; the case and token are checked when it is replayed."""
        serializer = FollowUpSerializer(data=self.request.data)
        serializer.is_valid(raise_exception=True)
        reference = self.kwargs["reference"].strip().upper()
        spool.spool_contact(
            "follow_up",
            idempotency_key(self.request) or uuid.uuid4().hex,
            {"code": self.request.headers.get("X-Inquiry-Token", ""), "message": serializer.validated_data["message"]},
            reference=reference,
        )
        return Response({"reference": reference, "status": "received"}, status=status.HTTP_202_ACCEPTED)
