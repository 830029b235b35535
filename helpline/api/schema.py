"""The error answers every API operation can give, written into the OpenAPI schema once (a drf-spectacular
postprocessing hook) instead of on each view: a client generated from the schema, and schemathesis, then know
that a refused token is a 401, a role that may not is a 403, an unknown id a 404, bad input a 400 and a throttle
a 429, each a JSON object."""
from __future__ import annotations

ERROR = {
    "type": "object",
    "description": "`detail` says what went wrong; bad input names each field with its problems.",
    "properties": {"detail": {"type": "string"}},
    "additionalProperties": True,
}

_WHY = {
    "400": "The input was refused; the body says which field and why.",
    "401": "No valid token: log in again (tokens expire, and end with logout, a password change or deactivation).",
    "403": "Signed in, but your role may not do this, or a second factor is needed first.",
    "404": "No such object, or not one you may see (or a page past the last).",
    "413": "The request body is larger than the service accepts.",
    "429": "Too many requests; the Retry-After header says when to try again.",
}

_WRITES = {"post", "put", "patch"}
# Django and DRF refuse a NUL character in any text (PostgreSQL cannot store one): said in the schema, so a client
# (and schemathesis) knows it is not valid input rather than finding out from a 400.
NO_NUL = "^[^\\u0000]*$"


def _no_nul(schema: dict) -> None:
    if schema.get("type") == "string" and not {"format", "enum", "pattern"} & schema.keys():
        schema["pattern"] = NO_NUL
    for nested in schema.get("properties", {}).values():
        _no_nul(nested)
    if isinstance(schema.get("items"), dict):
        _no_nul(schema["items"])


def _add(responses: dict, status: str) -> None:
    content = {"application/json": {"schema": {"$ref": "#/components/schemas/ApiError"}}}
    responses.setdefault(status, {"description": _WHY[status], "content": content})


def document_error_responses(result: dict, generator, request, public: bool) -> dict:
    schemas = result.setdefault("components", {}).setdefault("schemas", {})
    schemas.setdefault("ApiError", ERROR)
    for name, schema in schemas.items():
        if name.endswith("Request"):  # what clients send (COMPONENT_SPLIT_REQUEST)
            _no_nul(schema)
    for path, operations in result.get("paths", {}).items():
        for method, operation in operations.items():
            responses = operation.setdefault("responses", {})
            needs_sign_in = any(requirement for requirement in operation.get("security", [{}]))
            if needs_sign_in:
                _add(responses, "401")
                _add(responses, "403")
            for parameter in operation.get("parameters", []):
                if parameter.get("in") in ("query", "path"):
                    _no_nul(parameter.get("schema", {}))
                if parameter.get("name") == "page_size":
                    parameter.setdefault("schema", {}).setdefault("minimum", 1)  # helpline/api/cases.py
                if parameter.get("in") == "query":
                    # The filters, the page and the stats period read an empty value as "not given" (the first
                    # page, no filter: helpline/api/filters.py).
                    parameter.setdefault("allowEmptyValue", True)
            pages = any(parameter.get("name") == "page" for parameter in operation.get("parameters", []))
            if "{" in path or pages:  # a page past the last one is a 404 too
                _add(responses, "404")
            if method in _WRITES or operation.get("parameters"):
                _add(responses, "400")
            if method in _WRITES:
                _add(responses, "413")
            if path.endswith("/auth/token/"):
                _add(responses, "429")
    return result
