//! Untrusted input never panics: arbitrary bytes for the IDX reader, arbitrary text for the
//! run config (file and `--set`) and for activation configs, with round trips where the input
//! is valid. The checkpoint manifest and state readers have theirs beside them
//! (`src/run/checkpoint.rs`).
use proptest::prelude::*;
use train::RunConfig;
use train::data::idx::{encode, parse_images, parse_labels};

proptest! {
    #[test]
    fn idx_reader_never_panics_on_arbitrary_bytes(bytes in proptest::collection::vec(any::<u8>(), 0..2048)) {
        let _ = parse_images(&bytes, "fuzz");
        let _ = parse_labels(&bytes, "fuzz");
    }

    /// A header that claims up to 2^32 - 1 images over a short body is refused by comparing
    /// lengths, before any buffer of the claimed size exists.
    #[test]
    fn idx_headers_cannot_claim_more_than_the_file_holds(
        count in any::<u32>(),
        body in proptest::collection::vec(any::<u8>(), 0..4096),
    ) {
        let mut bytes = vec![0, 0, 8, 3];
        for d in [count, 28, 28] {
            bytes.extend(d.to_be_bytes());
        }
        bytes.extend(&body);
        let parsed = parse_images(&bytes, "fuzz");
        prop_assert_eq!(parsed.is_ok(), count as usize * 784 == body.len());
    }

    #[test]
    fn idx_labels_round_trip(labels in proptest::collection::vec(0u8..=9, 0..512)) {
        let bytes = encode(&[labels.len()], &labels);
        prop_assert_eq!(parse_labels(&bytes, "fuzz").unwrap(), labels);
    }

    #[test]
    fn run_config_text_never_panics(text in "\\PC{0,200}") {
        let _ = RunConfig::parse(&text, "fuzz.toml", &[]);
    }

    #[test]
    fn set_overrides_never_panic(assignment in "[a-z_.]{0,20}=?\\PC{0,30}") {
        let _ = RunConfig::parse("", "fuzz.toml", &[assignment]);
    }

    /// Configs that parse serialise back to themselves.
    #[test]
    fn activation_configs_never_panic_and_round_trip(
        kind in prop::sample::select(activations::ActivationConfig::names()),
        key in "[a-z_]{1,14}",
        value in prop_oneof![any::<f64>().prop_map(|v| v.to_string()), Just("true".into()), "\\PC{0,8}".prop_map(|s| format!("{s:?}"))],
    ) {
        let text = format!("kind = {kind:?}\n{key} = {value}");
        if let Ok(config) = toml::from_str::<activations::ActivationConfig>(&text) {
            let back = toml::to_string(&config).unwrap();
            prop_assert_eq!(toml::from_str::<activations::ActivationConfig>(&back).unwrap(), config);
        }
    }
}
