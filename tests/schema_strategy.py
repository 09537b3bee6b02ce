"""Hypothesis strategies from a JSON Schema (the subset Bifrost's batch schema uses).

hypothesis-jsonschema 0.23.1 no longer runs on current Hypothesis (it calls a removed internal,
``many.more``), so this small walker stands in for it: objects, arrays, scalars, enum/const,
``not``, bounds, anyOf, required and optional properties.
"""

from __future__ import annotations

from typing import Any

from hypothesis import strategies as st

INT64 = (-(2**63), 2**63 - 1)


_JSON_VALUE: st.SearchStrategy[Any] = st.recursive(
    st.none() | st.booleans() | st.integers(*INT64) | st.text(max_size=10)
    | st.floats(allow_nan=False, allow_infinity=False),
    lambda c: st.lists(c, max_size=3) | st.dictionaries(st.text(max_size=6), c, max_size=3),
    max_leaves=6)


def from_schema(schema: dict[str, Any]) -> st.SearchStrategy[Any]:
    if "const" in schema:
        return st.just(schema["const"])
    if "enum" in schema:
        return st.sampled_from(schema["enum"])
    if "anyOf" in schema:
        return st.one_of([from_schema(s) for s in schema["anyOf"]])
    types = schema.get("type")
    if isinstance(types, list):
        return st.one_of([from_schema({**schema, "type": t}) for t in types])
    base = _typed(schema, types)
    neg = schema.get("not")
    if neg is not None:
        if "const" in neg:
            base = base.filter(lambda v, c=neg["const"]: v != c)
        if neg.get("type") == "null":
            base = base.filter(lambda v: v is not None)
    return base


def _typed(schema: dict[str, Any], t: str | None) -> st.SearchStrategy[Any]:
    if t == "string":
        return st.text(min_size=schema.get("minLength", 0), max_size=30)
    if t == "integer":
        lo, hi = schema.get("minimum", INT64[0]), schema.get("maximum", INT64[1])
        # Mostly realistic values, sometimes the int64 extremes.
        return st.integers(max(lo, 0), min(hi, 2_000_000_000)) | st.integers(lo, hi) | \
            st.sampled_from([lo, hi])
    if t == "number":
        return st.floats(allow_nan=False, allow_infinity=False) | st.integers(-(10**6), 10**6)
    if t == "boolean":
        return st.booleans()
    if t == "null":
        return st.none()
    if t == "array":
        return st.lists(from_schema(schema.get("items", {})), min_size=schema.get("minItems", 0),
                        max_size=4)
    if t == "object" or "properties" in schema:
        return _object(schema)
    return _JSON_VALUE


def _object(schema: dict[str, Any]) -> st.SearchStrategy[dict[str, Any]]:
    props: dict[str, Any] = schema.get("properties", {})
    required = set(schema.get("required", []))
    extra = schema.get("additionalProperties", True)
    min_props = schema.get("minProperties", 0)
    # Every strategy is built once, here, not at each draw: building one validates it and
    # describes its lambdas (parsing their source), which was 80% of the property tests'
    # time (py-spy: ast.parse and tokenize under from_schema, inside draws).
    subs = {name: from_schema(sub) for name, sub in props.items()}
    extra_values = from_schema(extra) if isinstance(extra, dict) else None
    extra_maps: dict[int, st.SearchStrategy[dict[str, Any]]] = {}

    @st.composite
    def build(draw: st.DrawFn) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for name, sub in subs.items():
            if name in required or draw(st.booleans()):
                out[name] = draw(sub)
        if extra_values is not None:
            least = max(0, min_props - len(out))
            if least not in extra_maps:
                extra_maps[least] = st.dictionaries(st.text(min_size=1, max_size=8),
                                                    extra_values, min_size=least, max_size=3)
            more = draw(extra_maps[least])
            out.update({k: v for k, v in more.items() if k not in props})
        return out

    return build()
