"""`{% welfare_tallies as tallies %}`: the running campaigns' tallies, so the board's include needs no view change."""
from django import template

from helpline.welfare.selectors import Tally, board_tallies

register = template.Library()


@register.simple_tag
def welfare_tallies() -> list[Tally]:
    return board_tallies()
