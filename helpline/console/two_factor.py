"""The console's second-factor pages: set up an authenticator (with recovery codes), and enter a code after
signing in. The rules are helpline.access.second_factor; the pages that ask for it, the SecondFactorMiddleware."""
from __future__ import annotations

from django import forms
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils.http import url_has_allowed_host_and_scheme, urlencode
from django.utils.translation import gettext_lazy as _
from django.views.decorators.cache import never_cache
from django_otp import login as otp_login

from helpline.access import second_factor
from helpline.console.access import staff_page


class CodeForm(forms.Form):
    code = forms.CharField(
        label=_("Code"), max_length=16, strip=True,
        widget=forms.TextInput(attrs={"autocomplete": "one-time-code", "inputmode": "numeric", "autofocus": True}),
    )  # fmt: skip


def _next(request: HttpRequest) -> str:
    target = request.POST.get("next") or request.GET.get("next") or ""
    if target and url_has_allowed_host_and_scheme(target, {request.get_host()}, require_https=request.is_secure()):
        return target
    return reverse("console:queue")


def _qr_code(uri: str) -> str:
    import segno  # only this page draws one

    return segno.make(uri, error="m").svg_data_uri(scale=4)


@never_cache
@staff_page
def set_up(request: HttpRequest) -> HttpResponse:
    """Shows the key of a new authenticator (as a QR code and as text) and confirms it with a first code. Someone who
    has one already replaces it only after a code from it (or a recovery code) in this sign-in: with a password
    alone, anyone could set up their own authenticator, delete the owner's and be let in."""
    if second_factor.has_second_factor(request.user) and not request.user.is_verified():
        return redirect(f"{reverse('console:two-factor-verify')}?{urlencode({'next': request.get_full_path()})}")
    device = second_factor.pending_authenticator(request.user)
    form = CodeForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        confirmed = second_factor.confirm_authenticator(request.user, form.cleaned_data["code"])
        if confirmed is not None:
            device, codes = confirmed
            otp_login(request, device)
            return render(request, "console/recovery_codes.html", {"codes": codes, "next": _next(request)})
        form.add_error("code", _("That code is not right. Check the time on your phone and try the newest code."))
    key = device.key.upper()
    context = {
        "form": form, "next": _next(request), "qr_code": _qr_code(device.config_url),
        "key_groups": [key[i:i + 4] for i in range(0, len(key), 4)],
        "has_second_factor": second_factor.has_second_factor(request.user),
        "required": second_factor.must_have_second_factor(request.user),
    }  # fmt: skip
    return render(request, "console/two_factor_setup.html", context, status=400 if form.errors else 200)


@never_cache
@staff_page
def verify(request: HttpRequest) -> HttpResponse:
    """The code from the authenticator app, or one recovery code, once per sign-in."""
    if not second_factor.has_second_factor(request.user):
        return redirect(f"{reverse('console:two-factor')}?{urlencode({'next': _next(request)})}")
    form = CodeForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        device = second_factor.device_for_code(request.user, form.cleaned_data["code"])
        if device is not None:
            otp_login(request, device)
            return redirect(_next(request))
        form.add_error("code", _("That code is not right."))
    return render(request, "console/two_factor_verify.html", {"form": form, "next": _next(request)},
                  status=400 if form.errors else 200)  # fmt: skip
