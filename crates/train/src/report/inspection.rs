//! `fmnist inspect`'s output directory: `summary.json` (the whole [`Inspection`]),
//! `report.md` and its figures.
use std::fmt::Write;
use std::path::Path;

use super::ReportError;
use super::plots::{class_channel_map, densities, learned_curves, per_channel, prelu_slopes};
use crate::data::CLASS_NAMES;
use crate::inspect::{AlphaSummary, Inspection, SlotInspection};
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

    let learned: Vec<&SlotInspection> = inspection
        .slots
        .iter()
        .filter(|s| s.curves.is_some())
        .collect();
    if !learned.is_empty() {
        let _ = writeln!(
            md,
            "## Learned curves\n\nEach slot's learned function on [-4, 4] (one line per \
             channel where the parameters are per channel), over the function it started as \
             where that is known (dashed: PAU's least-squares fit).\n"
        );
    }
    for slot in learned {
        let curves = slot.curves.as_ref().expect("filtered");
        let stem = format!("curve_{}", slot.slot);
        let title = format!("{} ({}): learned activation", slot.slot, slot.activation);
        learned_curves(curves, &title, &out.join(&stem))?;
        let _ = writeln!(md, "![{} learned curve]({stem}.png)\n", slot.slot);
        // Each learned parameter across the channels (ACON-C's switching factor β with p1 and
        // p2, PAU's coefficients), where there is more than one channel to compare.
        let series: Vec<(String, Vec<f32>)> = slot
            .channel_parameters
            .iter()
            .filter(|p| p.values.len() > 1)
            .map(|p| (p.name.clone(), p.values.clone()))
            .collect();
        if !series.is_empty() {
            let stem = format!("parameters_{}", slot.slot);
            let title = format!(
                "{} ({}): learned parameters per channel",
                slot.slot, slot.activation
            );
            per_channel(&series, &title, "value", &out.join(&stem))?;
            let _ = writeln!(md, "![{} parameters per channel]({stem}.png)\n", slot.slot);
        }
    }

    for slot in &inspection.slots {
        if let Some(alpha) = &slot.aprelu {
            let stem = format!("aprelu_{}", slot.slot);
            coefficient_section(&mut md, out, slot, "APReLU", "α", "alpha", alpha, &stem)?;
        }
        for coefficient in &slot.coefficients {
            let ascii = ascii_symbol(&coefficient.symbol);
            let stem = format!("{}_{}_{ascii}", slot.activation, slot.slot);
            let (symbol, summary) = (&coefficient.symbol, &coefficient.summary);
            coefficient_section(
                &mut md,
                out,
                slot,
                &slot.activation,
                symbol,
                &ascii,
                summary,
                &stem,
            )?;
        }
    }
    write_atomic(&out.join("report.md"), md.as_bytes())?;
    Ok(())
}

/// A symbol in file names: `α` → `alpha`, `a¹` → `a1`.
fn ascii_symbol(symbol: &str) -> String {
    symbol
        .chars()
        .map(|c| match c {
            'α' => "alpha".to_string(),
            'β' => "beta".to_string(),
            '¹' => "1".to_string(),
            '²' => "2".to_string(),
            c if c.is_ascii_alphanumeric() => c.to_string(),
            _ => "_".to_string(),
        })
        .collect()
}

/// The section of one per-sample coefficient of a slot (APReLU's α, Meta-ACON's β, ...): its
/// distribution overall and per class, its mean per class and channel, and how its spread
/// splits between and within classes.
#[allow(clippy::too_many_arguments)]
fn coefficient_section(
    md: &mut String,
    out: &Path,
    slot: &SlotInspection,
    kind: &str,
    symbol: &str,
    ascii: &str,
    summary: &AlphaSummary,
    stem: &str,
) -> Result<(), ReportError> {
    let mut series = vec![("all classes".to_string(), &summary.histogram)];
    series.extend(
        CLASS_NAMES
            .iter()
            .zip(&summary.class_histograms)
            .map(|(name, h)| (name.to_string(), h)),
    );
    let name = &slot.slot;
    densities(
        &series,
        &format!("{kind} {name}: per-sample, per-channel {symbol}"),
        symbol,
        &out.join(format!("{stem}_{ascii}")),
    )?;
    class_channel_map(
        &summary.class_means,
        &CLASS_NAMES,
        &format!("{kind} {name}: mean {symbol} per class and channel"),
        &out.join(format!("{stem}_classes")),
    )?;
    let _ = writeln!(
        md,
        "## {kind} `{name}`: {symbol}\n\nMean {symbol} {mean:.3}. Spread of {symbol}: {within:.3} \
         between the samples of one class, {between:.3} between classes, {channels:.3} between \
         channels (standard deviations). {verdict}\n\n![{symbol} distribution]({stem}_{ascii}.png)\n\
         ![{symbol} per class and channel]({stem}_classes.png)\n",
        mean = summary.mean,
        within = summary.within_class_std,
        between = summary.between_class_std,
        channels = summary.between_channel_std,
        verdict = verdict(symbol, summary.within_class_std, summary.between_class_std),
    );
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
    let mut parts: Vec<String> = Vec::new();
    let per_sample = slot.aprelu.iter().map(|alpha| ("α", alpha));
    let others = slot
        .coefficients
        .iter()
        .map(|c| (c.symbol.as_str(), &c.summary));
    for (symbol, summary) in per_sample.chain(others) {
        parts.push(format!(
            "{symbol} mean {:.3}, spread within classes {:.3}, between classes {:.3}",
            summary.mean, summary.within_class_std, summary.between_class_std
        ));
    }
    for parameter in &slot.channel_parameters {
        let values = &parameter.values;
        let (low, high) = values
            .iter()
            .fold((f32::MAX, f32::MIN), |(lo, hi), &v| (lo.min(v), hi.max(v)));
        let mean = values.iter().sum::<f32>() / values.len().max(1) as f32;
        parts.push(format!(
            "{} {low:.3} … {high:.3} (mean {mean:.3})",
            parameter.name
        ));
    }
    parts.join("; ")
}

/// The papers' claim, checked in words: does each sample get its own transformation? The
/// share of the coefficient's variance across samples that lies within classes says how much of
/// it the class alone does not explain.
fn verdict(symbol: &str, within: f64, between: f64) -> String {
    if within < 1e-3 && between < 1e-3 {
        return format!(
            "{symbol} is practically constant: this slot applies one fixed function per channel, \
             as a learned per-channel kind would."
        );
    }
    let share = 100.0 * within * within / (within * within + between * between);
    if share >= 60.0 {
        format!(
            "{share:.0}% of {symbol}'s variance across samples lies within classes: each sample \
             gets its own coefficients, well beyond what its class implies."
        )
    } else if share >= 40.0 {
        format!(
            "{symbol}'s variance across samples splits about evenly: {share:.0}% within classes, \
             the rest between them. It follows both the class and the individual sample."
        )
    } else {
        format!(
            "Only {share:.0}% of {symbol}'s variance across samples lies within classes: it \
             mainly follows the class."
        )
    }
}
