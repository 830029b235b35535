"""Ending a staff member's access at once: every API token and every signed-in session.

A password change or a deactivation (of the Django user or of the staff profile) must end access whichever way it
was made: the admin, the staff API, a management command. So the trigger is the row being saved, not one view.
Django already ignores the session of an inactive user and of a changed password on the next request; deleting
the sessions and tokens as well means nothing waits for a next request, and a token has no such check of its own.
"""
from __future__ import annotations

from django.contrib.auth import get_user_model
from django.contrib.sessions.models import Session
from django.db.models.signals import post_save, pre_save
from django.utils import timezone
from knox.models import AuthToken

from helpline.roster.models import StaffProfile


def has_access(user) -> bool:
    """An active user whose staff profile, if any, is active: the one test sessions and tokens both pass."""
    if not user.is_active:
        return False
    profile = getattr(user, "staff_profile", None)
    return profile is None or profile.is_active


def end_all_access(user) -> None:
    """Revoke every API token of this user and delete every session signed in as them."""
    AuthToken.objects.filter(user=user).delete()
    user_id = str(user.pk)
    # Staff sessions are few (tens); reading each live session's data is cheap and needs no extra table.
    stale = [
        session.pk
        for session in Session.objects.filter(expire_date__gt=timezone.now()).iterator()
        if session.get_decoded().get("_auth_user_id") == user_id
    ]
    Session.objects.filter(pk__in=stale).delete()


def _note_what_changes(sender, instance, update_fields=None, **kwargs) -> None:
    if instance.pk is None or (update_fields is not None and not {"password", "is_active"} & set(update_fields)):
        return
    before = sender.objects.filter(pk=instance.pk).values("password", "is_active").first()
    if before is None:
        return
    instance._access_must_end = before["password"] != instance.password or (
        before["is_active"] and not instance.is_active
    )


def _end_access_of_changed_user(sender, instance, created, **kwargs) -> None:
    if getattr(instance, "_access_must_end", False):
        instance._access_must_end = False
        end_all_access(instance)
    if not instance.is_active:
        # Their phone's powers go too: an SMS from it took cases ("OK"), stopped alarms and was never a citizen's
        # case, and the ladder kept calling it about critical cases, since phones are matched to active profiles.
        StaffProfile.objects.filter(user=instance, is_active=True).update(is_active=False)


def _end_access_of_deactivated_staff(sender, instance: StaffProfile, created, **kwargs) -> None:
    if not instance.is_active:
        end_all_access(instance.user)


def connect() -> None:
    user_model = get_user_model()
    pre_save.connect(_note_what_changes, sender=user_model, dispatch_uid="access-note-user-change")
    post_save.connect(_end_access_of_changed_user, sender=user_model, dispatch_uid="access-end-user")
    post_save.connect(_end_access_of_deactivated_staff, sender=StaffProfile, dispatch_uid="access-end-staff")
