"""API authentication for staff: knox tokens (hashed in the database, with an expiry), refused for a deactivated
user or staff profile even before the revocation has run."""
from __future__ import annotations

from django.utils.translation import gettext as _
from drf_spectacular.extensions import OpenApiAuthenticationExtension
from drf_spectacular.plumbing import build_bearer_security_scheme_object
from knox.auth import TokenAuthentication
from rest_framework import exceptions

from helpline.access.revocation import has_access


class StaffTokenAuthentication(TokenAuthentication):
    def validate_user(self, auth_token):
        if not has_access(auth_token.user):
            raise exceptions.AuthenticationFailed(_("User inactive or deleted."))
        return (auth_token.user, auth_token)


class StaffTokenScheme(OpenApiAuthenticationExtension):
    """How the API schema describes it: `Authorization: Token <token>` from POST /api/v1/auth/token/."""

    target_class = StaffTokenAuthentication
    name = "tokenAuth"

    def get_security_definition(self, auto_schema):
        return build_bearer_security_scheme_object(header_name="Authorization", token_prefix="Token")  # noqa: S106
