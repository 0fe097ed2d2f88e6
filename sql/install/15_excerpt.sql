-- The excerpt of a user's input that error messages quote (src/excerpt.c), so
-- that a huge argument cannot make a huge message: every RAISE and _require that
-- quotes a text argument quotes referral._excerpt(argument).

CREATE FUNCTION referral._excerpt(value text)
RETURNS text
LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE
AS 'MODULE_PATHNAME', 'referral_excerpt_sql';
COMMENT ON FUNCTION referral._excerpt(text) IS
'internal: a value as error messages quote it: its first 32 characters, and "..." when cut';
