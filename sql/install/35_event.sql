-- The event log: every referral and reward change appends a row here and sends
-- NOTIFY referral_event with {"id", "kind", "tenant"}, for listeners and outboxes.

CREATE SEQUENCE referral.event_id_seq;
CREATE TABLE referral.event (
	tenant	text NOT NULL,
	id		bigint NOT NULL DEFAULT pg_catalog.nextval('referral.event_id_seq'),
	at		timestamptz NOT NULL DEFAULT pg_catalog.now(),
	kind	text NOT NULL,
	payload	jsonb NOT NULL,
	PRIMARY KEY (tenant, id)
);
ALTER SEQUENCE referral.event_id_seq OWNED BY referral.event.id;
CREATE INDEX event_tenant_kind_at ON referral.event (tenant, kind, at);
COMMENT ON TABLE referral.event IS 'append-only log of referral and reward changes (also sent as NOTIFY referral_event)';
SELECT pg_catalog.pg_extension_config_dump('referral.event', '');
SELECT pg_catalog.pg_extension_config_dump('referral.event_id_seq', '');

-- Appends an event and notifies listeners; returns the event id.
CREATE FUNCTION referral._emit(tenant text, kind text, payload jsonb)
RETURNS bigint
LANGUAGE plpgsql VOLATILE
AS $$
DECLARE
	new_id bigint;
BEGIN
	INSERT INTO referral.event AS e (tenant, kind, payload)
	VALUES (_emit.tenant, _emit.kind, _emit.payload)
	RETURNING e.id INTO new_id;
	PERFORM pg_notify('referral_event',
		json_build_object('id', new_id, 'kind', kind, 'tenant', tenant)::text);
	RETURN new_id;
END
$$;
COMMENT ON FUNCTION referral._emit(text, text, jsonb) IS 'internal: append to referral.event and NOTIFY referral_event';
