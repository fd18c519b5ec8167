//! The kinds of GeoIP database.

/// Which GeoIP database: a metrics label and the key of the edge's readers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GeoDbKind {
    Country,
    Asn,
    Anonymous,
}

impl GeoDbKind {
    /// All kinds, for metrics.
    pub const ALL: [GeoDbKind; 3] = [GeoDbKind::Country, GeoDbKind::Asn, GeoDbKind::Anonymous];

    /// The label value.
    pub fn as_str(self) -> &'static str {
        match self {
            GeoDbKind::Country => "country",
            GeoDbKind::Asn => "asn",
            GeoDbKind::Anonymous => "anonymous",
        }
    }
}
