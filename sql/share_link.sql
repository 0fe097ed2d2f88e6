-- Share links: referral._share_link (behind referral.share_link).

-- the examples
SELECT referral._share_link('K7QXM3PA', 'https://shop.example/', NULL);
SELECT referral._share_link('K7QXM3PA', 'https://shop.example/p?x=1#top', 'news letter');
SELECT referral._share_link('K7QXM3PA', 'https://s.example/?', NULL);
SELECT referral._share_link('K7QXM3PA', 'https://s.example/', U&'\00e9&=');

-- existing queries and fragments
SELECT base, channel, referral._share_link('AB3', base, channel) AS link
  FROM (VALUES ('https://shop.example', NULL),
               ('http://shop.example/a/b', 'mail'),
               ('HTTPS://Shop.Example/', NULL),
               ('https://s.example/?a=1', NULL),
               ('https://s.example/?a=1&', 'x'),
               ('https://s.example/?a=1&b=2#frag', 'x'),
               ('https://s.example/?#f', NULL),
               ('https://s.example/#f', NULL),
               ('https://s.example/#', NULL),
               ('https://s.example/p#a?b=1', NULL),
               ('https://s.example/?q=1#a#b', NULL),
               ('https://u:p@s.example:8443/x', NULL)) AS t(base, channel);

-- a parameter the link sets that the query already has gets the new value
-- where it stands (repetitions dropped); every other parameter, the order of
-- the query and the fragment are kept
SELECT base, channel, referral._share_link('AB3', base, channel) AS link
  FROM (VALUES ('https://s.example/?ref=OLD', NULL),
               ('https://s.example/?a=1&ref=OLD&b=2#frag', NULL),
               ('https://s.example/?ref=&a=1', NULL),
               ('https://s.example/?a=1&ref', NULL),
               ('https://s.example/?ref=A&b=1&ref=B', NULL),
               ('https://s.example/?REF=1&refx=2&a=ref', NULL),
               ('https://s.example/?a=1#ref=OLD', NULL),
               ('https://s.example/?utm_source=old&x=1&utm_medium=email&ref=OLD#top', 'news letter'),
               ('https://s.example/?utm_medium=cpc&x=1', 'mail'),
               ('https://s.example/?utm_source=old&utm_medium=email', NULL),
               ('https://s.example/?utm_campaign=spring&utm_source=old', 'x')) AS t(base, channel);
-- through referral.share_link as well
SELECT referral.share_link('K7QXM3PA', 'https://shop.example/p?ref=OLD&utm_source=a&q=1#top', 'mail');

-- RFC 3986 encoding: unreserved kept, everything else %XX, a space is %20
SELECT channel, referral._share_link('AB3', 'https://s.example/', channel) AS link
  FROM (VALUES ('AZaz09-._~'),
               ('a b+c'),
               ('?#/:@!$''()*,;%'),
               (E'tab\there'),
               (U&'\65e5\672c'),
               ('news letter')) AS t(channel);

-- the code is encoded too
SELECT referral._share_link('A B', 'https://s.example/', NULL);

-- NULL code or base URL: NULL; NULL channel: no UTM parameters
SELECT referral._share_link(NULL, 'https://s.example/', 'x') IS NULL AS null_code,
       referral._share_link('AB3', NULL, 'x') IS NULL AS null_base,
       referral._share_link('AB3', 'https://s.example/', NULL) AS null_channel;

-- errors, one per line
SELECT referral._share_link('AB3', '', NULL);
SELECT referral._share_link('AB3', 'shop.example/', NULL);
SELECT referral._share_link('AB3', 'ftp://shop.example/', NULL);
SELECT referral._share_link('AB3', 'javascript:alert(1)', NULL);
SELECT referral._share_link('AB3', '//shop.example/', NULL);
SELECT referral._share_link('AB3', 'https://', NULL);
SELECT referral._share_link('AB3', 'https:///path', NULL);
SELECT referral._share_link('AB3', ' https://shop.example/', NULL);
SELECT referral._share_link('AB3', 'https://shop.example/a b', NULL);
SELECT referral._share_link('AB3', U&'https://shop.example/\00e9 ', NULL);
SELECT referral._share_link('AB3', E'https://shop.example/\n', NULL);
SELECT referral._share_link('AB3', E'https://shop.example/\x7f', NULL);
SELECT referral._share_link('', 'https://shop.example/', NULL);
SELECT referral._share_link('AB3', 'https://shop.example/', '');

-- a long base URL is quoted up to 32 characters ("..." when cut), never whole
SELECT referral._share_link('AB3', 'ftp://shop.example/' || repeat('p', 40), NULL);
SELECT referral._share_link('AB3', 'https:///' || repeat('é', 40), NULL);
DO $$
DECLARE
	base text;
BEGIN
	FOREACH base IN ARRAY ARRAY['ftp://' || repeat('x', 1048576), 'https:///' || repeat('x', 1048576)]
	LOOP
		BEGIN
			PERFORM referral._share_link('AB3', base, NULL);
			RAISE NOTICE 'accepted';
		EXCEPTION WHEN invalid_parameter_value THEN
			RAISE NOTICE '% (% characters)', left(SQLERRM, 40), length(SQLERRM);
		END;
	END LOOP;
END
$$;

-- the SQLSTATE of each error (NULL if none)
CREATE FUNCTION pg_temp.sqlstate_of(stmt text) RETURNS text
LANGUAGE plpgsql AS $$
BEGIN
	EXECUTE stmt;
	RETURN NULL;
EXCEPTION WHEN OTHERS THEN
	RETURN SQLSTATE;
END
$$;
SELECT base, channel,
       pg_temp.sqlstate_of(format('SELECT referral._share_link(%L, %L, %L)', 'AB3', base, channel)) AS sqlstate
  FROM (VALUES ('', NULL),
               ('shop.example/', NULL),
               ('https://', NULL),
               ('https://shop.example/a b', NULL),
               ('https://shop.example/', ''),
               ('https://shop.example/', 'ok')) AS t(base, channel);

-- labels and privileges
SELECT p.proname, p.provolatile, p.proisstrict, p.proparallel,
       has_function_privilege('public', p.oid, 'EXECUTE') AS public_execute,
       obj_description(p.oid, 'pg_proc') IS NOT NULL AS commented
  FROM pg_proc p
 WHERE p.oid = 'referral._share_link(text, text, text)'::regprocedure;
