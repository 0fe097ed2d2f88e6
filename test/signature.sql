-- The extension's catalog signature: every object it owns with its definition,
-- privileges and comment, one line each, in a stable order.  test/upgrade.sh
-- compares it between a fresh install and an updated one.
\pset tuples_only on
\pset format unaligned
WITH owned AS (
	SELECT d.classid, d.objid
	  FROM pg_depend d
	 WHERE d.refclassid = 'pg_extension'::regclass AND d.deptype = 'e'
	   AND d.refobjid = (SELECT oid FROM pg_extension WHERE extname = 'referral')
)
SELECT line FROM (
	SELECT 'function ' || p.oid::regprocedure || ' ' || md5(pg_get_functiondef(p.oid))
	       || ' acl=' || COALESCE(p.proacl::text, '-') || ' comment=' || COALESCE(obj_description(p.oid, 'pg_proc'), '-') AS line
	  FROM pg_proc p JOIN owned o ON o.classid = 'pg_proc'::regclass AND o.objid = p.oid
	 WHERE p.prokind IN ('f', 'p')
	UNION ALL
	SELECT 'relation ' || c.relkind::text || ' ' || c.oid::regclass || ' acl=' || COALESCE(c.relacl::text, '-')
	       || ' comment=' || COALESCE(obj_description(c.oid, 'pg_class'), '-')
	       || CASE WHEN c.relkind = 'v' THEN ' view=' || md5(pg_get_viewdef(c.oid)) ELSE '' END
	       || ' options=' || COALESCE(c.reloptions::text, '-')
	  FROM pg_class c JOIN owned o ON o.classid = 'pg_class'::regclass AND o.objid = c.oid
	UNION ALL
	SELECT 'column ' || a.attrelid::regclass || '.' || a.attname || ' ' || format_type(a.atttypid, a.atttypmod)
	       || CASE WHEN a.attnotnull THEN ' not null' ELSE '' END
	       || COALESCE(' default ' || pg_get_expr(ad.adbin, ad.adrelid), '')
	       || ' comment=' || COALESCE(col_description(a.attrelid, a.attnum), '-')
	  FROM pg_attribute a
	  JOIN owned o ON o.classid = 'pg_class'::regclass AND o.objid = a.attrelid
	  LEFT JOIN pg_attrdef ad ON ad.adrelid = a.attrelid AND ad.adnum = a.attnum
	 WHERE a.attnum > 0 AND NOT a.attisdropped
	UNION ALL
	SELECT 'index ' || pg_get_indexdef(i.indexrelid)
	  FROM pg_index i JOIN owned o ON o.classid = 'pg_class'::regclass AND o.objid = i.indrelid
	UNION ALL
	SELECT 'constraint ' || con.conrelid::regclass || ' ' || pg_get_constraintdef(con.oid)
	  FROM pg_constraint con JOIN owned o ON o.classid = 'pg_class'::regclass AND o.objid = con.conrelid
	UNION ALL
	SELECT 'trigger ' || pg_get_triggerdef(t.oid)
	  FROM pg_trigger t JOIN owned o ON o.classid = 'pg_class'::regclass AND o.objid = t.tgrelid
	 WHERE NOT t.tgisinternal
	UNION ALL
	SELECT 'type ' || t.oid::regtype || ' comment=' || COALESCE(obj_description(t.oid, 'pg_type'), '-')
	  FROM pg_type t JOIN owned o ON o.classid = 'pg_type'::regclass AND o.objid = t.oid
	UNION ALL
	SELECT 'operator ' || op.oid::regoperator || ' ' || op.oprcode::regproc
	  FROM pg_operator op JOIN owned o ON o.classid = 'pg_operator'::regclass AND o.objid = op.oid
	UNION ALL
	SELECT 'opclass ' || am.amname || ' ' || oc.opcname
	  FROM pg_opclass oc JOIN pg_am am ON am.oid = oc.opcmethod
	  JOIN owned o ON o.classid = 'pg_opclass'::regclass AND o.objid = oc.oid
	UNION ALL
	SELECT 'cast ' || format_type(ca.castsource, NULL) || ' -> ' || format_type(ca.casttarget, NULL) || ' ' || ca.castcontext::text
	  FROM pg_cast ca JOIN owned o ON o.classid = 'pg_cast'::regclass AND o.objid = ca.oid
	UNION ALL
	SELECT 'config_dump ' || c::regclass || ' ' || COALESCE(f, '')
	  FROM pg_extension e, unnest(e.extconfig, e.extcondition) AS u(c, f)
	 WHERE e.extname = 'referral'
	UNION ALL
	SELECT 'schema acl ' || COALESCE(n.nspacl::text, '-') FROM pg_namespace n WHERE n.nspname = 'referral'
) s
ORDER BY line;
