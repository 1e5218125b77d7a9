//! The on-disk cache of compiled components.
//!
//! Compiling a component with Cranelift takes from milliseconds to seconds; a restart or
//! a hot reload of a plugin seen before should not pay that again. Entries are keyed on
//! the sha256 of the component bytes and the engine's compatibility hash (wasmtime
//! version, target and settings), so a different engine never loads a stale artifact.
//!
//! Deserializing a compiled artifact is `unsafe` in wasmtime: the bytes are trusted to be
//! machine code wasmtime produced. sluice therefore only deserializes files it wrote
//! itself: each artifact is written atomically (temp file + rename) together with a
//! sidecar holding the sha256 of the artifact, and an artifact whose digest does not match
//! (truncated, corrupted, or not written by sluice) is discarded and recompiled. The
//! directory must be writable by sluice alone.

use std::fs;
use std::hash::{DefaultHasher, Hash, Hasher};
use std::io::Write;
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};
use wasmtime::Engine;
use wasmtime::component::Component;

/// Where compiled components are kept; `None` compiles every time.
#[derive(Debug, Clone)]
pub struct ComponentCache {
    dir: Option<PathBuf>,
}

/// Whether a component came from the cache.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CacheOutcome {
    Hit,
    Miss,
    Disabled,
}

impl ComponentCache {
    pub fn new(dir: Option<PathBuf>) -> Self {
        Self { dir }
    }

    /// Returns the compiled component for `bytes`, compiling it on a miss. `key` names
    /// them: their sha256, with a suffix when the runtime's engines compile them apart.
    /// Errors are compile errors; cache I/O problems are logged and bypassed.
    pub fn get_or_compile(
        &self,
        engine: &Engine,
        bytes: &[u8],
        key: &str,
    ) -> wasmtime::Result<(Component, CacheOutcome)> {
        let Some(dir) = &self.dir else {
            return Ok((Component::new(engine, bytes)?, CacheOutcome::Disabled));
        };
        let artifact = dir.join(format!("{key}-{}.cwasm", engine_fingerprint(engine)));
        if let Some(component) = load_verified(engine, &artifact) {
            return Ok((component, CacheOutcome::Hit));
        }
        let compiled = engine.precompile_component(bytes)?;
        if let Err(e) = store(dir, &artifact, &compiled) {
            tracing::warn!(path = %artifact.display(), error = %e, "could not write the compiled-component cache");
        }
        Ok((deserialize_own(engine, &compiled)?, CacheOutcome::Miss))
    }
}

/// A short hex digest of everything that makes compiled code incompatible.
fn engine_fingerprint(engine: &Engine) -> String {
    let mut hasher = DefaultHasher::new();
    engine.precompile_compatibility_hash().hash(&mut hasher);
    format!("{:016x}", hasher.finish())
}

fn sidecar(artifact: &Path) -> PathBuf {
    artifact.with_extension("cwasm.sha256")
}

fn load_verified(engine: &Engine, artifact: &Path) -> Option<Component> {
    let expected = fs::read_to_string(sidecar(artifact)).ok()?;
    let compiled = fs::read(artifact).ok()?;
    if hex::encode(Sha256::digest(&compiled)) != expected.trim() {
        tracing::warn!(path = %artifact.display(), "cached component does not match its digest; recompiling");
        let _ = fs::remove_file(artifact);
        return None;
    }
    match deserialize_own(engine, &compiled) {
        Ok(component) => Some(component),
        Err(e) => {
            tracing::warn!(path = %artifact.display(), error = %e, "cached component unusable; recompiling");
            None
        }
    }
}

/// Deserializes bytes that `Engine::precompile_component` produced in this process or
/// that passed the digest check of an artifact this module wrote.
#[allow(unsafe_code)]
fn deserialize_own(engine: &Engine, compiled: &[u8]) -> wasmtime::Result<Component> {
    // SAFETY: `compiled` is output of `precompile_component` of an engine with the same
    // compatibility hash (the file name encodes it), written by this module and verified
    // against the digest written beside it; see the module docs.
    unsafe { Component::deserialize(engine, compiled) }
}

fn store(dir: &Path, artifact: &Path, compiled: &[u8]) -> std::io::Result<()> {
    fs::create_dir_all(dir)?;
    write_atomically(artifact, compiled)?;
    write_atomically(
        &sidecar(artifact),
        hex::encode(Sha256::digest(compiled)).as_bytes(),
    )
}

fn write_atomically(path: &Path, contents: &[u8]) -> std::io::Result<()> {
    let tmp = path.with_extension(format!("tmp{}", std::process::id()));
    let mut file = fs::File::create(&tmp)?;
    file.write_all(contents)?;
    file.sync_all()?;
    fs::rename(&tmp, path)
}
