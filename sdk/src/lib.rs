//! The sluice plugin SDK for Rust.
//!
//! A plugin author writes one plain function and one attribute:
//!
//! ```
//! use serde::{Deserialize, Serialize};
//! use sluice_sdk::{ChangeEvent, Record, Reject};
//!
//! #[derive(Deserialize, Serialize)]
//! struct Customer {
//!     id: i64,
//!     email: Option<String>,
//! }
//!
//! #[sluice_sdk::transform]
//! fn route(event: ChangeEvent) -> Result<Vec<Record>, Reject> {
//!     let customer: Customer = event.after()?;
//!     Ok(vec![Record::to("cdm.customer").json_key(&customer.id).json_value(&customer)])
//! }
//! # fn main() {}
//! ```
//!
//! The attribute hides the WIT bindings (`wit_bindgen::generate!`): it exports the
//! `sluice:transform/transform-packed` interface (world `packed-transformer`: each batch
//! crosses the boundary as one buffer each way, read here into the same `ChangeEvent`s),
//! calls the function once per event of each batch, turns its `Result` into a per-event outcome, and reports panics to the host
//! log so the host can name the reason of a trap. A plugin crate depends on this crate
//! alone and builds with `cargo build --target wasm32-wasip2` (or `sluice plugin build`).
//!
//! The function may return `Result<Vec<Record>, Reject>`, `Result<Option<Record>, Reject>`
//! or `Result<Record, Reject>`; `Ok(vec![])` / `Ok(None)` filter the event out and
//! `Err(reject)` sends it to the dead-letter topic with the reason.
//!
//! Configuration from the plugin's manifest is typed: `#[sluice_sdk::transform(config =
//! Settings)]` deserializes it into a serde struct once, at `init` (numbers and booleans
//! parsed from their string form; a bad or missing value refuses the plugin with an error
//! naming the key), and the function takes it as a second argument:
//!
//! ```
//! # use sluice_sdk::{ChangeEvent, Record, Reject};
//! #[derive(serde::Deserialize)]
//! #[serde(deny_unknown_fields)]
//! struct Settings {
//!     #[serde(default = "default_topic")]
//!     topic: String,
//!     #[serde(default)]
//!     scale: Option<u32>,
//! }
//! fn default_topic() -> String {
//!     "cdm.customer".into()
//! }
//!
//! #[sluice_sdk::transform(config = Settings)]
//! fn route(event: ChangeEvent, settings: &Settings) -> Result<Option<Record>, Reject> {
//!     Ok(event.key_bytes().map(|key| Record::to(&settings.topic).key(key)))
//! }
//! # fn main() {}
//! ```
//!
//! The string pairs stay available through [`config()`]; an optional
//! `#[sluice_sdk::transform(init = check)]` names a `fn check(&Config) -> Result<(), String>`
//! that validates them once per instance (after the typed settings, when both are given).
//!
//! The same crate compiles natively (for unit tests and benchmarks of plugin logic):
//! then nothing is exported and [`log`] writes to standard error.

// wit-bindgen's generated glue (the canonical ABI) is unsafe by nature; the only unsafe
// code of this crate's own is the guest allocator's block cache (`alloc`).
#![allow(unsafe_code)]

// Lets the generated bindings and the macro's expansion name this crate the same way
// from inside it as from a plugin crate.
extern crate self as sluice_sdk;

mod alloc;
pub mod debezium;
mod event;
mod record;
pub mod settings;

pub use event::{
    ChangeEvent, Header, Op, Origin, SnapshotMarker, SourceInfo, Span, TransactionInfo,
};
pub use record::{IntoOutcome, Record, Reject};
pub use settings::{ConfigError, settings};
pub use sluice_sdk_macro::transform;

use std::sync::OnceLock;

/// The `transformer` world: its `types` are the event and record types plugins see (and
/// its `host` the log import). Its `transform` export is not used: plugins built with
/// this SDK export the packed world below.
#[doc(hidden)]
pub mod bindings {
    wit_bindgen::generate!({
        path: "../wit",
        world: "transformer",
        pub_export_macro: true,
        export_macro_name: "__export_transformer",
        default_bindings_module: "::sluice_sdk::bindings",
        runtime_path: "::sluice_sdk::__private::wit_bindgen::rt",
        additional_derives: [PartialEq, Eq],
    });
}

/// The `packed-transformer` world (`wit/packed.wit`), which plugins built with this SDK
/// export: the batch arrives as one buffer, which [`packed`] turns into the same
/// `ChangeEvent`s, and the outcomes leave as one.
#[doc(hidden)]
pub mod packed_bindings {
    wit_bindgen::generate!({
        path: "../wit",
        world: "packed-transformer",
        pub_export_macro: true,
        export_macro_name: "__export_packed_transformer",
        default_bindings_module: "::sluice_sdk::packed_bindings",
        runtime_path: "::sluice_sdk::__private::wit_bindgen::rt",
        with: {
            "sluice:transform/host@0.1.0": crate::bindings::sluice::transform::host,
        },
    });
}

mod packed;

/// Severity of a line written with [`log`].
pub use bindings::sluice::transform::host::LogLevel;

/// Writes one line to the host's log, tagged with this plugin's name and version.
///
/// The host drops lines below its log level and caps how many lines one batch may write.
pub fn log(level: LogLevel, message: &str) {
    #[cfg(target_family = "wasm")]
    bindings::sluice::transform::host::log(level, message);
    #[cfg(not(target_family = "wasm"))]
    eprintln!("[plugin {level:?}] {message}");
}

/// The plugin's configuration: the `config` key/value pairs of its manifest, in order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Config {
    pairs: Vec<(String, String)>,
}

impl Config {
    /// Builds a configuration from pairs (what the host passes to `init`).
    pub fn from_pairs(pairs: Vec<(String, String)>) -> Self {
        Self { pairs }
    }

    /// The value of `key`, if set. When a key is repeated, the last value wins.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.pairs
            .iter()
            .rev()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    /// Parses the value of `key`; `Ok(None)` when the key is absent.
    pub fn parse<T: std::str::FromStr>(&self, key: &str) -> Result<Option<T>, String>
    where
        T::Err: std::fmt::Display,
    {
        match self.get(key) {
            None => Ok(None),
            Some(raw) => raw
                .parse()
                .map(Some)
                .map_err(|e| format!("config `{key}` = {raw:?}: {e}")),
        }
    }

    /// Deserializes the whole configuration into the plugin's settings type, parsing
    /// numbers and booleans from their string form; see [`settings`](mod@settings).
    pub fn typed<T: serde::de::DeserializeOwned>(&self) -> Result<T, ConfigError> {
        settings::from_pairs(&self.pairs)
    }

    /// All pairs, in manifest order.
    pub fn pairs(&self) -> &[(String, String)] {
        &self.pairs
    }
}

static CONFIG: OnceLock<Config> = OnceLock::new();

/// The configuration this instance was initialised with (empty before `init`).
pub fn config() -> &'static Config {
    static EMPTY: Config = Config { pairs: Vec::new() };
    CONFIG.get().unwrap_or(&EMPTY)
}

/// Support code for the `#[transform]` attribute. Not a stable API.
#[doc(hidden)]
pub mod __private {
    pub use wit_bindgen;

    pub use crate::packed_bindings::exports::sluice::transform::transform_packed::Guest as PackedGuest;
    use crate::{ChangeEvent, Config, IntoOutcome, LogLevel};

    /// A plugin's optional configuration check (`#[transform(init = check)]`).
    pub type ConfigCheck = fn(&Config) -> Result<(), String>;

    /// Parses and stores a plugin's typed settings (`#[transform(config = T)]`).
    pub type SettingsInstaller = fn(&[(String, String)]) -> Result<(), String>;

    /// The installer for settings type `T`.
    pub const fn settings_installer<T: serde::de::DeserializeOwned + Send + Sync + 'static>()
    -> SettingsInstaller {
        crate::settings::install::<T>
    }

    /// The typed settings stored at `init`; the generated export calls it only after a
    /// successful `init` with the same `T`, which the host guarantees.
    pub fn installed_settings<T: std::any::Any>() -> &'static T {
        crate::settings::settings::<T>()
            .expect("the host calls transform-packed only after a successful init")
    }

    /// Implements the WIT `init`: stores the configuration, parses the typed settings (if
    /// declared), then runs the plugin's check.
    pub fn init(
        pairs: Vec<(String, String)>,
        settings: Option<SettingsInstaller>,
        check: Option<ConfigCheck>,
    ) -> Result<(), String> {
        install_panic_reporter();
        // An instance is initialised exactly once (see wit/transform.wit); a second
        // call can only come from a native test, where the first configuration stays.
        let config = super::CONFIG.get_or_init(|| Config::from_pairs(pairs));
        if let Some(install) = settings {
            install(config.pairs())?;
        }
        match check {
            Some(check) => check(config),
            None => Ok(()),
        }
    }

    /// Implements the WIT `transform-packed`: the batch read from its buffer, one outcome
    /// per event, in order, written into the returned buffer.
    pub fn transform_packed<R: IntoOutcome>(
        batch: Vec<u8>,
        transform: impl Fn(ChangeEvent) -> R,
    ) -> Vec<u8> {
        let events = crate::packed::read_batch(&batch);
        let mut out = crate::packed::OutcomeWriter::new(events.len(), batch.len());
        for event in events {
            out.push(transform(ChangeEvent::from_wit(event)).into_outcome());
        }
        out.finish()
    }

    /// Sends panic messages to the host log, whose last error line becomes the trap
    /// reason the host reports (a bare trap would only say "unreachable executed").
    fn install_panic_reporter() {
        static ONCE: std::sync::Once = std::sync::Once::new();
        ONCE.call_once(|| {
            std::panic::set_hook(Box::new(|info| {
                crate::log(LogLevel::Error, &format!("plugin panicked: {info}"));
            }));
        });
    }
}
