//! `dermrobust replay`: rebuild a perturbed image from an audit's record and predict it.

use std::path::PathBuf;

use anyhow::{bail, Result};
use dermrobust_core::data::DataSpec;
use dermrobust_core::imaging::io::write_png;
use dermrobust_core::imaging::ImageOp;
use serde::Serialize;

use crate::audits::replay::{read_record, replay_from_data, replay_image};
use crate::evaluation::load_model;

#[derive(clap::Args)]
pub struct ReplayArgs {
    /// A per-image record file of an audit (e.g. brittleness_per_image.csv).
    #[arg(long, requires = "row")]
    pub record: Option<PathBuf>,
    /// The record to replay: 1 is the first row after the header.
    #[arg(long)]
    pub row: Option<usize>,
    /// An image operation as JSON (e.g. '{"op":"rotate","degrees":10}'), instead of a record.
    #[arg(long, conflicts_with = "record")]
    pub op: Option<String>,
    /// The original image file (with --op). Default with --record: the record's image in --data.
    #[arg(long)]
    pub image: Option<PathBuf>,
    /// The dataset holding the record's image (as the audit's --data).
    #[arg(long)]
    pub data: Option<DataSpec>,
    /// The model that predicts the replayed image (a model or run folder, or an ONNX file).
    #[arg(long)]
    pub model: PathBuf,
    /// Write the replayed image here (PNG).
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
    /// Mishra's capture remedy of the original (as the audit's; default: the model's recorded one).
    #[command(flatten)]
    pub capture: super::ModelCaptureArgs,
}

#[derive(Serialize)]
struct Output<'a> {
    image_id: &'a str,
    op: &'a ImageOp,
    predicted_class: &'a str,
    probabilities: std::collections::BTreeMap<&'a str, f32>,
    recorded_prediction: Option<&'a str>,
}

pub fn run(a: &ReplayArgs) -> Result<()> {
    let (op, image_id, record) = match (&a.record, &a.op) {
        (Some(csv), None) => {
            let r = read_record(csv, a.row.unwrap_or(0))?;
            (r.op.clone(), r.image_id.clone(), Some(r))
        }
        (None, Some(json)) => (serde_json::from_str::<ImageOp>(json).map_err(|e| anyhow::anyhow!("--op is not an image operation: {e}"))?, String::new(), None),
        _ => bail!("give --record FILE --row N, or --op JSON --image FILE"),
    };
    let replayed = match (&a.image, &a.data) {
        (Some(file), _) => {
            let (classifier, info) = load_model(&a.model)?;
            let info = info.with_capture(&a.capture.choice()?);
            replay_image(&op, info.read_image(file)?.0, classifier.as_ref())?
        }
        (None, Some(data)) if record.is_some() => replay_from_data(&op, &image_id, &a.model, data, &a.capture.choice()?)?,
        _ => bail!("say where the original image is: --image FILE, or --data SPEC with --record"),
    };
    if let Some(out) = &a.out {
        write_png(&replayed.perturbed, out)?;
    }
    let recorded = record.as_ref().and_then(|r| r.field("predicted_transformed").or(r.field("predicted_perturbed")));
    let output = Output {
        image_id: &image_id,
        op: &op,
        predicted_class: replayed.predicted_class(),
        probabilities: replayed.classes.iter().map(String::as_str).zip(replayed.probabilities.iter().copied()).collect(),
        recorded_prediction: recorded,
    };
    if a.json {
        println!("{}", serde_json::to_string_pretty(&output)?);
    } else {
        println!("{} {}: predicted {}{}", image_id, serde_json::to_string(&op)?, output.predicted_class, recorded.map(|r| format!(" (recorded: {r})")).unwrap_or_default());
        for (c, p) in &output.probabilities {
            println!("  {c:<10} {p:.4}");
        }
    }
    Ok(())
}
