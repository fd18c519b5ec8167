//! ISO 4217 currency codes in circulation, with their minor-unit exponent.

/// (code, minor-unit digits). Sorted for binary search.
const CURRENCIES: &[(&str, u8)] = &[
    ("AED", 2),
    ("AFN", 2),
    ("ALL", 2),
    ("AMD", 2),
    ("ANG", 2),
    ("AOA", 2),
    ("ARS", 2),
    ("AUD", 2),
    ("AWG", 2),
    ("AZN", 2),
    ("BAM", 2),
    ("BBD", 2),
    ("BDT", 2),
    ("BGN", 2),
    ("BHD", 3),
    ("BIF", 0),
    ("BMD", 2),
    ("BND", 2),
    ("BOB", 2),
    ("BRL", 2),
    ("BSD", 2),
    ("BTN", 2),
    ("BWP", 2),
    ("BYN", 2),
    ("BZD", 2),
    ("CAD", 2),
    ("CDF", 2),
    ("CHF", 2),
    ("CLP", 0),
    ("CNY", 2),
    ("COP", 2),
    ("CRC", 2),
    ("CUP", 2),
    ("CVE", 2),
    ("CZK", 2),
    ("DJF", 0),
    ("DKK", 2),
    ("DOP", 2),
    ("DZD", 2),
    ("EGP", 2),
    ("ERN", 2),
    ("ETB", 2),
    ("EUR", 2),
    ("FJD", 2),
    ("FKP", 2),
    ("GBP", 2),
    ("GEL", 2),
    ("GHS", 2),
    ("GIP", 2),
    ("GMD", 2),
    ("GNF", 0),
    ("GTQ", 2),
    ("GYD", 2),
    ("HKD", 2),
    ("HNL", 2),
    ("HTG", 2),
    ("HUF", 2),
    ("IDR", 2),
    ("ILS", 2),
    ("INR", 2),
    ("IQD", 3),
    ("IRR", 2),
    ("ISK", 0),
    ("JMD", 2),
    ("JOD", 3),
    ("JPY", 0),
    ("KES", 2),
    ("KGS", 2),
    ("KHR", 2),
    ("KMF", 0),
    ("KPW", 2),
    ("KRW", 0),
    ("KWD", 3),
    ("KYD", 2),
    ("KZT", 2),
    ("LAK", 2),
    ("LBP", 2),
    ("LKR", 2),
    ("LRD", 2),
    ("LSL", 2),
    ("LYD", 3),
    ("MAD", 2),
    ("MDL", 2),
    ("MGA", 2),
    ("MKD", 2),
    ("MMK", 2),
    ("MNT", 2),
    ("MOP", 2),
    ("MRU", 2),
    ("MUR", 2),
    ("MVR", 2),
    ("MWK", 2),
    ("MXN", 2),
    ("MYR", 2),
    ("MZN", 2),
    ("NAD", 2),
    ("NGN", 2),
    ("NIO", 2),
    ("NOK", 2),
    ("NPR", 2),
    ("NZD", 2),
    ("OMR", 3),
    ("PAB", 2),
    ("PEN", 2),
    ("PGK", 2),
    ("PHP", 2),
    ("PKR", 2),
    ("PLN", 2),
    ("PYG", 0),
    ("QAR", 2),
    ("RON", 2),
    ("RSD", 2),
    ("RUB", 2),
    ("RWF", 0),
    ("SAR", 2),
    ("SBD", 2),
    ("SCR", 2),
    ("SDG", 2),
    ("SEK", 2),
    ("SGD", 2),
    ("SHP", 2),
    ("SLE", 2),
    ("SOS", 2),
    ("SRD", 2),
    ("SSP", 2),
    ("STN", 2),
    ("SVC", 2),
    ("SYP", 2),
    ("SZL", 2),
    ("THB", 2),
    ("TJS", 2),
    ("TMT", 2),
    ("TND", 3),
    ("TOP", 2),
    ("TRY", 2),
    ("TTD", 2),
    ("TWD", 2),
    ("TZS", 2),
    ("UAH", 2),
    ("UGX", 0),
    ("USD", 2),
    ("UYU", 2),
    ("UZS", 2),
    ("VES", 2),
    ("VND", 0),
    ("VUV", 0),
    ("WST", 2),
    ("XAF", 0),
    ("XCD", 2),
    ("XOF", 0),
    ("XPF", 0),
    ("YER", 2),
    ("ZAR", 2),
    ("ZMW", 2),
    ("ZWG", 2),
];

/// The minor-unit exponent of an ISO 4217 code, or `None` for an unknown code.
pub fn minor_units(code: &str) -> Option<u8> {
    CURRENCIES.binary_search_by(|(c, _)| (*c).cmp(code)).ok().map(|i| CURRENCIES[i].1)
}

/// An ISO 4217 currency in circulation: an upper-case code from the table above. Made only by
/// [`Currency::parse`], so a value of this type is always a known code.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Currency([u8; 3]);

/// Why a text is not a [`Currency`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CurrencyError {
    /// Not three upper-case ASCII letters.
    Malformed(String),
    /// Three upper-case letters, but not an ISO 4217 code in circulation.
    Unknown(String),
}

impl std::fmt::Display for CurrencyError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            CurrencyError::Malformed(s) => write!(f, "{s:?} is not an ISO 4217 code (three upper-case letters)"),
            CurrencyError::Unknown(s) => write!(f, "{s:?} is not an ISO 4217 code"),
        }
    }
}

impl std::error::Error for CurrencyError {}

impl Currency {
    /// Parses an upper-case ISO 4217 code that is in the table.
    pub fn parse(s: &str) -> Result<Currency, CurrencyError> {
        let bytes: [u8; 3] = s.as_bytes().try_into().map_err(|_| CurrencyError::Malformed(s.to_string()))?;
        if !bytes.iter().all(u8::is_ascii_uppercase) {
            return Err(CurrencyError::Malformed(s.to_string()));
        }
        if minor_units(s).is_none() {
            return Err(CurrencyError::Unknown(s.to_string()));
        }
        Ok(Currency(bytes))
    }

    /// The code, e.g. `"USD"`.
    pub fn as_str(&self) -> &str {
        // Only `parse` makes a `Currency`, from upper-case ASCII letters.
        std::str::from_utf8(&self.0).expect("a currency is ASCII")
    }

    /// The code's three bytes, e.g. `*b"USD"` (what the ledger hashes).
    pub fn bytes(self) -> [u8; 3] {
        self.0
    }

    /// The minor-unit exponent: 2 for USD, 0 for JPY, 3 for KWD.
    pub fn minor_units(self) -> u8 {
        let units = minor_units(self.as_str());
        debug_assert!(units.is_some(), "a Currency is in the table");
        units.unwrap_or(2)
    }
}

impl std::fmt::Display for Currency {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::fmt::Debug for Currency {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for Currency {
    type Err = CurrencyError;

    fn from_str(s: &str) -> Result<Currency, CurrencyError> {
        Currency::parse(s)
    }
}

impl serde::Serialize for Currency {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl<'de> serde::Deserialize<'de> for Currency {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Currency, D::Error> {
        let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        Currency::parse(&s).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::{Currency, CurrencyError};

    #[test]
    fn table_is_sorted_and_known() {
        assert!(super::CURRENCIES.windows(2).all(|w| w[0].0 < w[1].0));
        assert!(super::CURRENCIES.iter().all(|(c, _)| c.len() == 3 && c.bytes().all(|b| b.is_ascii_uppercase())));
        assert_eq!(super::minor_units("USD"), Some(2));
        assert_eq!(super::minor_units("JPY"), Some(0));
        assert_eq!(super::minor_units("usd"), None);
        assert_eq!(super::minor_units("XXX"), None);
    }

    fn check(input: &str, expected: Result<(&str, u8), CurrencyError>) {
        let got = Currency::parse(input).map(|c| (c.as_str().to_string(), c.minor_units()));
        assert_eq!(got, expected.map(|(code, units)| (code.to_string(), units)), "{input:?}");
    }

    fn malformed(s: &str) -> Result<(&'static str, u8), CurrencyError> {
        Err(CurrencyError::Malformed(s.to_string()))
    }

    fn unknown(s: &str) -> Result<(&'static str, u8), CurrencyError> {
        Err(CurrencyError::Unknown(s.to_string()))
    }

    #[test]
    fn parse() {
        check("USD", Ok(("USD", 2)));
        check("EUR", Ok(("EUR", 2)));
        check("JPY", Ok(("JPY", 0)));
        check("KWD", Ok(("KWD", 3)));
        check("usd", malformed("usd"));
        check("Usd", malformed("Usd"));
        check("US", malformed("US"));
        check("USDD", malformed("USDD"));
        check("", malformed(""));
        check(" USD", malformed(" USD"));
        check("U1D", malformed("U1D"));
        check("ÜSD", malformed("ÜSD"));
        check("XYZ", unknown("XYZ"));
        check("XXX", unknown("XXX"));
    }

    #[test]
    fn display_debug_and_bytes_are_the_code() {
        let usd = Currency::parse("USD").unwrap();
        assert_eq!(usd.to_string(), "USD");
        assert_eq!(format!("{usd:?}"), "USD");
        assert_eq!(usd.bytes(), *b"USD");
        assert_eq!("JPY".parse::<Currency>().map(Currency::minor_units), Ok(0));
        assert_eq!(CurrencyError::Unknown("XYZ".into()).to_string(), "\"XYZ\" is not an ISO 4217 code");
        assert_eq!(CurrencyError::Malformed("usd".into()).to_string(), "\"usd\" is not an ISO 4217 code (three upper-case letters)");
    }

    #[test]
    fn serde_round_trips_as_the_code() {
        let usd = Currency::parse("USD").unwrap();
        assert_eq!(serde_json::to_string(&usd).unwrap(), "\"USD\"");
        assert_eq!(serde_json::from_str::<Currency>("\"USD\"").unwrap(), usd);
        let jpy: Currency = serde_json::from_value(serde_json::json!("JPY")).unwrap();
        assert_eq!(jpy.minor_units(), 0);
        for bad in ["\"usd\"", "\"XYZ\"", "\"US\"", "840", "null"] {
            assert!(serde_json::from_str::<Currency>(bad).is_err(), "{bad}");
        }
        let err = serde_json::from_str::<Currency>("\"XYZ\"").unwrap_err().to_string();
        assert!(err.contains("not an ISO 4217 code"), "{err}");
    }
}
