"""What schemathesis sends, trimmed of what no schema language can say (loaded by
`cargo xtask test` and `cargo xtask api-fuzz` through SCHEMATHESIS_HOOKS).

Each rule below takes away a part of a generated request that a JSON Schema cannot
describe, and says why; every other part is sent as generated, and every check runs.

1. Control characters in header values (any case). HTTP forbids them in a field value
   (RFC 9110, section 5.5); hyper refuses such a request with a bare 400 before any
   service code runs, so it is no request to the API. They are removed from the value.
2. Positions and times the log has not reached (cases the documents call valid). A
   position beyond the log's head, or a time in the future, is refused with 422 for the
   state it meets (`beyond_log_head`, `beyond_head`, `in_future`), as a taken
   e-mail is refused with 409: the schema cannot know the head. They are brought back to
   the log's first position (the end-to-end stack's log is never empty) or a past time.
3. Parameters that must be given together or not at all (valid cases): the audit
   balance takes exactly one of `as_of` and `at_position` (both optional in the schema,
   which cannot relate two query parameters): the case keeps `as_of` if it has both, and
   gets `at_position` if it has neither.
"""

import re

import schemathesis

CONTROL = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")
DIGITS = re.compile(r"^[0-9]+$")
# Positions sent in query parameters and headers; all count from 1.
POSITIONS = ("at_position", "from", "to")
PAST = "2000-01-01T00:00:00Z"


def _positive(case):
    meta = getattr(case, "meta", None)
    generation = getattr(meta, "generation", None)
    mode = getattr(generation, "mode", None)
    return mode is not None and mode.is_positive


@schemathesis.hook
def before_call(context, case, kwargs):
    if case.headers:
        for name, value in list(case.headers.items()):
            if isinstance(value, str) and CONTROL.search(value):
                case.headers[name] = CONTROL.sub("", value)
    if not _positive(case):
        return
    if case.headers:
        value = case.headers.get("X-Min-Position")
        if isinstance(value, str) and DIGITS.match(value) and int(value) > 1:
            case.headers["X-Min-Position"] = "1"
    query = case.query
    if query is None:
        return
    if context.operation is not None and context.operation.path.endswith("/balances") and \
            context.operation.path.startswith("/api/v1/audit/"):
        if "as_of" in query and "at_position" in query:
            del query["at_position"]
        elif "as_of" not in query and "at_position" not in query:
            query["at_position"] = 1
    for name in POSITIONS:
        value = query.get(name)
        if isinstance(value, int) and value > 1:
            query[name] = 1
    if isinstance(query.get("as_of"), str):
        query["as_of"] = PAST
