"""The staff case API (acknowledgement first; the staff API issue adds the rest)."""
from django.db.models import Q
from django.http import Http404
from rest_framework import serializers, status
from rest_framework.authentication import SessionAuthentication, TokenAuthentication
from rest_framework.permissions import IsAuthenticated
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from helpline.models import Case
from notifications.services import NotAllowed, acknowledge_case
from triage.models import Role


def cases_visible_to(user) -> "Q":
    """A supervisor sees every case; a worker the cases assigned to them and the unassigned queue."""
    profile = getattr(user, "staff_profile", None)
    if user.is_superuser or (profile is not None and profile.role == Role.SUPERVISOR):
        return Q()
    return Q(assigned_to=user) | Q(assigned_to__isnull=True)


class CaseStateSerializer(serializers.ModelSerializer):
    class Meta:
        model = Case
        fields = ["id", "reference", "status", "priority", "category", "acknowledged_at"]


class StaffAPIView(APIView):
    authentication_classes = [SessionAuthentication, TokenAuthentication]
    permission_classes = [IsAuthenticated]

    def visible_case(self, request: Request, case_id: int) -> Case:
        case = Case.objects.filter(cases_visible_to(request.user), pk=case_id).first()
        if case is None:
            raise Http404  # no hint that a case exists
        return case


class AcknowledgeCaseView(StaffAPIView):
    def post(self, request: Request, case_id: int) -> Response:
        case = self.visible_case(request, case_id)
        try:
            case = acknowledge_case(case, by=request.user, via="API")
        except NotAllowed:
            return Response({"detail": "This case is assigned to someone else."}, status=status.HTTP_403_FORBIDDEN)
        return Response(CaseStateSerializer(case).data)
