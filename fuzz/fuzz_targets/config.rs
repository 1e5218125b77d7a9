//! Configuration text: the host's config, a team's plugin manifest (read again at every
//! hot reload, so a panic there would stop every team's deploys) and a capture config.
//! Each is accepted or refused with an error naming the file, never a panic.
#![no_main]

use std::path::Path;

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&which, rest)) = data.split_first() else {
        return;
    };
    let Ok(text) = std::str::from_utf8(rest) else {
        return;
    };
    match which % 3 {
        0 => {
            if let Err(error) = sluice::config::parse(text, "fuzz.toml", Path::new("/nonexistent"))
            {
                assert!(error.to_string().contains("fuzz.toml"), "{error}");
            }
        }
        1 => {
            let manifest = Path::new("/nonexistent/plugins/team.toml");
            if let Err(error) = sluice_pipeline::manifest::parse_manifest(manifest, text) {
                assert!(error.to_string().contains("team.toml"), "{error}");
            }
        }
        _ => {
            if let Err(error) = sluice_capture::config::parse_any(text, "capture.toml") {
                assert!(error.to_string().contains("capture.toml"), "{error}");
            }
        }
    }
});
