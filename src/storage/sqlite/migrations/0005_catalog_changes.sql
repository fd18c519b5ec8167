-- The catalog's change log. Every change to a program, partner, link or coupon appends an
-- entry here, written by a trigger in the change's own transaction, so no writer (the CLI, the
-- API, an import, a hand-written UPDATE) can change the catalog without it. The last `seq`
-- (kept in `sqlite_sequence`, which AUTOINCREMENT never lets go backwards, even once the log is
-- trimmed) is the catalog's version: the edge applies the entries after its own version, so a
-- change to k links costs it O(k), and reads everything again only when the log, trimmed to its
-- newest entries, no longer reaches back that far.
--
-- A link's entry names its row and, when it had one, the code it had before the change: the
-- edge takes that code out, then puts the row in as it is now.
CREATE TABLE catalog_changes (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    kind TEXT NOT NULL CHECK (kind = 'link' OR kind = 'program' OR kind = 'partner' OR kind = 'coupon'),
    row_id INTEGER NOT NULL,
    old_code TEXT
);

CREATE TRIGGER links_inserted AFTER INSERT ON links BEGIN
    INSERT INTO catalog_changes (kind, row_id) VALUES ('link', NEW.id);
END;
CREATE TRIGGER links_updated AFTER UPDATE ON links BEGIN
    INSERT INTO catalog_changes (kind, row_id, old_code) VALUES ('link', NEW.id, OLD.code);
END;
CREATE TRIGGER links_deleted AFTER DELETE ON links BEGIN
    INSERT INTO catalog_changes (kind, row_id, old_code) VALUES ('link', OLD.id, OLD.code);
END;

CREATE TRIGGER programs_inserted AFTER INSERT ON programs BEGIN
    INSERT INTO catalog_changes (kind, row_id) VALUES ('program', NEW.id);
END;
CREATE TRIGGER programs_updated AFTER UPDATE ON programs BEGIN
    INSERT INTO catalog_changes (kind, row_id) VALUES ('program', NEW.id);
END;
CREATE TRIGGER programs_deleted AFTER DELETE ON programs BEGIN
    INSERT INTO catalog_changes (kind, row_id) VALUES ('program', OLD.id);
END;

CREATE TRIGGER partners_inserted AFTER INSERT ON partners BEGIN
    INSERT INTO catalog_changes (kind, row_id) VALUES ('partner', NEW.id);
END;
CREATE TRIGGER partners_updated AFTER UPDATE ON partners BEGIN
    INSERT INTO catalog_changes (kind, row_id) VALUES ('partner', NEW.id);
END;
CREATE TRIGGER partners_deleted AFTER DELETE ON partners BEGIN
    INSERT INTO catalog_changes (kind, row_id) VALUES ('partner', OLD.id);
END;

CREATE TRIGGER coupons_inserted AFTER INSERT ON coupons BEGIN
    INSERT INTO catalog_changes (kind, row_id) VALUES ('coupon', NEW.program_id);
END;
CREATE TRIGGER coupons_updated AFTER UPDATE ON coupons BEGIN
    INSERT INTO catalog_changes (kind, row_id) VALUES ('coupon', NEW.program_id);
END;
CREATE TRIGGER coupons_deleted AFTER DELETE ON coupons BEGIN
    INSERT INTO catalog_changes (kind, row_id) VALUES ('coupon', OLD.program_id);
END;
