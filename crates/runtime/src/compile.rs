//! Bounding what compiling a component may cost the host.
//!
//! Cranelift's time and memory grow with the size of each function and, faster than
//! linearly, with its locals and control flow: a 429 KB hand-made component took 23 s
//! and 2 GB to compile. Two bounds, chosen over compiling in a child process with
//! rlimits (which bounds memory exactly, but costs a process and an engine per compile
//! and a second copy of the artifact through a pipe, and needs the `sluice` binary at
//! hand, which library users and tests do not have):
//!
//! 1. **Shape limits before compiling** ([`check_shape`]): a single pass of `wasmparser`
//!    over the component (no validation, no code generation) refuses one with more
//!    functions, a larger function body or more locals in one function than
//!    [`ShapeLimits`] allows. The limits are ~4x what the largest real plugins (a
//!    Python interpreter, a JavaScript engine) need; their cost on a normal load is
//!    measured in BENCHMARKS.md ("Hardening: loading and memory").
//! 2. **A time bound** ([`COMPILE_TIMEOUT`]): the compile runs on a thread of its own
//!    and the load stops waiting after the timeout, refusing the plugin. The thread
//!    cannot be cancelled (Cranelift has no cancellation point); it finishes in the
//!    background and its result is dropped. Loads are concurrent, so a slow compile
//!    delays only its own plugin.

use std::time::Duration;

use wasmparser::{Parser, Payload};

use super::RuntimeError;

/// The most a compile may take before the load is refused. A 40 MB Python interpreter
/// compiles in ~14 s in a debug build on a loaded CI machine; 120 s is far beyond any
/// real plugin while still ending a compile bomb's hold on a deploy.
pub const COMPILE_TIMEOUT: Duration = Duration::from_secs(120);

/// The largest shape a component may have (see the module docs).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ShapeLimits {
    /// Functions with bodies, over all core modules of the component.
    pub functions: u64,
    /// Bytes of one function body.
    pub function_body_bytes: u64,
    /// Locals declared by one function.
    pub function_locals: u64,
}

impl Default for ShapeLimits {
    fn default() -> Self {
        // Measured on the plugins in this repository (BENCHMARKS.md, "Hardening:
        // loading and memory"): at most 14,773 functions (Python), a largest body of
        // 397 KB and 2,542 locals in one function (both Python's interpreter loop).
        // 4-5x over the body and the locals; 13x over the function count, which
        // costs compile time only linearly.
        Self {
            functions: 200_000,
            function_body_bytes: 2 << 20,
            function_locals: 10_000,
        }
    }
}

/// The measured shape of a component, for [`check_shape`] and the benchmark.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Shape {
    pub functions: u64,
    /// Bytes of all function bodies together.
    pub code_bytes: u64,
    pub largest_body_bytes: u64,
    pub most_locals: u64,
}

/// Measures a component's functions (all nested core modules) without validating it.
pub fn measure(bytes: &[u8]) -> Result<Shape, String> {
    let mut shape = Shape::default();
    for payload in Parser::new(0).parse_all(bytes) {
        let payload = payload.map_err(|e| e.to_string())?;
        if let Payload::CodeSectionEntry(body) = payload {
            shape.functions += 1;
            let size = body.range().len() as u64;
            shape.code_bytes += size;
            shape.largest_body_bytes = shape.largest_body_bytes.max(size);
            let mut locals = 0u64;
            let mut reader = body.get_locals_reader().map_err(|e| e.to_string())?;
            for _ in 0..reader.get_count() {
                let (count, _) = reader.read().map_err(|e| e.to_string())?;
                locals = locals.saturating_add(u64::from(count));
            }
            shape.most_locals = shape.most_locals.max(locals);
        }
    }
    Ok(shape)
}

/// Refuses a component whose shape passes `limits`, naming the limit; its shape otherwise.
pub fn check_shape(
    bytes: &[u8],
    origin: &str,
    limits: &ShapeLimits,
) -> Result<Shape, RuntimeError> {
    let refused = |detail: String| RuntimeError::TooComplex {
        origin: origin.to_owned(),
        detail,
    };
    let shape = measure(bytes).map_err(|detail| RuntimeError::NotAComponent {
        origin: origin.to_owned(),
        detail,
    })?;
    if shape.functions > limits.functions {
        return Err(refused(format!(
            "{} functions, over the limit of {}",
            shape.functions, limits.functions
        )));
    }
    if shape.largest_body_bytes > limits.function_body_bytes {
        return Err(refused(format!(
            "a function body of {} bytes, over the limit of {}",
            shape.largest_body_bytes, limits.function_body_bytes
        )));
    }
    if shape.most_locals > limits.function_locals {
        return Err(refused(format!(
            "a function with {} locals, over the limit of {}",
            shape.most_locals, limits.function_locals
        )));
    }
    Ok(shape)
}

/// Runs `compile` on a thread of its own and waits at most `timeout` for it.
pub fn with_timeout<T: Send + 'static>(
    origin: &str,
    timeout: Duration,
    compile: impl FnOnce() -> T + Send + 'static,
) -> Result<T, RuntimeError> {
    let (done, result) = std::sync::mpsc::sync_channel(1);
    std::thread::Builder::new()
        .name("sluice-compile".into())
        .spawn(move || {
            let _ = done.send(compile());
        })
        .map_err(|e| RuntimeError::Engine(format!("starting a compile thread: {e}")))?;
    result
        .recv_timeout(timeout)
        .map_err(|_| RuntimeError::TooComplex {
            origin: origin.to_owned(),
            detail: format!(
                "compiling took longer than {} s; refused (the compile finishes in the background)",
                timeout.as_secs()
            ),
        })
}
