//! Untrusted input never panics: arbitrary bytes for the IDX reader, arbitrary text for the
//! run config (file and `--set`) and for activation configs, with round trips where the input
//! is valid; mutated bytes (changed and cut short) of valid files for the run-directory loader
//! (weights, config, summary, metrics), safetensors import and the PNG reader. The checkpoint manifest and state readers have theirs beside them
//! (`src/run/checkpoint.rs`).
use actlab_train::RunConfig;
use actlab_train::data::idx::{
    MAX_DECOMPRESSED, encode, parse_images, parse_labels, read_maybe_gz,
};
use proptest::prelude::*;

fn gzip(bytes: &[u8]) -> Vec<u8> {
    use std::io::Write;
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    encoder.write_all(bytes).unwrap();
    encoder.finish().unwrap()
}

/// `bytes` written to a temporary `.gz` file and read back through the reader.
fn read_gz(bytes: &[u8]) -> Result<Vec<u8>, actlab_train::data::DataError> {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("file.gz");
    std::fs::write(&path, bytes).unwrap();
    read_maybe_gz(&path)
}

/// A gzip bomb: a small `.gz` file whose IDX header claims one image, followed by 64 MiB of
/// zeros. Only what the header promises (plus one byte, to report "too long") is decompressed.
#[test]
fn gzip_bombs_are_decompressed_only_as_far_as_the_header_promises() {
    let mut idx = encode(&[1, 28, 28], &[0; 784]);
    idx.resize(64 << 20, 0);
    let bomb = gzip(&idx);
    assert!(bomb.len() < 200_000, "{}", bomb.len());
    let bytes = read_gz(&bomb).unwrap();
    assert_eq!(bytes.len(), 16 + 784 + 1);
    let error = parse_images(&bytes, "bomb").unwrap_err().to_string();
    assert!(error.contains("too long"), "{error}");

    // A header that claims 2^32 - 1 images is refused before anything past it is read.
    let mut header = vec![0, 0, 8, 3];
    for d in [u32::MAX, 28, 28] {
        header.extend(d.to_be_bytes());
    }
    header.resize(1 << 20, 0);
    let error = read_gz(&gzip(&header)).unwrap_err();
    assert!(
        matches!(error, actlab_train::data::DataError::TooLarge { limit, .. } if limit == MAX_DECOMPRESSED),
        "{error}"
    );
}

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

    /// Arbitrary bytes behind the gzip magic are an error or a bounded result, never a panic;
    /// gzipped IDX files round-trip.
    #[test]
    fn gzip_reader_never_panics_and_round_trips(
        tail in proptest::collection::vec(any::<u8>(), 0..512),
        labels in proptest::collection::vec(0u8..=9, 0..512),
    ) {
        let mut bytes = vec![0x1f, 0x8b];
        bytes.extend(&tail);
        if let Ok(out) = read_gz(&bytes) {
            prop_assert!((out.len() as u64) < MAX_DECOMPRESSED);
        }
        let idx = encode(&[labels.len()], &labels);
        prop_assert_eq!(read_gz(&gzip(&idx)).unwrap(), idx);
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

/// A valid file with `flips` bytes changed (position, new value) and possibly cut short: the
/// mutations that a bad copy, a full disk or a hostile sender produce.
fn mutate(valid: &[u8], flips: &[(usize, u8)], cut: Option<usize>) -> Vec<u8> {
    let mut bytes = valid.to_vec();
    for &(at, value) in flips {
        let len = bytes.len();
        if len > 0 {
            bytes[at % len] = value;
        }
    }
    if let Some(cut) = cut {
        bytes.truncate(cut % (valid.len() + 1));
    }
    bytes
}

fn mutations() -> impl Strategy<Value = (Vec<(usize, u8)>, Option<usize>)> {
    (
        proptest::collection::vec((any::<usize>(), any::<u8>()), 0..8),
        proptest::option::of(any::<usize>()),
    )
}

/// A small trained-looking run: a tiny CNN's weights, config and summary, written as a
/// finished run writes them but without the SHA-256s (as runs of older versions have), so
/// mutated bytes reach the readers instead of being stopped by the checksum.
fn tiny_run() -> (tempfile::TempDir, actlab_train::RunConfig) {
    let config = RunConfig::parse(
        "[model]\nkind = \"cnn\"\nchannels = [2]\nhidden = [4]\nactivation = \"prelu\"",
        "tiny.toml",
        &[],
    )
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let data = common::synthetic_splits();
    let mut tiny = config.clone();
    tiny.train.epochs = 1;
    actlab_train::train_on(
        &tiny,
        &data,
        &common::options(dir.path(), actlab_train::Backend::Flex, false),
    )
    .unwrap();
    let summary_path = dir.path().join("summary.json");
    let mut summary: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&summary_path).unwrap()).unwrap();
    for key in ["model_sha256", "config_sha256", "metrics_sha256"] {
        summary.as_object_mut().unwrap().remove(key);
    }
    std::fs::write(&summary_path, serde_json::to_vec(&summary).unwrap()).unwrap();
    (dir, tiny)
}

mod common;

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// Mutated weights, config and summary of a run directory: loading it is an error or a
    /// model, never a panic.
    #[test]
    fn run_directory_loader_never_panics_on_mutated_files(
        file in prop::sample::select(vec!["model.bpk", "config.toml", "summary.json", "metrics.csv"]),
        (flips, cut) in mutations(),
    ) {
        let (dir, _) = tiny_run();
        let path = dir.path().join(file);
        let valid = std::fs::read(&path).unwrap();
        std::fs::write(&path, mutate(&valid, &flips, cut)).unwrap();
        let _ = actlab_train::run::load_trained(dir.path(), actlab_train::Backend::Flex);
        let _ = actlab_train::run::verify::verify(dir.path(), None);
        let _ = actlab_train::report::collect_runs(&[dir.path().to_path_buf()]);
    }

    /// Mutated safetensors (what `fmnist import` reads from strangers): an error or a
    /// model, never a panic.
    #[test]
    fn safetensors_import_never_panics_on_mutated_files((flips, cut) in mutations()) {
        let config = RunConfig::parse(
            "[model]\nkind = \"cnn\"\nchannels = [2]\nhidden = [4]",
            "tiny.toml",
            &[],
        )
        .unwrap();
        let device = actlab_train::Backend::Flex.device();
        let model = config.model.init(&device);
        let valid = actlab_train::export::safetensors_bytes(&model, &config.to_toml()).unwrap();
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("weights.safetensors");
        std::fs::write(&path, mutate(&valid, &flips, cut)).unwrap();
        let _ = actlab_train::export::config_in(&path);
        let _ = actlab_train::export::import_safetensors(config.model.init(&device), &path);
    }
}

#[cfg(feature = "image")]
proptest! {
    /// Mutated PNGs (what `fmnist predict` reads): 28×28 grayscale bytes or an error, never
    /// a panic.
    #[test]
    fn png_reader_never_panics_on_mutated_files((flips, cut) in mutations(), rgb in any::<bool>()) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("image.png");
        let (color, channels) = if rgb {
            (png::ColorType::Rgb, 3)
        } else {
            (png::ColorType::Grayscale, 1)
        };
        let mut valid = Vec::new();
        {
            let mut encoder = png::Encoder::new(&mut valid, 28, 28);
            encoder.set_color(color);
            encoder.set_depth(png::BitDepth::Eight);
            let pixels: Vec<u8> = (0..784 * channels).map(|i| (i % 251) as u8).collect();
            encoder.write_header().unwrap().write_image_data(&pixels).unwrap();
        }
        std::fs::write(&path, mutate(&valid, &flips, cut)).unwrap();
        if let Ok(pixels) = actlab_train::data::image::load_png(&path, false) {
            prop_assert_eq!(pixels.len(), 784);
        }
    }
}

/// Cases that were refused when tried by hand, kept as regressions: a config nested 20,000
/// deep (the TOML parser's recursion limit, not a stack overflow), and a safetensors file
/// whose header claims 2^62 bytes (refused from the 8-byte length, nothing allocated).
#[test]
fn deep_configs_and_huge_safetensors_headers_are_errors() {
    let depth = 20_000;
    let text = format!("[train]\nlr = {}{}", "[".repeat(depth), "]".repeat(depth));
    let error = RunConfig::parse(&text, "deep.toml", &[])
        .unwrap_err()
        .to_string();
    assert!(error.contains("deep.toml"), "{error}");
    let text = format!("x = {}1{}", "{ a = ".repeat(depth), " }".repeat(depth));
    assert!(RunConfig::parse(&text, "deep.toml", &[]).is_err());

    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("huge.safetensors");
    let mut bytes = (1u64 << 62).to_le_bytes().to_vec();
    bytes.extend_from_slice(b"{\"a\":1}");
    std::fs::write(&path, bytes).unwrap();
    let config = RunConfig::parse("[model]\nkind = \"cnn\"", "tiny.toml", &[]).unwrap();
    let model = config.model.init(&actlab_train::Backend::Flex.device());
    let error = actlab_train::export::import_safetensors(model, &path)
        .unwrap_err()
        .to_string();
    assert!(error.contains("huge.safetensors"), "{error}");
}

/// Each named limit on configs, at its edge: the text at the limit passes the check (whatever
/// else is wrong with it is another error), one past is refused naming the limit.
#[test]
fn config_limits_hold_at_their_edges() {
    use actlab_train::config::{MAX_CONFIG_BYTES, MAX_CONFIG_NESTING};
    let parse = |text: &str| {
        RunConfig::parse(text, "edge.toml", &[])
            .map(|_| ())
            .map_err(|e| actlab_train::error_chain(&e))
    };
    // Size: a valid config padded with a comment to exactly the limit, then one byte more.
    let valid = "[train]\nepochs = 1\n#";
    let at_limit = format!("{valid}{}", "x".repeat(MAX_CONFIG_BYTES - valid.len()));
    assert_eq!(at_limit.len(), MAX_CONFIG_BYTES);
    assert_eq!(parse(&at_limit), Ok(()));
    let error = parse(&format!("{at_limit}x")).unwrap_err();
    assert!(
        error.contains("MAX_CONFIG_BYTES") && error.contains("edge.toml"),
        "{error}"
    );

    // Nesting: the top-level table is 1, each array around the value one more.
    let nested = |depth: usize| {
        let arrays = depth - 1;
        format!("x = {}1{}", "[".repeat(arrays), "]".repeat(arrays))
    };
    let error = parse(&nested(MAX_CONFIG_NESTING)).unwrap_err();
    assert!(!error.contains("MAX_CONFIG_NESTING"), "{error}");
    assert!(error.contains("unknown field `x`"), "{error}");
    let error = parse(&nested(MAX_CONFIG_NESTING + 1)).unwrap_err();
    assert!(
        error.contains("MAX_CONFIG_NESTING") && error.contains("nested 9 deep"),
        "{error}"
    );

    // A file: read no further than one byte past the limit, whatever it is.
    let dir = tempfile::tempdir().unwrap();
    let big = dir.path().join("big.toml");
    std::fs::write(&big, format!("{at_limit}x")).unwrap();
    for path in [big.as_path(), std::path::Path::new("/dev/zero")] {
        let error = actlab_train::error_chain(&RunConfig::load(path, &[]).unwrap_err());
        assert!(error.contains("MAX_CONFIG_BYTES"), "{error}");
    }
}

/// A safetensors file whose header declares one tensor of `shape`, with `header_padding`
/// spaces after the JSON (safetensors pads headers with spaces).
fn safetensors_declaring(shape: &str, header_padding: usize) -> Vec<u8> {
    let mut header =
        format!(r#"{{"w":{{"dtype":"F32","shape":{shape},"data_offsets":[0,4]}}}}"#).into_bytes();
    header.resize(header.len() + header_padding, b' ');
    let mut bytes = (header.len() as u64).to_le_bytes().to_vec();
    bytes.extend_from_slice(&header);
    bytes.extend_from_slice(&[0; 4]);
    bytes
}

/// Each named limit on safetensors imports, at its edge (refused naming the limit only past
/// it), and a file over the size limit refused before it is read (a sparse file, so the test
/// writes nothing).
#[test]
fn safetensors_limits_hold_at_their_edges() {
    use actlab_train::export::{
        MAX_SAFETENSORS_BYTES, MAX_SAFETENSORS_HEADER_BYTES, MAX_TENSOR_ELEMENTS,
    };
    let dir = tempfile::tempdir().unwrap();
    let import = |bytes: &[u8]| {
        let path = dir.path().join("edge.safetensors");
        std::fs::write(&path, bytes).unwrap();
        let config = RunConfig::parse("[model]\nkind = \"mlp\"", "tiny.toml", &[]).unwrap();
        let model = config.model.init(&actlab_train::Backend::Flex.device());
        actlab_train::error_chain(
            &actlab_train::export::import_safetensors(model, &path).unwrap_err(),
        )
    };
    // Elements: exactly the limit is not refused by it (the offsets are wrong: another error).
    let error = import(&safetensors_declaring(
        &format!("[{MAX_TENSOR_ELEMENTS}]"),
        0,
    ));
    assert!(!error.contains("MAX_TENSOR_ELEMENTS"), "{error}");
    assert!(error.contains("not a valid safetensors file"), "{error}");
    let error = import(&safetensors_declaring(
        &format!("[{}]", MAX_TENSOR_ELEMENTS + 1),
        0,
    ));
    assert!(error.contains("MAX_TENSOR_ELEMENTS"), "{error}");
    // A shape whose product overflows u64.
    let error = import(&safetensors_declaring("[4294967296,4294967296,2]", 0));
    assert!(error.contains("MAX_TENSOR_ELEMENTS"), "{error}");

    // Found by `cargo fuzz run safetensors`: a header length of 2^64 - 1 overflowed the end
    // of the header's range in the limit check itself.
    let error = import(&[255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 1]);
    assert!(error.contains("not a valid safetensors file"), "{error}");

    // Header: padded to exactly the limit, then one byte more.
    let unpadded = safetensors_declaring("[1]", 0).len() - 8 - 4;
    let at_limit = MAX_SAFETENSORS_HEADER_BYTES as usize - unpadded;
    let error = import(&safetensors_declaring("[1]", at_limit));
    assert!(!error.contains("MAX_SAFETENSORS_HEADER_BYTES"), "{error}");
    assert!(error.contains("does not fit the model"), "{error}");
    let error = import(&safetensors_declaring("[1]", at_limit + 1));
    assert!(error.contains("MAX_SAFETENSORS_HEADER_BYTES"), "{error}");

    // Size: one byte over, as a sparse file.
    let path = dir.path().join("huge.safetensors");
    let file = std::fs::File::create(&path).unwrap();
    file.set_len(MAX_SAFETENSORS_BYTES + 1).unwrap();
    let config = RunConfig::parse("[model]\nkind = \"mlp\"", "tiny.toml", &[]).unwrap();
    let model = config.model.init(&actlab_train::Backend::Flex.device());
    let error = actlab_train::error_chain(
        &actlab_train::export::import_safetensors(model, &path).unwrap_err(),
    );
    assert!(
        error.contains("MAX_SAFETENSORS_BYTES") && error.contains("huge.safetensors"),
        "{error}"
    );
}
