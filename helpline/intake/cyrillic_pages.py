"""Public pages in Cyrillic for a citizen who wrote in Cyrillic.

There is no Cyrillic catalogue: the page is rendered in Bosnian (Latin) and its text is transliterated, as the SMS
answers are (helpline.intake.replies). Only text between tags changes; tags and attributes (links, form values)
never do, nor text inside an element marked translate="no" (the case reference, the secret code, the citizen's
and the worker's own words), a <textarea>, <script> or <style>, nor HTML entities.
"""
from __future__ import annotations

import re

from helpline.cases.language import latin_to_cyrillic

_TAG_OR_COMMENT = re.compile(r"(<!--.*?-->|<[^>]*>)", re.DOTALL)
_TAG_NAME = re.compile(r"<\s*(/)?\s*([a-zA-Z][a-zA-Z0-9-]*)")
_KEEP_CONTENT = frozenset({"script", "style", "textarea"})
_VOID = frozenset({"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source", "wbr"})
_ENTITY = re.compile(r"(&#?\w+;)")
_NO_TRANSLATE = re.compile(r"""\btranslate\s*=\s*["']?no\b""", re.IGNORECASE)


def _text_in_cyrillic(text: str) -> str:
    parts = _ENTITY.split(text)
    return "".join(part if index % 2 else latin_to_cyrillic(part) for index, part in enumerate(parts))


def html_in_cyrillic(html: str) -> str:
    out: list[str] = []
    kept_tag, kept_depth = "", 0  # the element whose content stays as written, and how deep inside it we are
    for index, part in enumerate(_TAG_OR_COMMENT.split(html)):
        if not index % 2:
            out.append(part if kept_tag or not part.strip() else _text_in_cyrillic(part))
            continue
        out.append(part)
        match = _TAG_NAME.match(part)
        if match is None:  # a comment or a doctype
            continue
        closing, name = bool(match.group(1)), match.group(2).lower()
        if name in _VOID or part.endswith("/>"):
            continue
        if kept_tag:
            if name == kept_tag:
                kept_depth += -1 if closing else 1
                if kept_depth == 0:
                    kept_tag = ""
        elif not closing and (name in _KEEP_CONTENT or _NO_TRANSLATE.search(part)):
            kept_tag, kept_depth = name, 1
    return "".join(out)
