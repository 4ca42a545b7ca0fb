//! `fmnist import` from arbitrary bytes, into the default MLP: an error or weights, never a
//! panic, within the safetensors limits of `actlab_train::export`.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|bytes: &[u8]| {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("fuzz.safetensors");
    std::fs::write(&path, bytes).unwrap();
    let config =
        actlab_train::RunConfig::parse("[model]\nkind = \"mlp\"\nhidden = [8]", "fuzz", &[])
            .unwrap();
    let model = config.model.init(&actlab_train::Backend::Flex.device());
    let _ = actlab_train::export::import_safetensors(model, &path);
});
