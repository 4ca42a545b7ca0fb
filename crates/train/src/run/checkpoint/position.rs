//! Where in a run a checkpoint was taken, and the directory name that says so.

/// Where in a run a checkpoint was taken: after `epochs_done` whole epochs and `steps_done`
/// steps of the next one. Ordered as training goes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Position {
    /// Epochs finished.
    pub epochs_done: usize,
    /// Steps done of the epoch after them (0 at an epoch's end).
    pub steps_done: usize,
}

impl Position {
    /// The end of epoch `epoch`.
    pub fn after_epoch(epoch: usize) -> Self {
        Self {
            epochs_done: epoch,
            steps_done: 0,
        }
    }

    /// The checkpoint directory's name: `epoch-0003`, or `epoch-0004-step-000120`.
    pub(super) fn dir_name(self) -> String {
        match self.steps_done {
            0 => format!("epoch-{:04}", self.epochs_done),
            steps => format!("epoch-{:04}-step-{steps:06}", self.epochs_done + 1),
        }
    }

    /// The inverse of [`dir_name`](Self::dir_name); `None` for any other name.
    pub(super) fn parse_dir_name(name: &str) -> Option<Self> {
        let rest = name.strip_prefix("epoch-")?;
        let digits = |text: &str| -> Option<usize> {
            text.bytes()
                .all(|b| b.is_ascii_digit())
                .then(|| text.parse().ok())?
        };
        match rest.split_once("-step-") {
            None => Some(Self::after_epoch(digits(rest)?)),
            Some((epoch, step)) => Self::within(digits(epoch)?, digits(step)?),
        }
    }

    /// After `step` steps of epoch `epoch` (1-based); `None` when that is no such position.
    pub(super) fn within(epoch: usize, step: usize) -> Option<Self> {
        (epoch >= 1 && step >= 1).then(|| Self {
            epochs_done: epoch - 1,
            steps_done: step,
        })
    }

    /// What the manifest records: (epoch, step).
    pub(super) fn manifest_fields(self) -> (usize, Option<usize>) {
        match self.steps_done {
            0 => (self.epochs_done, None),
            steps => (self.epochs_done + 1, Some(steps)),
        }
    }
}

impl std::fmt::Display for Position {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.steps_done {
            0 => write!(f, "after epoch {}", self.epochs_done),
            steps => write!(f, "at step {steps} of epoch {}", self.epochs_done + 1),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        /// Directory names and positions map one to one, in training order.
        #[test]
        fn positions_round_trip_through_directory_names(
            epochs_done in 0usize..20_000,
            steps_done in 0usize..2_000_000,
        ) {
            let position = Position { epochs_done, steps_done };
            prop_assert_eq!(Position::parse_dir_name(&position.dir_name()), Some(position));
            let later = Position { epochs_done: epochs_done + 1, steps_done: 0 };
            prop_assert!(later > position);
        }
    }

    #[test]
    fn checkpoint_names_sort_as_training_goes() {
        let names = [
            "epoch-0002",
            "epoch-0003-step-000005",
            "epoch-0003",
            "epoch-0001",
        ];
        let mut positions: Vec<Position> = names
            .iter()
            .map(|n| Position::parse_dir_name(n).unwrap())
            .collect();
        positions.sort();
        let sorted: Vec<String> = positions.iter().map(|p| p.dir_name()).collect();
        assert_eq!(
            sorted,
            [
                "epoch-0001",
                "epoch-0002",
                "epoch-0003-step-000005",
                "epoch-0003"
            ]
        );
        assert_eq!(positions[2].to_string(), "at step 5 of epoch 3");
        for name in [
            "epoch-0003-step-000000",
            "epoch-0000-step-000004",
            "epoch-+3",
            "epoch-0003.partial",
            "epoch-0003-step-",
        ] {
            assert_eq!(Position::parse_dir_name(name), None, "{name}");
        }
    }
}
