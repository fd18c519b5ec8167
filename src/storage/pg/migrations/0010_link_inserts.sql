-- New links log their changes once per statement, not once per row: for an import's batch the
-- row trigger's lock, insert and notification cost about as much as the insert itself. The
-- statement's new rows (only those written: a taken code under ON CONFLICT DO NOTHING is not
-- one) get one change each, in id order, under the same lock and with the same notification as
-- before. Updates and deletes still log per row, naming the code a link had.
DROP TRIGGER links_changed ON links;
CREATE TRIGGER links_changed AFTER UPDATE OR DELETE ON links
    FOR EACH ROW EXECUTE FUNCTION catalog_changed('link');
CREATE FUNCTION catalog_links_added() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM added) THEN
        RETURN NULL;
    END IF;
    PERFORM pg_advisory_xact_lock(hashtext('clickgate_catalog.' || TG_TABLE_SCHEMA));
    INSERT INTO catalog_changes (seq, kind, row_id, old_code)
        SELECT nextval('catalog_changes_seq'), 'link', a.id, NULL FROM (SELECT id FROM added ORDER BY id) a;
    PERFORM pg_notify('clickgate_catalog_' || hashtext(TG_TABLE_SCHEMA), '');
    RETURN NULL;
END;
$$;
CREATE TRIGGER links_added AFTER INSERT ON links REFERENCING NEW TABLE AS added
    FOR EACH STATEMENT EXECUTE FUNCTION catalog_links_added();
