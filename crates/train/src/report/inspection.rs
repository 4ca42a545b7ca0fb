//! `fmnist inspect`'s output directory: `summary.json` (the whole [`Inspection`]),
//! `report.md` and its figures.
use std::fmt::Write;
use std::path::Path;

use super::ReportError;
use super::plots::{class_channel_map, densities, prelu_slopes};
use crate::data::CLASS_NAMES;
use crate::inspect::{Inspection, SlotInspection};
use crate::run::RunError;
use crate::run::dir::write_atomic;

/// Writes `summary.json`, `report.md` and the figures of `inspection` (of the run `run`,
/// described by `model`) into `out`.
pub fn write_inspection(
    inspection: &Inspection,
    run: &Path,
    model: &str,
    out: &Path,
) -> Result<(), ReportError> {
    std::fs::create_dir_all(out).map_err(RunError::io("create", out))?;
    let json = serde_json::to_string_pretty(inspection).expect("an inspection serialises");
    write_atomic(&out.join("summary.json"), json.as_bytes())?;

    let mut md = String::new();
    let _ = writeln!(
        md,
        "# What the activations of `{}` do\n\n{model}; {} test images. `summary.json` holds \
         every number below and the histograms.\n",
        run.display(),
        inspection.images
    );
    let _ = writeln!(
        md,
        "| slot | activation | units | dead | exact zeros | learned |\n|---|---|---:|---:|---:|---|"
    );
    for slot in &inspection.slots {
        let _ = writeln!(
            md,
            "| {} | {} | {} | {:.1}% | {:.1}% | {} |",
            slot.slot,
            slot.activation,
            slot.channels,
            100.0 * slot.dead_fraction,
            100.0 * slot.zero_fraction,
            learned_cell(slot)
        );
    }
    let _ = writeln!(
        md,
        "\nDead: units (channels or neurons) never positive on any test image. Exact zeros: the \
         share of outputs that are 0.\n\n![pre-activations](preactivations.png)\n"
    );
    let pre: Vec<(String, &_)> = inspection
        .slots
        .iter()
        .map(|s| (s.slot.clone(), &s.preactivation))
        .collect();
    densities(
        &pre,
        "Pre-activation distribution per slot (test set)",
        "activation input",
        &out.join("preactivations"),
    )?;

    let prelu: Vec<(String, Vec<f32>)> = inspection
        .slots
        .iter()
        .filter_map(|s| Some((s.slot.clone(), s.prelu_slopes.clone()?)))
        .collect();
    if !prelu.is_empty() {
        prelu_slopes(&prelu, &out.join("prelu_slopes"))?;
        let _ = writeln!(
            md,
            "## PReLU\n\nThe learned negative slopes (PyTorch's default initial value is 0.25; \
             the run's config has its own).\n\n\
             ![PReLU slopes](prelu_slopes.png)\n"
        );
    }

    for slot in &inspection.slots {
        let Some(alpha) = &slot.aprelu else { continue };
        let stem = format!("aprelu_{}", slot.slot);
        let mut series = vec![("all classes".to_string(), &alpha.histogram)];
        series.extend(
            CLASS_NAMES
                .iter()
                .zip(&alpha.class_histograms)
                .map(|(name, h)| (name.to_string(), h)),
        );
        densities(
            &series,
            &format!("APReLU {}: per-sample, per-channel slope α", slot.slot),
            "α",
            &out.join(format!("{stem}_alpha")),
        )?;
        class_channel_map(
            &alpha.class_means,
            &CLASS_NAMES,
            &format!("APReLU {}: mean α per class and channel", slot.slot),
            &out.join(format!("{stem}_classes")),
        )?;
        let _ = writeln!(
            md,
            "## APReLU `{slot}`\n\nMean α {mean:.3}. Spread of α: {within:.3} between the samples \
             of one class, {between:.3} between classes, {channels:.3} between channels \
             (standard deviations). {verdict}\n\n![α distribution]({stem}_alpha.png)\n\
             ![α per class and channel]({stem}_classes.png)\n",
            slot = slot.slot,
            mean = alpha.mean,
            within = alpha.within_class_std,
            between = alpha.between_class_std,
            channels = alpha.between_channel_std,
            verdict = verdict(alpha.within_class_std, alpha.between_class_std),
        );
    }
    write_atomic(&out.join("report.md"), md.as_bytes())?;
    Ok(())
}

/// What a slot learned, in a table cell.
pub(crate) fn learned_cell(slot: &SlotInspection) -> String {
    if let Some(slopes) = &slot.prelu_slopes {
        let (low, high) = slopes
            .iter()
            .fold((f32::MAX, f32::MIN), |(lo, hi), &v| (lo.min(v), hi.max(v)));
        let mean = slopes.iter().sum::<f32>() / slopes.len().max(1) as f32;
        return if slopes.len() == 1 {
            format!("slope {mean:.3}")
        } else {
            format!("slopes {low:.3} … {high:.3} (mean {mean:.3})")
        };
    }
    match &slot.aprelu {
        Some(alpha) => format!(
            "α mean {:.3}, spread within classes {:.3}, between classes {:.3}",
            alpha.mean, alpha.within_class_std, alpha.between_class_std
        ),
        None => String::new(),
    }
}

/// The paper's claim, checked in words: does each sample get its own transformation? The
/// share of α's variance across samples that lies within classes says how much of it the class
/// alone does not explain.
fn verdict(within: f64, between: f64) -> String {
    if within < 1e-3 && between < 1e-3 {
        return "α is practically constant: this slot applies one fixed slope per channel, like \
                PReLU."
            .into();
    }
    let share = 100.0 * within * within / (within * within + between * between);
    if share >= 60.0 {
        format!(
            "{share:.0}% of α's variance across samples lies within classes: each sample gets \
             its own slopes, well beyond what its class implies."
        )
    } else if share >= 40.0 {
        format!(
            "α's variance across samples splits about evenly: {share:.0}% within classes, the \
             rest between them. The slopes follow both the class and the individual sample."
        )
    } else {
        format!(
            "Only {share:.0}% of α's variance across samples lies within classes: the slopes \
             mainly follow the class."
        )
    }
}
