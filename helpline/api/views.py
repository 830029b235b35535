"""The public inquiry API: open an inquiry, read its status with the secret token, write again."""

from django.http import Http404
from django.urls import reverse
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema, inline_serializer
from rest_framework import serializers, status
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
from helpline.intake import services
from helpline.intake.throttles import InquiryRateThrottle, InquiryStatusRateThrottle


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


class InquiryCreateView(PublicAPIView):
    throttle_classes = [InquiryRateThrottle]

    @extend_schema(
        request=InquiryCreateSerializer,
        responses={201: InquiryCreatedSerializer, 400: OpenApiResponse(description="Field errors"), 429: None},
    )
    def post(self, request: Request) -> Response:
        serializer = InquiryCreateSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        safe = data["safe_contact"]
        received = services.receive_web_inquiry(
            message=data["message"],
            name=data["name"],
            phone=str(data["phone"] or ""),
            email=data["email"],
            language=data["language"],
            safe_to_call=safe.get("call"),
            safe_to_text=safe.get("text"),
            safe_contact_note=safe.get("note", ""),
            is_drill=is_drill_request(request),
        )
        reference = received.case.reference
        body = InquiryCreatedSerializer(
            {
                "reference": reference,
                "token": received.token,
                "status_url": request.build_absolute_uri(reverse("api:inquiry-status", args=[reference])),
            }
        ).data
        return Response(body, status=status.HTTP_201_CREATED)


class InquiryStatusView(PublicAPIView):
    throttle_classes = [InquiryStatusRateThrottle]

    @extend_schema(parameters=[TOKEN_HEADER], responses={200: InquiryStatusSerializer, 404: None, 429: None})
    def get(self, request: Request, reference: str) -> Response:
        case = citizen_case_or_404(request, reference)
        case.citizen_replies = selectors.replies_for_citizen(case)
        return Response(InquiryStatusSerializer(case).data)


class InquiryFollowUpView(PublicAPIView):
    throttle_classes = [InquiryRateThrottle]

    @extend_schema(
        parameters=[TOKEN_HEADER],
        request=FollowUpSerializer,
        responses={
            201: inline_serializer(
                "FollowUpAccepted", {"reference": serializers.CharField(), "status": serializers.CharField()}
            ),
            400: OpenApiResponse(description="Field errors"),
            404: None,
            429: None,
        },
    )
    def post(self, request: Request, reference: str) -> Response:
        case = citizen_case_or_404(request, reference)
        serializer = FollowUpSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        services.receive_follow_up(case, serializer.validated_data["message"])
        case.refresh_from_db()
        return Response({"reference": case.reference, "status": case.status}, status=status.HTTP_201_CREATED)
