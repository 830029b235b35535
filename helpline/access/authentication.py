"""API authentication for staff: knox tokens (hashed in the database, with an expiry), refused for a deactivated
user or staff profile even before the revocation has run, and for someone who must now have a second factor and
has none (a worker's token outlives their promotion to supervisor)."""
from __future__ import annotations

from django.utils.translation import gettext as _
from drf_spectacular.extensions import OpenApiAuthenticationExtension
from drf_spectacular.plumbing import build_bearer_security_scheme_object
from knox.auth import TokenAuthentication
from rest_framework import exceptions

from helpline.access import second_factor
from helpline.access.revocation import has_access


class StaffTokenAuthentication(TokenAuthentication):
    def validate_user(self, auth_token):
        user = auth_token.user
        if not has_access(user):
            raise exceptions.AuthenticationFailed(_("User inactive or deleted."))
        # The login asks for the second factor only when it issues the token: checked on every request, a token made
        # while none was required stops at the promotion that requires one.
        if second_factor.must_have_second_factor(user) and not second_factor.has_second_factor(user):
            raise exceptions.AuthenticationFailed(_("Set up a second factor in the console first."))
        return (user, auth_token)


class StaffTokenScheme(OpenApiAuthenticationExtension):
    """How the API schema describes it: `Authorization: Token <token>` from POST /api/v1/auth/token/."""

    target_class = StaffTokenAuthentication
    name = "tokenAuth"

    def get_security_definition(self, auto_schema):
        return build_bearer_security_scheme_object(header_name="Authorization", token_prefix="Token")  # noqa: S106
