"""Messages of Django, Django REST framework and django-phonenumber-field that citizens and staff see.

DRF and django-phonenumber-field ship no Bosnian catalogue and Django's is sparse. Marking their exact
messages here puts them into our catalogue (`make messages`), and gettext finds our translation when the
library asks for its own text. Nothing imports this module; it exists to be read by makemessages.
"""
from django.utils.translation import gettext_noop, ngettext_lazy, pgettext_lazy

THIRD_PARTY_MESSAGES = [
    # Django REST framework
    gettext_noop("This field is required."),
    gettext_noop("This field may not be null."),
    gettext_noop("This field may not be blank."),
    gettext_noop("Ensure this field has no more than {max_length} characters."),
    gettext_noop("Enter a valid email address."),
    gettext_noop('"{input}" is not a valid choice.'),
    gettext_noop("Must be a valid boolean."),
    gettext_noop("Invalid data. Expected a dictionary, but got {datatype}."),
    gettext_noop("Invalid input."),
    gettext_noop("Not found."),
    gettext_noop('Method "{method}" not allowed.'),
    gettext_noop('Unsupported media type "{media_type}" in request.'),
    gettext_noop("Request was throttled."),
    ngettext_lazy("Expected available in {wait} second.", "Expected available in {wait} seconds.", "wait"),
    gettext_noop("Authentication credentials were not provided."),
    gettext_noop("You do not have permission to perform this action."),
    # Django forms and validators
    gettext_noop("Null characters are not allowed."),
    gettext_noop("Select a valid choice. %(value)s is not one of the available choices."),
    ngettext_lazy(
        "Ensure this value has at most %(limit_value)d character (it has %(show_value)d).",
        "Ensure this value has at most %(limit_value)d characters (it has %(show_value)d).",
        "limit_value",
    ),
    # django-phonenumber-field
    gettext_noop("Enter a valid phone number."),
    pgettext_lazy(
        "{example_number} is a national phone number.",
        "Enter a valid phone number (e.g. {example_number}) or a number with an international call prefix.",
    ),
]
