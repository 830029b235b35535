"""Mounted only by benchmarks/urls.py (benchmarks/run.py): the ceiling the benchmark compares intake with."""
import uuid

from django.utils import timezone
from rest_framework.permissions import AllowAny
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from helpline.cases.models import Heartbeat


class BareInsertView(APIView):
    """A bare Django REST framework endpoint that inserts one row: what this stack can do at best."""

    authentication_classes: list = []
    permission_classes = [AllowAny]

    def post(self, request: Request) -> Response:
        row = Heartbeat.objects.create(name=uuid.uuid4().hex, beat_at=timezone.now())
        return Response({"id": row.name}, status=201)
