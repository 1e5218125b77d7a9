//! Column masks, as Debezium's `column.mask.with.N.chars` and
//! `column.mask.hash.<algorithm>.with.salt.<salt>` (`MaskStrings`): the value of a
//! character column is replaced by N `*`, or by the hex digest of salt and value,
//! cut to the column's length. The field schema of every masked column carries the
//! parameter `masked: "true"`; keys are never masked (Debezium maps value fields only).

use md5::Md5;
use sha1::Sha1;
use sha2::{Digest, Sha256, Sha384, Sha512};

use crate::filters::Patterns;

/// A digest Java's `MessageDigest` offers under `name`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HashAlgorithm {
    Md5,
    Sha1,
    Sha256,
    Sha384,
    Sha512,
}

impl HashAlgorithm {
    /// Java's standard names (`MD5`, `SHA-1`, `SHA-256`, `SHA-384`, `SHA-512`), also
    /// without the dash, any case.
    pub fn from_name(name: &str) -> Option<HashAlgorithm> {
        Some(match name.to_ascii_uppercase().replace('-', "").as_str() {
            "MD5" => HashAlgorithm::Md5,
            "SHA" | "SHA1" => HashAlgorithm::Sha1,
            "SHA256" => HashAlgorithm::Sha256,
            "SHA384" => HashAlgorithm::Sha384,
            "SHA512" => HashAlgorithm::Sha512,
            _ => return None,
        })
    }

    /// The Java name, as Debezium's property spells it.
    pub fn java_name(self) -> &'static str {
        match self {
            HashAlgorithm::Md5 => "MD5",
            HashAlgorithm::Sha1 => "SHA-1",
            HashAlgorithm::Sha256 => "SHA-256",
            HashAlgorithm::Sha384 => "SHA-384",
            HashAlgorithm::Sha512 => "SHA-512",
        }
    }

    pub(crate) fn digest(self, salt: &[u8], data: &[u8]) -> Vec<u8> {
        fn run<D: Digest>(salt: &[u8], data: &[u8]) -> Vec<u8> {
            let mut d = D::new();
            d.update(salt);
            d.update(data);
            d.finalize().to_vec()
        }
        match self {
            HashAlgorithm::Md5 => run::<Md5>(salt, data),
            HashAlgorithm::Sha1 => run::<Sha1>(salt, data),
            HashAlgorithm::Sha256 => run::<Sha256>(salt, data),
            HashAlgorithm::Sha384 => run::<Sha384>(salt, data),
            HashAlgorithm::Sha512 => run::<Sha512>(salt, data),
        }
    }
}

/// What a mask does to a value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Mask {
    /// `column.mask.with.N.chars`: N `*`, NULL included (Debezium's mapping converter
    /// runs on NULL too).
    Chars(usize),
    /// `column.mask.hash.[v2.]<algorithm>.with.salt.<salt>`: lower-case hex of the digest
    /// of the salt then the value (V1: the value as Java serialises a `String`; V2: its
    /// UTF-8 bytes); NULL stays NULL.
    Hash {
        algorithm: HashAlgorithm,
        salt: String,
        v2: bool,
    },
}

impl Mask {
    /// The masked text of a character column's `value` (`None`: NULL), cut to
    /// `length` characters when the column has one (a hash only, as Debezium).
    pub fn apply(&self, value: Option<&str>, length: Option<usize>) -> Option<String> {
        match self {
            Mask::Chars(n) => Some("*".repeat(*n)),
            Mask::Hash {
                algorithm,
                salt,
                v2,
            } => {
                let value = value?;
                let bytes = if *v2 {
                    value.as_bytes().to_vec()
                } else {
                    java_serialized_string(value)
                };
                let mut text = hex::encode(algorithm.digest(salt.as_bytes(), &bytes));
                if let Some(length) = length.filter(|&l| l > 0) {
                    text.truncate(length);
                }
                Some(text)
            }
        }
    }
}

/// One mask and the columns it applies to (`schema.table.column` patterns).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MaskRule {
    pub columns: Patterns,
    pub mask: Mask,
}

/// The mask of the column `schema.table.column` (the first rule that matches).
pub fn mask_for<'a>(rules: &'a [MaskRule], column: &str) -> Option<&'a Mask> {
    rules
        .iter()
        .find(|rule| rule.columns.matches(column))
        .map(|rule| &rule.mask)
}

/// `ObjectOutputStream.writeObject(String)`: the stream header, then `TC_STRING` with a
/// 2-byte length (or `TC_LONGSTRING` with 8 bytes) and the text in Java's modified UTF-8
/// (NUL as two bytes, characters beyond the BMP as two 3-byte surrogates).
fn java_serialized_string(text: &str) -> Vec<u8> {
    let mut utf = Vec::with_capacity(text.len());
    for unit in text.encode_utf16() {
        match unit {
            0x0001..=0x007F => utf.push(unit as u8),
            0x0000 | 0x0080..=0x07FF => {
                utf.push(0xC0 | (unit >> 6) as u8);
                utf.push(0x80 | (unit & 0x3F) as u8);
            }
            _ => {
                utf.push(0xE0 | (unit >> 12) as u8);
                utf.push(0x80 | ((unit >> 6) & 0x3F) as u8);
                utf.push(0x80 | (unit & 0x3F) as u8);
            }
        }
    }
    let mut out = vec![0xAC, 0xED, 0x00, 0x05];
    if utf.len() <= 0xFFFF {
        out.push(0x74);
        out.extend_from_slice(&(utf.len() as u16).to_be_bytes());
    } else {
        out.push(0x7C);
        out.extend_from_slice(&(utf.len() as u64).to_be_bytes());
    }
    out.extend_from_slice(&utf);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn java_serialisation_of_strings() {
        // `new ObjectOutputStream(bos).writeObject("ab")`.
        assert_eq!(
            java_serialized_string("ab"),
            [0xAC, 0xED, 0x00, 0x05, 0x74, 0x00, 0x02, b'a', b'b']
        );
        // NUL and a character beyond the BMP in modified UTF-8.
        assert_eq!(
            java_serialized_string("\0\u{1F600}")[7..],
            [0xC0, 0x80, 0xED, 0xA0, 0xBD, 0xED, 0xB8, 0x80]
        );
        assert_eq!(java_serialized_string("é")[5..], [0x00, 0x02, 0xC3, 0xA9]);
        assert_eq!(java_serialized_string(&"x".repeat(70_000))[4], 0x7C);
    }

    #[test]
    fn hashes_are_salted_hex_digests_cut_to_the_column() {
        let v2 = Mask::Hash {
            algorithm: HashAlgorithm::Sha256,
            salt: "a".into(),
            v2: true,
        };
        // SHA-256 of "abc" (FIPS 180-2's first example): salt "a", value "bc".
        let abc = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad";
        assert_eq!(v2.apply(Some("bc"), None).as_deref(), Some(abc));
        assert_eq!(v2.apply(Some("bc"), Some(10)).as_deref(), Some(&abc[..10]));
        assert_eq!(v2.apply(None, Some(10)), None);
        // V1 hashes the serialised form, so it differs from V2 for the same value.
        let v1 = Mask::Hash {
            algorithm: HashAlgorithm::Sha256,
            salt: "a".into(),
            v2: false,
        };
        let mut serialized = b"a".to_vec();
        serialized.extend_from_slice(&java_serialized_string("value"));
        assert_eq!(
            v1.apply(Some("value"), None).expect("hashed"),
            hex::encode(Sha256::digest(&serialized))
        );
        assert_eq!(Mask::Chars(3).apply(None, None).as_deref(), Some("***"));
        assert_eq!(
            HashAlgorithm::from_name("sha-512"),
            Some(HashAlgorithm::Sha512)
        );
        assert_eq!(HashAlgorithm::from_name("whirlpool"), None);
    }
}
