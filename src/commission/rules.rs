//! Rule validation and the rule version.

use sha2::{Digest, Sha256};

use super::{Metric, ProgramRules, RuleError, RuleSet, BONUSES_MAX, BPS_ONE, LOCK_DAYS_MAX, OVERRIDES_MAX, RULE_AMOUNT_MAX, TIERS_MAX};

fn invalid(path: impl Into<String>, why: impl Into<String>) -> RuleError {
    RuleError { path: path.into(), why: why.into() }
}

fn check_bps(path: &str, bps: u32) -> Result<(), RuleError> {
    if bps > BPS_ONE {
        return Err(invalid(path, format!("must be in 0..=10000 basis points, got {bps}")));
    }
    Ok(())
}

fn check_amount(path: &str, amount: i64) -> Result<(), RuleError> {
    if !(0..=RULE_AMOUNT_MAX).contains(&amount) {
        return Err(invalid(path, format!("must be in 0..={RULE_AMOUNT_MAX}, got {amount}")));
    }
    Ok(())
}

impl RuleSet {
    /// Checks every field; the error names the first bad one by its path, such as
    /// `tiers[1].from_minor`, and says why.
    pub fn validate(&self) -> Result<(), RuleError> {
        check_bps("percent_bps", self.percent_bps)?;
        check_amount("fixed_minor", self.fixed_minor)?;
        if self.tiers.len() > TIERS_MAX {
            return Err(invalid("tiers", format!("at most {TIERS_MAX} tiers, got {}", self.tiers.len())));
        }
        for (i, tier) in self.tiers.iter().enumerate() {
            check_amount(&format!("tiers[{i}].from_minor"), tier.from_minor)?;
            check_bps(&format!("tiers[{i}].percent_bps"), tier.percent_bps)?;
            if i == 0 && tier.from_minor != 0 {
                return Err(invalid("tiers[0].from_minor", "must be 0, so every volume has a tier"));
            }
            if i > 0 && tier.from_minor <= self.tiers[i - 1].from_minor {
                return Err(invalid(format!("tiers[{i}].from_minor"), format!("must be greater than tiers[{}].from_minor", i - 1)));
            }
        }
        if self.bonuses.len() > BONUSES_MAX {
            return Err(invalid("bonuses", format!("at most {BONUSES_MAX} bonuses, got {}", self.bonuses.len())));
        }
        for (i, bonus) in self.bonuses.iter().enumerate() {
            let threshold = format!("bonuses[{i}].threshold");
            check_amount(&threshold, bonus.threshold)?;
            if bonus.threshold == 0 {
                return Err(invalid(threshold, "must be at least 1: a bonus is paid when a threshold is reached"));
            }
            check_amount(&format!("bonuses[{i}].amount_minor"), bonus.amount_minor)?;
            // Thresholds of one metric rise in list order, so the list reads as a ladder and
            // a duplicate (a bonus paid twice for one threshold) cannot slip in.
            if let Some(j) = (0..i).rev().find(|&j| self.bonuses[j].metric == bonus.metric) {
                if bonus.threshold <= self.bonuses[j].threshold {
                    return Err(invalid(
                        threshold,
                        format!("must be greater than bonuses[{j}].threshold (the previous {} bonus)", bonus.metric.as_str()),
                    ));
                }
            }
        }
        if let Some(cap) = self.cap_minor {
            check_amount("cap_minor", cap)?;
        }
        if self.lock_days > LOCK_DAYS_MAX {
            return Err(invalid("lock_days", format!("must be in 0..={LOCK_DAYS_MAX}, got {}", self.lock_days)));
        }
        Ok(())
    }

    /// The rules' version: the first 16 hex digits of the SHA-256 of their canonical encoding.
    ///
    /// The encoding is of the parsed values, so equal rules have equal versions whatever the
    /// field order, spacing, number formatting (`1_000` or `1000`) or omitted defaults of
    /// their source, and any changed field changes the version. It is written out by hand,
    /// not derived from the struct, so reordering or renaming a field in the code cannot
    /// silently change every stored version; a test pins one.
    pub fn version_hash(&self) -> String {
        // The writer computes a version per commission, from a handful of rule sets: the last
        // few are remembered per thread, found by equality (equal rules, equal version).
        thread_local! {
            static RECENT: std::cell::RefCell<Vec<(RuleSet, String)>> = const { std::cell::RefCell::new(Vec::new()) };
        }
        if let Some(v) = RECENT.with_borrow(|recent| recent.iter().find(|(r, _)| r == self).map(|(_, v)| v.clone())) {
            return v;
        }
        let v = self.hash_version();
        RECENT.with_borrow_mut(|recent| {
            if recent.len() == 16 {
                recent.remove(0);
            }
            recent.push((self.clone(), v.clone()));
        });
        v
    }

    fn hash_version(&self) -> String {
        // The encoding goes straight into the hash: building the text first cost more than
        // hashing it.
        struct Hashing(Sha256);
        impl std::fmt::Write for Hashing {
            fn write_str(&mut self, s: &str) -> std::fmt::Result {
                self.0.update(s.as_bytes());
                Ok(())
            }
        }
        let mut h = Hashing(Sha256::new());
        let _ = self.write_canonical(&mut h);
        let digest = h.0.finalize();
        hex::encode(&digest[..8])
    }

    /// One line per field, in a fixed order, lists comma-separated.
    #[cfg(test)]
    pub(super) fn canonical(&self) -> String {
        let mut s = String::with_capacity(256);
        let _ = self.write_canonical(&mut s);
        s
    }

    fn write_canonical(&self, w: &mut impl std::fmt::Write) -> std::fmt::Result {
        writeln!(w, "clickgate.commission.rules.v1")?;
        writeln!(w, "percent_bps={}", self.percent_bps)?;
        writeln!(w, "fixed_minor={}", self.fixed_minor)?;
        w.write_str("tiers=")?;
        for (i, t) in self.tiers.iter().enumerate() {
            write!(w, "{}{}:{}", if i > 0 { "," } else { "" }, t.from_minor, t.percent_bps)?;
        }
        w.write_str("\nbonuses=")?;
        for (i, b) in self.bonuses.iter().enumerate() {
            write!(w, "{}{}:{}:{}", if i > 0 { "," } else { "" }, b.metric.as_str(), b.threshold, b.amount_minor)?;
        }
        w.write_str("\n")?;
        match self.cap_minor {
            Some(cap) => writeln!(w, "cap_minor={cap}")?,
            None => writeln!(w, "cap_minor=none")?,
        }
        writeln!(w, "period={}", self.period.as_str())?;
        writeln!(w, "lock_days={}", self.lock_days)
    }

    /// The rate this rule set pays at `volume_minor` of period volume: the tier's when there
    /// are tiers (with its index), else `percent_bps`.
    pub(super) fn rate_at(&self, volume_minor: i64) -> (u32, Option<usize>) {
        match self.tiers.iter().rposition(|t| t.from_minor <= volume_minor) {
            Some(i) => (self.tiers[i].percent_bps, Some(i)),
            // No tiers, or (only in unvalidated rules) a volume below the first one.
            None if self.tiers.is_empty() => (self.percent_bps, None),
            None => (self.tiers[0].percent_bps, Some(0)),
        }
    }
}

impl Metric {
    /// This metric's value in a period state.
    pub(super) fn value(self, volume_minor: i64, conversions: u64) -> i128 {
        match self {
            Metric::Volume => i128::from(volume_minor),
            Metric::Conversions => i128::from(conversions),
        }
    }
}

impl ProgramRules {
    /// Checks the program's rules and every override; paths read `rules.tiers[0].from_minor`
    /// or `partners.alice.cap_minor`.
    pub fn validate(&self) -> Result<(), RuleError> {
        self.rules.validate().map_err(|e| invalid(format!("rules.{}", e.path), e.why))?;
        if self.partners.len() > OVERRIDES_MAX {
            return Err(invalid("partners", format!("at most {OVERRIDES_MAX} overrides, got {}", self.partners.len())));
        }
        for (partner, rules) in &self.partners {
            // The store's partner id rule, so an override can name every partner and nothing else.
            if partner.is_empty() || partner.len() > 64 || !partner.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_') {
                return Err(invalid("partners", format!("{partner:?} must be 1..=64 of [A-Za-z0-9_-]")));
            }
            rules.validate().map_err(|e| invalid(format!("partners.{partner}.{}", e.path), e.why))?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests;
