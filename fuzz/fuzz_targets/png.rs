//! `fmnist predict`'s PNG path from arbitrary bytes: an error or a 28×28 image, never a panic,
//! within `MAX_IMAGE_SIDE`.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|bytes: &[u8]| {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("fuzz.png");
    std::fs::write(&path, bytes).unwrap();
    if let Ok(pixels) = actlab_train::data::image::load_png(&path, false) {
        assert_eq!(pixels.len(), 28 * 28);
    }
});
