//! Property tests of the checkpoint format: damaged files are errors, and a manifest verifies its
//! files until any byte changes.

use super::*;
use proptest::prelude::*;

proptest! {
    /// Arbitrary bytes in any checkpoint file give an error, never a panic.
    #[test]
    fn damaged_checkpoint_files_are_errors(
        manifest in proptest::collection::vec(any::<u8>(), 0..512),
        state in proptest::collection::vec(any::<u8>(), 0..512),
        model in proptest::collection::vec(any::<u8>(), 0..512),
    ) {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(MANIFEST), &manifest).unwrap();
        std::fs::write(dir.path().join(STATE), &state).unwrap();
        std::fs::write(dir.path().join(MODEL), &model).unwrap();
        prop_assert!(verify(dir.path(), Position::after_epoch(1)).is_err());
        prop_assert!(CheckpointState::from_json(&state).is_err());
    }

    /// A manifest that lists the files with their real hashes verifies, and changing any
    /// byte of any file makes it fail.
    #[test]
    fn manifests_round_trip_and_catch_any_changed_byte(
        model in proptest::collection::vec(any::<u8>(), 1..256),
        flip in any::<prop::sample::Index>(),
    ) {
        let dir = tempfile::tempdir().unwrap();
        let state = CheckpointState {
            epochs_done: 1,
            history: Vec::new(),
            train_seconds: 1.5,
            config: RunConfig::default(),
            diagnostics: Vec::new(),
            partial: None,
        };
        std::fs::write(dir.path().join(MODEL), &model).unwrap();
        std::fs::write(dir.path().join(OPTIMIZER), b"optimizer").unwrap();
        std::fs::write(dir.path().join(STATE), state.to_json()).unwrap();
        let mut files = BTreeMap::new();
        for name in [MODEL, OPTIMIZER, STATE] {
            files.insert(name.to_string(), entry(&dir.path().join(name)).unwrap());
        }
        let manifest = Manifest { format: FORMAT_VERSION, epoch: 1, step: None, files };
        std::fs::write(dir.path().join(MANIFEST), serde_json::to_vec(&manifest).unwrap()).unwrap();
        let verified = verify(dir.path(), Position::after_epoch(1)).unwrap();
        prop_assert_eq!(verified.model, model.clone());
        prop_assert_eq!(verified.state.train_seconds, 1.5);
        let mut changed = model.clone();
        let at = flip.index(changed.len());
        changed[at] ^= 0x01;
        std::fs::write(dir.path().join(MODEL), &changed).unwrap();
        prop_assert!(verify(dir.path(), Position::after_epoch(1)).unwrap_err().to_string().contains("model.bpk is damaged"));
    }
}
