//! Typed plugin configuration: the manifest's `config` string pairs deserialized into the
//! plugin's own serde struct, once, at `init` (the idea of Fluvio's `#[derive(SmartOpt)]`).
//!
//! Every value arrives as a string; numbers, booleans and unit enum variants are parsed
//! from their string form, so `credit_limit.scale = "2"` fills a `u32` field. Any problem
//! is an init error naming the key and the value, which the host reports when it refuses
//! the plugin.

use std::any::Any;
use std::fmt;
use std::sync::OnceLock;

use serde::de::{self, DeserializeOwned, IntoDeserializer, Visitor};

/// Why a configuration does not fit the plugin's settings type.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError(String);

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for ConfigError {}

impl de::Error for ConfigError {
    fn custom<T: fmt::Display>(msg: T) -> Self {
        Self(msg.to_string())
    }
}

/// Deserializes `T` from configuration pairs (later pairs override earlier ones).
///
/// Errors name the key: `config `credit_limit.scale` = "two": invalid digit found in string`,
/// or `config: missing field `topic`` for a required key that is absent.
pub fn from_pairs<T: DeserializeOwned>(pairs: &[(String, String)]) -> Result<T, ConfigError> {
    // Last value wins, as in `Config::get`; serde would otherwise see a duplicate field.
    let mut unique: Vec<(&str, &str)> = Vec::with_capacity(pairs.len());
    for (key, value) in pairs {
        match unique.iter_mut().find(|(k, _)| *k == key) {
            Some(slot) => slot.1 = value,
            None => unique.push((key, value)),
        }
    }
    let map = de::value::MapDeserializer::new(
        unique
            .into_iter()
            .map(|(key, raw)| (Key(key), Value { key, raw })),
    );
    T::deserialize(map).map_err(|e| {
        if e.0.starts_with("config `") {
            e
        } else {
            ConfigError(format!("config: {e}"))
        }
    })
}

static SETTINGS: OnceLock<Box<dyn Any + Send + Sync>> = OnceLock::new();

/// The typed configuration this instance was initialised with, when the transform declared
/// `#[transform(config = T)]` with this `T`; `None` before `init` or for another type.
pub fn settings<T: Any>() -> Option<&'static T> {
    SETTINGS.get().and_then(|boxed| boxed.downcast_ref::<T>())
}

/// Parses and stores the typed configuration (called by the generated `init`).
pub(crate) fn install<T: DeserializeOwned + Send + Sync + 'static>(
    pairs: &[(String, String)],
) -> Result<(), String> {
    let parsed: T = from_pairs(pairs).map_err(|e| e.to_string())?;
    // An instance is initialised once; a second call only happens in native tests, where
    // the first settings stay.
    let _ = SETTINGS.set(Box::new(parsed));
    Ok(())
}

/// A configuration key (a struct field name).
struct Key<'a>(&'a str);

impl<'de> IntoDeserializer<'de, ConfigError> for Key<'de> {
    type Deserializer = de::value::BorrowedStrDeserializer<'de, ConfigError>;

    fn into_deserializer(self) -> Self::Deserializer {
        de::value::BorrowedStrDeserializer::new(self.0)
    }
}

/// One configuration value: a string that parses into the field's type.
struct Value<'a> {
    key: &'a str,
    raw: &'a str,
}

impl<'de> IntoDeserializer<'de, ConfigError> for Value<'de> {
    type Deserializer = Self;

    fn into_deserializer(self) -> Self {
        self
    }
}

impl Value<'_> {
    /// Names the key and the value in an error about it.
    fn wrap(&self, e: impl fmt::Display) -> ConfigError {
        ConfigError(format!("config `{}` = {:?}: {e}", self.key, self.raw))
    }

    fn parse<T: std::str::FromStr>(&self) -> Result<T, ConfigError>
    where
        T::Err: fmt::Display,
    {
        self.raw.trim().parse().map_err(|e| self.wrap(e))
    }
}

/// Parses the value as the number or boolean type the field asks for.
macro_rules! parse_as {
    ($($method:ident => $ty:ty, $visit:ident;)*) => {
        $(
            fn $method<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, ConfigError> {
                let parsed: $ty = self.parse()?;
                visitor.$visit::<ConfigError>(parsed).map_err(|e| self.wrap(e))
            }
        )*
    };
}

impl<'de> de::Deserializer<'de> for Value<'de> {
    type Error = ConfigError;

    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, ConfigError> {
        visitor
            .visit_borrowed_str::<ConfigError>(self.raw)
            .map_err(|e| self.wrap(e))
    }

    parse_as! {
        deserialize_bool => bool, visit_bool;
        deserialize_i8 => i8, visit_i8;
        deserialize_i16 => i16, visit_i16;
        deserialize_i32 => i32, visit_i32;
        deserialize_i64 => i64, visit_i64;
        deserialize_u8 => u8, visit_u8;
        deserialize_u16 => u16, visit_u16;
        deserialize_u32 => u32, visit_u32;
        deserialize_u64 => u64, visit_u64;
        deserialize_f32 => f32, visit_f32;
        deserialize_f64 => f64, visit_f64;
        deserialize_char => char, visit_char;
    }

    fn deserialize_option<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, ConfigError> {
        visitor.visit_some(self)
    }

    fn deserialize_newtype_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        visitor: V,
    ) -> Result<V::Value, ConfigError> {
        visitor.visit_newtype_struct(self)
    }

    fn deserialize_enum<V: Visitor<'de>>(
        self,
        _name: &'static str,
        _variants: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, ConfigError> {
        let variant: de::value::BorrowedStrDeserializer<'de, ConfigError> =
            de::value::BorrowedStrDeserializer::new(self.raw);
        visitor.visit_enum(variant).map_err(|e| self.wrap(e))
    }

    serde::forward_to_deserialize_any! {
        i128 u128 str string bytes byte_buf unit unit_struct seq tuple tuple_struct map
        struct identifier ignored_any
    }
}

#[cfg(test)]
mod tests {
    use serde::Deserialize;

    use super::*;

    #[derive(Debug, Deserialize, PartialEq)]
    #[serde(rename_all = "lowercase")]
    enum Mode {
        Precise,
        Double,
    }

    #[derive(Debug, Deserialize, PartialEq)]
    #[serde(deny_unknown_fields)]
    struct Settings {
        topic: String,
        #[serde(default)]
        scale: Option<u32>,
        #[serde(default)]
        strict: bool,
        #[serde(rename = "decimal.handling.mode", default = "precise")]
        mode: Mode,
    }

    fn precise() -> Mode {
        Mode::Precise
    }

    fn pairs(list: &[(&str, &str)]) -> Vec<(String, String)> {
        list.iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn parses_numbers_booleans_and_enums_from_strings() {
        let parsed: Settings = from_pairs(&pairs(&[
            ("topic", "a"),
            ("scale", "4"),
            ("strict", "true"),
            ("decimal.handling.mode", "double"),
            ("topic", "b"),
        ]))
        .expect("valid");
        assert_eq!(
            parsed,
            Settings {
                topic: "b".into(),
                scale: Some(4),
                strict: true,
                mode: Mode::Double,
            }
        );
        let defaults: Settings = from_pairs(&pairs(&[("topic", "a")])).expect("valid");
        assert_eq!((defaults.scale, defaults.strict), (None, false));
        assert_eq!(defaults.mode, Mode::Precise);
    }

    #[test]
    fn errors_name_the_key_and_the_value() {
        let error = |list: &[(&str, &str)]| {
            from_pairs::<Settings>(&pairs(list))
                .expect_err("refused")
                .to_string()
        };
        assert_eq!(
            error(&[("topic", "a"), ("scale", "two")]),
            "config `scale` = \"two\": invalid digit found in string"
        );
        assert_eq!(
            error(&[("topic", "a"), ("strict", "yes")]),
            "config `strict` = \"yes\": provided string was not `true` or `false`"
        );
        let bogus = error(&[("topic", "a"), ("decimal.handling.mode", "bogus")]);
        assert!(
            bogus.starts_with("config `decimal.handling.mode` = \"bogus\": unknown variant"),
            "{bogus}"
        );
        assert_eq!(error(&[]), "config: missing field `topic`");
        let unknown = error(&[("topic", "a"), ("topik", "b")]);
        assert!(
            unknown.starts_with("config: unknown field `topik`"),
            "{unknown}"
        );
    }
}
