"""Citizens write in Latin or Cyrillic, with or without diacritics; answers follow their script."""
import pytest
from hypothesis import given
from hypothesis import strategies as st

from helpline.cases.language import cyrillic_to_latin, detect_language, detect_script, latin_to_cyrillic

SERBIAN_LATIN = "abcčćddžđefghijklljmnnjoprsštuvzž "


def test_latin_answer_becomes_serbian_cyrillic_letter_for_letter():
    assert latin_to_cyrillic("Ljubav, njega, džep, đak, ćup, čaša, šuma, žaba") == (
        "Љубав, њега, џеп, ђак, ћуп, чаша, шума, жаба"
    )


def test_references_placeholders_and_capitals_stay_latin_in_a_cyrillic_answer():
    text = "SOS telefon: broj SOS-2026-00042, %(police)s, https://sos.ba/x, pošaljite START"
    assert latin_to_cyrillic(text) == "SOS телефон: број SOS-2026-00042, %(police)s, https://sos.ba/x, пошаљите START"


def test_a_reference_given_during_an_outage_stays_latin_in_a_cyrillic_answer():
    assert latin_to_cyrillic("Vaš broj: SOS-2026-S7KX3M.") == "Ваш број: SOS-2026-S7KX3M."


@given(st.text(alphabet=SERBIAN_LATIN, max_size=60))
def test_latin_to_cyrillic_and_back_gives_the_same_text(text):
    assert cyrillic_to_latin(latin_to_cyrillic(text)) == text


@given(st.text(max_size=80))
def test_transliteration_never_fails_and_keeps_non_letters(text):
    converted = latin_to_cyrillic(text)
    assert [ch for ch in converted if not ch.isalpha()] == [ch for ch in text if not ch.isalpha()]


def test_script_and_language_are_detected():
    assert detect_script("Помозите ми") == "cyrillic"
    assert detect_script("Pomozite mi") == "latin"
    assert detect_language("Please help me, I am scared") == "en"
    assert detect_language("Molim vas pomozite, muz me tuce") == "bs"
    assert detect_language("Помозите ми") == "bs"
    assert detect_language("ok") == "bs"  # undecided: the helpline's own language


def test_words_in_capitals_are_transliterated_and_web_addresses_without_http_stay_as_typed():
    # "PAŽNJA" became "PAЖNJA", "DOM ZDRAVLJA" stayed Latin, and "www.csr-maglaj.ba" became "www.цср-маглај.ба",
    # an address nobody can type.
    assert latin_to_cyrillic("PAŽNJA: DOM ZDRAVLJA radi") == "ПАЖЊА: ДОМ ЗДРАВЉА ради"
    assert latin_to_cyrillic("info na www.csr-maglaj.ba i csr-maglaj.ba/pomoc") == (
        "инфо на www.csr-maglaj.ba и csr-maglaj.ba/pomoc"
    )
    assert latin_to_cyrillic("Pošaljite STOP ili START, SMS ili OK.") == "Пошаљите STOP или START, SMS или OK."


@pytest.mark.parametrize("text, language", [
    ("HELP on me tuce", "bs"),
    ("Help!!! otac pije i bije mamu", "bs"),
    ("pls help, muz me bije", "bs"),
    ("help, ubit ce me", "bs"),
    ("Pomoć, on je opet tu", "bs"),
    ("dont let him kill me", "en"),
    ("help me he is hitting me", "en"),
    ("My husband is beating me, please help", "en"),
    ("I am from Syria, we need a place to sleep tonight", "en"),
])  # fmt: skip
def test_a_message_mixing_an_english_word_into_bosnian_is_answered_in_bosnian_and_english_stays_english(
    text, language
):
    # "HELP on me tuce" was answered in English: "help" counted, "tuce" did not, and "on" and "me" counted for both.
    assert detect_language(text) == language
