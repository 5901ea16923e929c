//! `dermrobust explain`: parse the options and call [`crate::audits::explain::run::run_job`].

use std::path::PathBuf;

use anyhow::{bail, Result};

use super::ModelDataArgs;
use crate::audits::explain::run::{run_job, ExplainJob, ExplainSettings, TargetChoice};
use crate::audits::explain::{Method, MethodSettings, OcclusionSettings, RiseSettings};

#[derive(clap::Args, Clone, Debug)]
pub struct ExplainArgs {
    /// Model folder, training run folder, or ONNX file (black-box methods only); repeat for
    /// several models (each is explained into `--out/model-K`).
    #[arg(long = "model", required = true)]
    pub models: Vec<PathBuf>,
    #[command(flatten)]
    pub data: ModelDataArgs,
    /// Explain these image files instead of a dataset (no masks, no true class).
    #[arg(long = "image")]
    pub images: Vec<PathBuf>,
    /// Comma-separated: gradcam, gradcam++, xgradcam, hirescam, layercam, guided-backprop,
    /// guided-gradcam (gradient methods), occlusion, rise (black-box, also for ONNX models),
    /// attention (an attention model's own maps: attention-pool3 and attention-pool4).
    #[arg(long, default_value = "gradcam,gradcam++,guided-backprop,guided-gradcam", value_delimiter = ',')]
    pub methods: Vec<Method>,
    /// The CAM layer (default: the last backbone stage: layer4, block5, norm5).
    #[arg(long)]
    pub layer: Option<String>,
    /// Which class a map explains.
    #[arg(long, value_enum, default_value_t = TargetChoice::Predicted)]
    pub target: TargetChoice,
    /// Explain this class (by name) for every image, instead of --target.
    #[arg(long)]
    pub class: Option<String>,
    /// Explain at most this many images (a seeded random subset of the part).
    #[arg(long)]
    pub max_images: Option<usize>,
    /// Deletion/insertion curves for the first N images (0: none).
    #[arg(long, default_value_t = 100)]
    pub faithfulness: usize,
    /// Steps of the deletion/insertion curves.
    #[arg(long, default_value_t = 16)]
    pub steps: usize,
    /// Model-randomisation sanity check on the first N images (0: none).
    #[arg(long, default_value_t = 16)]
    pub sanity: usize,
    /// Images per gallery selection in report.html.
    #[arg(long, default_value_t = 8)]
    pub gallery: usize,
    /// Per-image CSV of an earlier audit (brittleness, adversarial): show maps before and after
    /// its largest flips; repeatable.
    #[arg(long = "record")]
    pub records: Vec<PathBuf>,
    /// Occlusion patch side as a fraction of the image side.
    #[arg(long, default_value_t = 0.125)]
    pub occlusion_patch: f32,
    /// RISE: number of random masks.
    #[arg(long, default_value_t = 500)]
    pub rise_masks: usize,
    /// Seed of RISE's masks and of the randomised models.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    #[arg(long)]
    pub out: PathBuf,
    /// Continue an interrupted explanation in --out: images already explained are kept; a run
    /// with other models, images or settings is refused.
    #[arg(long)]
    pub resume: bool,
}

impl ExplainArgs {
    pub fn job(&self) -> Result<ExplainJob> {
        if self.methods.is_empty() {
            bail!("--methods names no method");
        }
        if self.steps == 0 {
            bail!("--steps must be at least 1");
        }
        if self.max_images == Some(0) {
            bail!("--max-images must be at least 1");
        }
        if !(self.occlusion_patch > 0.0 && self.occlusion_patch <= 1.0) {
            bail!("--occlusion-patch must be in (0, 1]");
        }
        if self.rise_masks == 0 {
            bail!("--rise-masks must be at least 1");
        }
        let settings = ExplainSettings {
            methods: Method::expand(&self.methods),
            target: self.target,
            target_class: self.class.clone(),
            method_settings: MethodSettings {
                layer: self.layer.clone(),
                occlusion: OcclusionSettings { patch: self.occlusion_patch, ..Default::default() },
                rise: RiseSettings { masks: self.rise_masks, seed: self.seed, ..Default::default() },
            },
            capture: None,
            faithfulness_images: self.faithfulness,
            steps: self.steps,
            sanity_images: self.sanity,
            gallery: self.gallery,
            seed: self.seed,
        };
        Ok(ExplainJob {
            models: self.models.clone(),
            data: self.data.data.clone(),
            split: self.data.split.clone(),
            part: self.data.part.clone(),
            skip_bad: self.data.skip_bad,
            max_images: self.max_images,
            image_files: self.images.clone(),
            records: self.records.clone(),
            capture: self.data.capture.choice()?,
            settings,
            out: self.out.clone(),
            resume: self.resume,
        })
    }
}

pub fn run(a: &ExplainArgs, quiet: bool) -> Result<()> {
    let outcomes = run_job(&a.job()?, quiet)?;
    for o in &outcomes {
        println!("{}: {} images{}", o.model, o.images, o.accuracy.map(|x| format!(", accuracy {x:.3}")).unwrap_or_default());
        for m in &o.methods {
            let f = |v: Option<f64>| v.map(|x| format!("{x:.3}")).unwrap_or_else(|| "-".into());
            println!(
                "  {:16} energy inside {} | pointing {} | Jaccard {} | mask area {} | border energy {} | deletion {} | insertion {}",
                m.method, f(m.all.energy_inside), f(m.all.pointing), f(m.all.jaccard), f(m.all.mask_area), f(m.all.border_energy), f(m.deletion_auc), f(m.insertion_auc)
            );
        }
    }
    println!("wrote {}/explain.json, explain_per_image.csv, maps/, overlays/ and report.html", a.out.display());
    Ok(())
}
