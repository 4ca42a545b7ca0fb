//! Run and compare configs from arbitrary text: an error or a config, never a panic, within
//! `MAX_CONFIG_BYTES` and `MAX_CONFIG_NESTING`.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|text: &str| {
    let _ = actlab_train::RunConfig::parse(text, "fuzz.toml", &[]);
    let _ = actlab_train::sweep::CompareConfig::parse(text, "fuzz.toml", &[]);
});
