"""Finding rows by an encrypted value in tests: the database cannot compare ciphertexts, so read and compare here."""
from helpline.cases.encryption import FERNET_PREFIX, current_fernet, phone_index
from helpline.cases.models import Case, Message
from helpline.welfare.models import VulnerablePerson


def case_saying(text: str) -> Case:
    """The one case with a message of exactly this text."""
    (case,) = {message.case for message in Message.objects.select_related("case") if message.body == text}
    return case


def cases_of_number(number: str):
    return Case.objects.filter(caller__phone_index=phone_index(number))


def person_named(full_name: str) -> VulnerablePerson:
    """The one register entry with exactly this name."""
    (person,) = [person for person in VulnerablePerson.objects.all() if person.full_name == full_name]
    return person


def what_is_readable(values) -> str:
    """What a copy of the database shows without the keys: every value that is not a Fernet token (a token must
    open with the service's keys), joined. Ciphertext is left out, since base64 can spell any short word by chance."""
    readable = []
    for value in values:
        text = "" if value is None else str(value)
        if text.startswith(FERNET_PREFIX):
            current_fernet().decrypt(text.encode())  # a real token, not clear text that happens to start so
        else:
            readable.append(text)
    return " ".join(readable)
