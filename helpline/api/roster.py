"""The roster API for supervisors: staff profiles and shifts."""
from django.db import IntegrityError, transaction
from django.utils.translation import gettext_lazy as _
from rest_framework import serializers, viewsets

from helpline.api.cases import STAFF_AUTHENTICATION
from helpline.api.permissions import IsSupervisor
from helpline.roster.models import Shift, StaffProfile
from helpline.roster.selectors import clashes_with_the_rotation


class StaffProfileSerializer(serializers.ModelSerializer):
    username = serializers.CharField(source="user.username", read_only=True)
    name = serializers.SerializerMethodField()

    class Meta:
        model = StaffProfile
        fields = ["id", "user", "username", "name", "role", "phone", "languages", "skills", "max_open_cases",
                  "is_active"]  # fmt: skip

    def get_name(self, profile: StaffProfile) -> str:
        return profile.user.get_full_name() or profile.user.get_username()


class ShiftSerializer(serializers.ModelSerializer):
    class Meta:
        model = Shift
        fields = ["id", "staff", "starts_at", "ends_at", "note"]

    def validate(self, data: dict) -> dict:
        starts = data.get("starts_at", getattr(self.instance, "starts_at", None))
        ends = data.get("ends_at", getattr(self.instance, "ends_at", None))
        if starts and ends and ends <= starts:
            raise serializers.ValidationError({"ends_at": [_("A shift must end after it starts.")]})
        staff = data.get("staff", getattr(self.instance, "staff", None))
        moved = self.instance is not None and staff and starts
        if moved and clashes_with_the_rotation(self.instance, staff.pk, starts):
            raise serializers.ValidationError(
                {"starts_at": [_("This person already has a shift starting at that time.")]}
            )
        return data


class StaffViewSet(viewsets.ModelViewSet):
    authentication_classes = STAFF_AUTHENTICATION
    permission_classes = [IsSupervisor]
    serializer_class = StaffProfileSerializer
    queryset = StaffProfile.objects.select_related("user").order_by("pk")


class ShiftViewSet(viewsets.ModelViewSet):
    authentication_classes = STAFF_AUTHENTICATION
    permission_classes = [IsSupervisor]
    serializer_class = ShiftSerializer
    queryset = Shift.objects.order_by("starts_at", "pk")

    def _save(self, serializer, **fields) -> None:
        # The database has the last word on a shift's constraints: a clash is the client's 400, never a 500.
        try:
            with transaction.atomic():
                serializer.save(**fields)
        except IntegrityError:
            raise serializers.ValidationError(
                {"starts_at": [_("This person already has a shift starting at that time.")]}
            ) from None

    def perform_create(self, serializer) -> None:
        self._save(serializer)

    def perform_update(self, serializer) -> None:
        # Another person or other times, set by a supervisor (a swap): the rotation's hourly generation leaves it as
        # they set it. A note alone changes nothing of that: the shift still follows its slot.
        shift, changes = serializer.instance, serializer.validated_data
        moved = any(name in changes and changes[name] != getattr(shift, name) for name in ("staff", "starts_at",
                                                                                           "ends_at"))
        self._save(serializer, **({"changed_by_hand": True} if moved else {}))
