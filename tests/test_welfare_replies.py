"""Answers to a welfare question are read the way people write them: digits or words, Latin or Cyrillic, with or
without diacritics; anything that is not plainly "safe" goes to a person. And the drill rehearses a campaign."""
from __future__ import annotations

import pytest
from django.core.management import call_command
from hypothesis import given
from hypothesis import strategies as st

from helpline.cases.language import latin_to_cyrillic
from helpline.welfare.models import Campaign, VulnerablePerson
from helpline.welfare.replies import Reading, read_key_press, read_reply

SAFE = ["1", "1.", " 1 ", "Da, dobro sam", "Da 1", "ok", "OK", "dobro", "dobro sam", "siguran sam",
        "Sigurna sam, hvala", "sve u redu", "сигуран сам", "Да, сигурна сам", "ок", "добро сам",
        "Dobro sam, sigurna sam", "sigurna sam i dobro sam", "Hvala"]  # fmt: skip
HELP = ["2", "2.", "pomoć", "pomoc", "POMOĆ!", "treba pomoć", "трeба помоћ", "треба помоћ", "ne", "нисам добро", "1 2"]
# "Sam sam" and "Ja sam sam" are "I am alone"; "hvala" and "sve je" say nothing about being safe.
FREE = ["voda ulazi u kuću", "nemam struje, aparat radi još sat", "где сте?", "Sam sam", "ja sam sam", "Сам сам",
        "sve je"]  # fmt: skip
# Yes to whatever the supervisor asked: "Jeste li sigurni?" and "Trebate li pomoć?" are both answered "Da".
UNCLEAR = ["da", "Da!", "Да", "yes", "Da, hvala", "da da"]


@pytest.mark.parametrize("body", SAFE)
def test_safe_answers_are_read_as_safe(body):
    assert read_reply(body) == Reading.SAFE


@pytest.mark.parametrize("body", HELP)
def test_calls_for_help_are_read_as_help(body):
    assert read_reply(body) == Reading.HELP


@pytest.mark.parametrize("body", FREE)
def test_anything_else_goes_to_a_person(body):
    assert read_reply(body) == Reading.FREE_TEXT


@pytest.mark.parametrize("body", UNCLEAR)
def test_a_bare_yes_is_not_read_as_safe_because_the_question_may_have_asked_about_help(body):
    assert read_reply(body) == Reading.UNCLEAR


@given(st.sampled_from(SAFE + HELP + FREE + UNCLEAR))
def test_an_answer_reads_the_same_in_cyrillic(body):
    assert read_reply(latin_to_cyrillic(body)) == read_reply(body)


@given(st.text(max_size=80))
def test_no_text_is_ever_read_as_safe_unless_it_only_says_safe_things(body):
    reading = read_reply(body)
    assert reading in set(Reading)
    if reading == Reading.SAFE:
        assert read_reply(body + " 2") == Reading.HELP  # one "2" anywhere always means help


def test_only_1_and_2_are_answers_on_the_call():
    assert read_key_press("1") == Reading.SAFE and read_key_press("2") == Reading.HELP
    assert read_key_press("9") is None and read_key_press("") is None


@pytest.mark.django_db
def test_the_drill_rehearses_a_campaign_and_clears_up_after_itself(capsys, settings):
    settings.SMS_BACKEND = "memory"  # a drill never uses it: everything goes to the drill backend
    call_command("welfare_drill", "--people", "40")
    out = capsys.readouterr().out
    assert "40 people at 1 SMS/s" in out and "Tally:" in out
    assert VulnerablePerson.objects.count() == 0 and Campaign.objects.count() == 0


@pytest.mark.django_db
def test_a_drill_leaves_a_real_campaign_on_the_real_clock(settings):
    # The drill's simulated clock advanced every campaign: a real person was asked "minutes from now" and their
    # call and visit were put off by the drill's length.
    from django.utils import timezone

    from helpline.welfare import services
    from helpline.welfare.models import CheckState, WelfareCheck

    settings.SMS_BACKEND = "memory"
    VulnerablePerson.objects.create(full_name="Stvarna Osoba", phone="+38762111222", municipality="Maglaj",
                                    address="Ulica 1", legal_basis="public_task")  # fmt: skip
    real = services.start_campaign(title="Poplave", question="Jeste li sigurni?", areas=["Maglaj"], needs=[], by=None)
    call_command("welfare_drill", "--people", "40")
    check = WelfareCheck.objects.get(campaign=real)
    assert (check.state, check.asked_at) == (CheckState.QUEUED, None)  # the real tick asks, on the real clock
    services.advance_campaigns(timezone.now())
    check.refresh_from_db()
    assert check.asked_at is not None and check.asked_at <= timezone.now()


@pytest.mark.django_db
def test_a_drill_on_the_real_register_of_an_area_is_finished_when_it_ends(settings):
    # Left running, the real ticks went on to call the area's real people who had not answered the drill, and to
    # send drill visits to real workers.
    from helpline.welfare.models import CampaignStatus

    settings.SMS_BACKEND = "memory"
    VulnerablePerson.objects.create(full_name="Stvarna Osoba", phone="+38762111222", municipality="Maglaj",
                                    address="Ulica 1", legal_basis="public_task")  # fmt: skip
    call_command("welfare_drill", "--area", "Maglaj")
    assert Campaign.objects.get(is_drill=True).status != CampaignStatus.RUNNING


def test_the_help_answer_gives_the_emergency_numbers_the_centre_configured(settings):
    from helpline.welfare import texts

    settings.EMERGENCY_NUMBERS = {**settings.EMERGENCY_NUMBERS, "police": "112", "ambulance": "194"}
    answer = texts.help_coming("SOS-2026-00042", language="bs", script="latin")
    assert "112" in answer and "194" in answer and "122" not in answer
    assert "112" in texts.help_coming("SOS-2026-00042", language="sr", script="cyrillic")
