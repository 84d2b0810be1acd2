"""Bounded index keys for text the caller chose (call names, tags, correlation ids, hosts).

A btree or GIN entry must fit in a third of a page (about 2,700 bytes): an index over the text
itself fails the insert of a longer value, and the read model with it. The indexes are over
``duecall_index_key(text)`` instead: the text itself up to ``KEY_CHARS`` characters; a longer
one's first ``KEY_CHARS`` characters and its md5 (at most 832 bytes). Distinct texts keep
distinct keys (but for an md5 collision), and queries also compare the text itself, so they
answer exactly what a comparison of the text would.
"""

KEY_CHARS = 200

# ``duecall_index_key`` is plain SQL (not STRICT), so Postgres inlines it into index
# expressions and queries. ``duecall_index_keys`` maps an array; its fast path returns the array
# as it is when all its text together is short (no element can be long), which is several
# times cheaper per row than the query that maps each element.
INDEX_KEY_FUNCTIONS = f"""
CREATE OR REPLACE FUNCTION duecall_index_key(value text) RETURNS text
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT CASE WHEN char_length(value) <= {KEY_CHARS} THEN value
                ELSE left(value, {KEY_CHARS}) || md5(value) END
$$;
CREATE OR REPLACE FUNCTION duecall_index_keys(value text[]) RETURNS text[]
LANGUAGE plpgsql IMMUTABLE PARALLEL SAFE AS $$
BEGIN
    IF char_length(array_to_string(value, '')) <= {KEY_CHARS} THEN
        RETURN value;
    END IF;
    RETURN ARRAY(SELECT duecall_index_key(v) FROM unnest(value) AS v);
END
$$;
"""


def key(column: str) -> str:
    """The indexed key of ``column`` (an SQL expression)."""
    return f"duecall_index_key({column})"


def key_equals(column: str) -> str:
    """``column = %s`` through the index on its key: two parameters, the value twice."""
    return f"{key(column)} = duecall_index_key(%s::text) AND {column} = %s"


def has_tag() -> str:
    """``tags`` holds ``%s``, through the GIN index on its keys: the tag twice."""
    return ("duecall_index_keys(tags) @> ARRAY[duecall_index_key(%s::text)] "
            "AND tags @> ARRAY[%s::text]")
