//! One query per read of one object or a page of them, and the writes of an object's editable
//! fields: what `SqliteCatalog` answers in place of `CatalogStore`'s defaults, which read every
//! row. Pages follow the unique indexes on the ids, so a page costs its own rows.

use rusqlite::{params, OptionalExtension};

use super::{coupon_row, link_row, partner_row, program_row, SqliteCatalog, COUPON_SELECT, LINK_SELECT, PARTNER_SELECT};
use crate::catalog::{CatalogError, Coupon, Link, ListFilter, NewLink, NewPartner, Partner, Program};

/// `limit` as SQLite's integer; a page larger than `i64::MAX` is no page anyone asks for.
fn limit(f: &ListFilter) -> i64 {
    i64::try_from(f.limit).unwrap_or(i64::MAX)
}

impl SqliteCatalog {
    pub(super) fn partner_by_id(&self, id: &str) -> Result<Option<Partner>, CatalogError> {
        let sql = format!("{PARTNER_SELECT} WHERE slug = ?1");
        Ok(self.conn.query_row(&sql, [id], partner_row).optional()?)
    }

    pub(super) fn write_partner(&self, p: &NewPartner) -> Result<bool, CatalogError> {
        let sql = "UPDATE partners SET name = ?2, email = ?3, payout_method = ?4, stripe_account = ?5, paypal_email = ?6 WHERE slug = ?1";
        let s = super::Sealed::of(p)?;
        let n = self.conn.execute(sql, params![p.id, p.name, s.email, p.payout_method.as_str(), s.stripe_account, s.paypal_email])?;
        Ok(n == 1)
    }

    /// The links table's triggers log the change, so the edge applies it on its next reload.
    pub(super) fn write_link(&self, l: &NewLink) -> Result<bool, CatalogError> {
        let sql = "UPDATE links SET destination = ?2, channel = ?3, utm_source = ?4, utm_medium = ?5, utm_campaign = ?6,
                   expires_at = ?7 WHERE code = ?1";
        let n = self
            .conn
            .execute(sql, params![l.code, l.destination, l.channel.as_str(), l.utm_source, l.utm_medium, l.utm_campaign, l.expires_at])?;
        Ok(n == 1)
    }

    pub(super) fn page_programs(&self, f: &ListFilter) -> Result<Vec<Program>, CatalogError> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT id, spec, status FROM programs WHERE (?1 IS NULL OR status = ?1) AND (?2 IS NULL OR slug > ?2)
             ORDER BY slug LIMIT ?3",
        )?;
        let rows = stmt.query_map(params![f.status.map(|s| s.as_str()), f.after, limit(f)], program_row)?.collect::<Result<_, _>>()?;
        Ok(rows)
    }

    pub(super) fn page_partners(&self, f: &ListFilter) -> Result<Vec<Partner>, CatalogError> {
        let sql = format!(
            "{PARTNER_SELECT} WHERE (?1 IS NULL OR status = ?1) AND (?2 IS NULL OR slug > ?2) AND (?3 IS NULL OR slug = ?3)
             ORDER BY slug LIMIT ?4"
        );
        let mut stmt = self.conn.prepare_cached(&sql)?;
        let rows =
            stmt.query_map(params![f.status.map(|s| s.as_str()), f.after, f.partner, limit(f)], partner_row)?.collect::<Result<_, _>>()?;
        Ok(rows)
    }

    pub(super) fn page_links(&self, f: &ListFilter) -> Result<Vec<Link>, CatalogError> {
        let sql = format!(
            "{LINK_SELECT} WHERE (?1 IS NULL OR l.status = ?1) AND (?2 IS NULL OR l.code > ?2) AND (?3 IS NULL OR p.slug = ?3)
             AND (?4 IS NULL OR pa.slug = ?4) ORDER BY l.code LIMIT ?5"
        );
        let mut stmt = self.conn.prepare_cached(&sql)?;
        let rows = stmt
            .query_map(params![f.status.map(|s| s.as_str()), f.after, f.program, f.partner, limit(f)], link_row)?
            .collect::<Result<_, _>>()?;
        Ok(rows)
    }

    /// Coupons in (program, code) order; the cursor `program:CODE` splits at its first colon,
    /// which no program id holds.
    pub(super) fn page_coupons(&self, f: &ListFilter) -> Result<Vec<Coupon>, CatalogError> {
        let (after_program, after_code) = match f.after.as_deref().and_then(|a| a.split_once(':')) {
            Some((p, c)) => (Some(p), Some(c)),
            None => (None, None),
        };
        let sql = format!(
            "{COUPON_SELECT} WHERE (?1 IS NULL OR (p.slug, c.code) > (?1, ?2)) AND (?3 IS NULL OR p.slug = ?3)
             AND (?4 IS NULL OR pa.slug = ?4) AND (?5 IS NULL OR c.status = ?5) ORDER BY p.slug, c.code LIMIT ?6"
        );
        let mut stmt = self.conn.prepare_cached(&sql)?;
        let rows = stmt
            .query_map(params![after_program, after_code, f.program, f.partner, f.status.map(|s| s.as_str()), limit(f)], coupon_row)?
            .collect::<Result<_, _>>()?;
        Ok(rows)
    }

    pub(super) fn coupon_by_code(&self, program: &str, code: &str) -> Result<Option<Coupon>, CatalogError> {
        let sql = format!("{COUPON_SELECT} WHERE p.slug = ?1 AND c.code = ?2");
        Ok(self.conn.query_row(&sql, params![program, code.to_ascii_uppercase()], coupon_row).optional()?)
    }
}
