"""Every string a citizen or staff member sees is translated to Bosnian, and the shipped .mo matches the .po."""
from pathlib import Path

import polib

CATALOGUE = Path(__file__).resolve().parent.parent / "helpline" / "locale" / "bs" / "LC_MESSAGES"


def test_the_bosnian_catalogue_is_complete_and_has_nothing_fuzzy():
    po = polib.pofile(str(CATALOGUE / "django.po"))
    assert po.untranslated_entries() == []
    assert po.fuzzy_entries() == []
    assert len(po.translated_entries()) > 150


def test_the_compiled_catalogue_matches_its_source():
    po = polib.pofile(str(CATALOGUE / "django.po"))
    mo = polib.mofile(str(CATALOGUE / "django.mo"))
    compiled = {(entry.msgctxt, entry.msgid): entry.msgstr or entry.msgstr_plural for entry in mo}
    source = {(entry.msgctxt, entry.msgid): entry.msgstr or entry.msgstr_plural for entry in po.translated_entries()}
    assert compiled.keys() >= source.keys()
    for key, text in source.items():
        assert compiled[key] == text, key
