//! IDX images and labels from arbitrary bytes: an error or the data, never a panic.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|bytes: &[u8]| {
    let _ = actlab_train::data::idx::parse_images(bytes, "fuzz");
    let _ = actlab_train::data::idx::parse_labels(bytes, "fuzz");
});
