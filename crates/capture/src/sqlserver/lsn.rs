//! SQL Server log sequence numbers: 10 bytes (VLF 4, block 4, slot 2), ordered as a
//! big-endian integer and printed like Debezium and SQL Server's own tools, as hex
//! `0000002b:00000ad8:0001`.

use std::fmt;

/// One LSN. `Lsn::ZERO` is "before everything" (what `fn_cdc_get_min_lsn` returns for
/// an unknown capture instance).
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Lsn(pub [u8; 10]);

/// Text that is not an LSN.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{text:?} is not an LSN (expected hex 8:8:4, e.g. 0000002b:00000ad8:0001)")]
pub struct LsnParseError {
    pub text: String,
}

impl Lsn {
    pub const ZERO: Lsn = Lsn([0; 10]);
    pub const MAX: Lsn = Lsn([0xff; 10]);

    /// From the `binary(10)` SQL Server returns; `None` unless exactly 10 bytes.
    pub fn from_bytes(bytes: &[u8]) -> Option<Lsn> {
        <[u8; 10]>::try_from(bytes).ok().map(Lsn)
    }

    /// Parses `0000002b:00000ad8:0001` (Debezium's and the offsets' form) or the 20 hex
    /// digits SQL Server prints (`0x0000002B00000AD80001`, with or without `0x`).
    pub fn parse(text: &str) -> Result<Lsn, LsnParseError> {
        let error = || LsnParseError {
            text: text.to_owned(),
        };
        let digits: String = match text.split(':').collect::<Vec<_>>().as_slice() {
            [a, b, c] if a.len() == 8 && b.len() == 8 && c.len() == 4 => format!("{a}{b}{c}"),
            [one] => one
                .strip_prefix("0x")
                .or_else(|| one.strip_prefix("0X"))
                .unwrap_or(one)
                .to_owned(),
            _ => return Err(error()),
        };
        if digits.len() != 20 {
            return Err(error());
        }
        let bytes = hex::decode(&digits).map_err(|_| error())?;
        Lsn::from_bytes(&bytes).ok_or_else(error)
    }

    /// The next LSN, as `sys.fn_cdc_increment_lsn` returns it: the 10 bytes as one
    /// big-endian integer plus one (saturating at the maximum). Computed here rather than
    /// asked of the server (Debezium asks): it is the smallest value above `self` in the
    /// order the window queries compare LSNs in (`>=` on `binary(10)`), so a window
    /// starting there can skip no change, and a pass saves a round trip.
    pub fn increment(self) -> Lsn {
        let mut bytes = self.0;
        for byte in bytes.iter_mut().rev() {
            let (next, carry) = byte.overflowing_add(1);
            *byte = next;
            if !carry {
                return Lsn(bytes);
            }
        }
        Lsn::MAX
    }

    /// The previous LSN (`sys.fn_cdc_decrement_lsn`), saturating at zero.
    pub fn decrement(self) -> Lsn {
        if self == Lsn::ZERO {
            return self;
        }
        let mut bytes = self.0;
        for byte in bytes.iter_mut().rev() {
            let (next, borrow) = byte.overflowing_sub(1);
            *byte = next;
            if !borrow {
                break;
            }
        }
        Lsn(bytes)
    }

    pub fn is_zero(self) -> bool {
        self == Lsn::ZERO
    }
}

impl fmt::Display for Lsn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let b = &self.0;
        write!(
            f,
            "{}:{}:{}",
            hex::encode(&b[0..4]),
            hex::encode(&b[4..8]),
            hex::encode(&b[8..10])
        )
    }
}

impl fmt::Debug for Lsn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Lsn({self})")
    }
}

impl std::str::FromStr for Lsn {
    type Err = LsnParseError;
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        Lsn::parse(text)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_prints_debezium_form() {
        let lsn = Lsn::parse("0000002b:00000ad8:0001").expect("lsn");
        assert_eq!(lsn.to_string(), "0000002b:00000ad8:0001");
        assert_eq!(Lsn::parse("0x0000002B00000AD80001"), Ok(lsn));
        assert_eq!(Lsn::parse("0000002B00000AD80001"), Ok(lsn));
        assert_eq!(
            Lsn::from_bytes(&[0, 0, 0, 0x2b, 0, 0, 0x0a, 0xd8, 0, 1]),
            Some(lsn)
        );
        for bad in [
            "",
            "0000002b:00000ad8",
            "2b:ad8:1",
            "0000002g:00000ad8:0001",
            "0x12",
        ] {
            assert!(Lsn::parse(bad).is_err(), "{bad}");
        }
        assert_eq!(Lsn::from_bytes(&[1, 2, 3]), None);
    }

    #[test]
    fn orders_as_a_big_endian_integer() {
        let a = Lsn::parse("0000002b:00000ad8:ffff").expect("a");
        let b = Lsn::parse("0000002b:00000ad9:0000").expect("b");
        let c = Lsn::parse("0000002c:00000000:0000").expect("c");
        assert!(Lsn::ZERO < a && a < b && b < c && c < Lsn::MAX);
        let mut sorted = vec![c, a, b];
        sorted.sort();
        assert_eq!(sorted, vec![a, b, c]);
    }

    #[test]
    fn increments_and_decrements_with_carry() {
        let a = Lsn::parse("0000002b:00000ad8:ffff").expect("a");
        assert_eq!(a.increment().to_string(), "0000002b:00000ad9:0000");
        assert_eq!(a.increment().decrement(), a);
        assert_eq!(
            Lsn::parse("0000002b:ffffffff:ffff")
                .expect("lsn")
                .increment()
                .to_string(),
            "0000002c:00000000:0000"
        );
        assert_eq!(Lsn::MAX.increment(), Lsn::MAX);
        assert_eq!(Lsn::ZERO.decrement(), Lsn::ZERO);
    }
}
