//! Training configuration: every option is a command-line flag and a TOML key of the same name
//! (flags win over the file).

use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::{ArgMatches, Args, ValueEnum};
use dermrobust_core::data::{DataSpec, LabelScheme};
use serde::{Deserialize, Serialize};

use crate::evaluation::CaptureArgs;
use crate::models::{Arch, HeadKind};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum OptimizerKind {
    /// SGD with (PyTorch-style, undampened) momentum and weight decay.
    Sgd,
    /// AdamW (decoupled weight decay).
    Adamw,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum LossKind {
    /// Cross-entropy (optionally class-weighted and label-smoothed).
    CrossEntropy,
    /// Focal loss (Lin et al. 2017; Yan et al. 2019 use gamma = 2).
    Focal,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum ScheduleKind {
    Constant,
    /// Multiply by `step_gamma` every `step_epochs` epochs (Yan: 0.1 every 10).
    Step,
    /// Cosine annealing to zero over the run.
    Cosine,
    /// SGDR warm restarts, cycle length multiplied by `sgdr_mult` after each restart (Mishra eq. 1).
    Sgdr,
    /// One-cycle: warm up to the peak, then cosine down (Smith).
    OneCycle,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum AugmentPreset {
    None,
    /// Flips, 90-degree rotations, mild zoom and brightness/contrast.
    Standard,
    /// Maron et al.'s additional data augmentation: any rotation, zoom, shift, colour balance,
    /// gamma, saturation and hue jitter, blur, on top of the standard flips.
    Strong,
    /// Artefact augmentation: the standard preset and, on half of the images, one random
    /// procedural artefact (hair, ink, drawn ruler, drawn bubbles, vignette, glare, colour
    /// patches) anywhere in the image (Katsch et al.'s remedy for artefact shortcuts).
    Artefacts,
    /// Du-Harpur et al.'s colour jitter: flips, any rotation, a random resized crop, a hue shift
    /// up to 0.4 of the hue circle (torchvision `ColorJitter(hue=0.4)`) and per-channel gains in
    /// the colour attack's range (their remedy against colour and rotation attacks).
    Jitter,
    /// Yan et al.'s training augmentation (their `transform_train`): horizontal and vertical flips,
    /// quarter turns, and a random 224-of-256 crop, here a random shift of up to (256 - 224) / 2 / 224
    /// of the side (borders reflected) on images read with `--centre-crop 0.7` (= 0.8 x 224/256, so
    /// that training and evaluation see the same central view as their 0.8 crop + centre 224 crop).
    Yan,
}

/// A named set of training options (`--recipe`): each sets every option still at its default.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum Recipe {
    /// Yan et al. 2019 (AttnMel-CNN, their `train.py`): SGD momentum 0.9, weight decay 1e-4,
    /// lr 0.01 x 0.1 every 10 epochs, 50 epochs, batch 32, oversampling, focal loss (gamma 2),
    /// the `yan` augmentation, centre crop 0.7 (see the `yan` augmentation), linear head without
    /// dropout; the best epoch by validation AUROC (always so).
    Yan,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum ClassWeighting {
    None,
    /// Inverse class frequency (scikit-learn's "balanced").
    Balanced,
}

/// All training options.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, Args)]
#[serde(default)]
pub struct TrainConfig {
    /// Dataset (see `dermrobust data --help` for the syntax).
    #[arg(long, default_value = "synthetic")]
    #[serde(with = "spec_string")]
    pub data: DataSpec,
    /// Label scheme: native, ham7, mel-vs-nevus, mel-vs-rest.
    #[arg(long, default_value = "native")]
    pub labels: LabelScheme,
    /// Split file (created with --split-seed if missing; reused, and checked, if present).
    /// Defaults to OUT/split.json.
    #[arg(long)]
    pub split: Option<PathBuf>,
    #[arg(long, default_value_t = 42)]
    pub split_seed: u64,
    /// Validation and test fractions of the lesion-aware split.
    #[arg(long, default_value_t = 0.15)]
    pub val_fraction: f64,
    #[arg(long, default_value_t = 0.15)]
    pub test_fraction: f64,

    /// Architecture: resnet18, resnet34, resnet50, vgg16-gap, densenet121, attnmel (Yan et al. 2019).
    #[arg(long, default_value = "resnet18")]
    pub arch: Arch,
    /// Channel width multiplier (0.25 = a quarter of the published widths).
    #[arg(long, default_value_t = 1.0)]
    pub width: f64,
    #[arg(long, value_enum, default_value = "fastai")]
    pub head: HeadKind,
    #[arg(long, default_value_t = 0.5)]
    pub dropout: f64,
    /// Anti-aliased model (blur-pool before every subsampling).
    #[arg(long, default_value_t = false)]
    pub anti_alias: bool,
    /// Start from torchvision-layout weights (.pth or .safetensors): resnet18/34/50, vgg16_bn (for
    /// vgg16-gap and attnmel; its dense classifier is not used; attnmel also takes the authors'
    /// AttnVGG checkpoints) or densenet121, at the same width.
    #[arg(long)]
    pub pretrained: Option<PathBuf>,

    /// Model input size in pixels (square).
    #[arg(long, default_value_t = 64)]
    pub image_size: usize,
    /// Centre crop of this fraction of the short side before resizing (Yan: 0.8).
    #[arg(long)]
    pub centre_crop: Option<f32>,
    /// Mishra's capture remedy, applied to every image (training, validation and test) when it is
    /// loaded, and recorded with the model so that evaluation and audits apply it too.
    #[command(flatten)]
    #[serde(flatten)]
    pub capture: CaptureArgs,

    #[arg(long, default_value_t = 20)]
    pub epochs: usize,
    #[arg(long, default_value_t = 32)]
    pub batch_size: usize,
    #[arg(long, value_enum, default_value = "sgd")]
    pub optimizer: OptimizerKind,
    /// Peak learning rate (of the head, with discriminative learning rates).
    #[arg(long, default_value_t = 0.05)]
    pub lr: f64,
    #[arg(long, default_value_t = 0.9)]
    pub momentum: f64,
    #[arg(long, default_value_t = 1e-4)]
    pub weight_decay: f64,
    #[arg(long, value_enum, default_value = "one-cycle")]
    pub schedule: ScheduleKind,
    #[arg(long, default_value_t = 10)]
    pub step_epochs: usize,
    #[arg(long, default_value_t = 0.1)]
    pub step_gamma: f64,
    /// First SGDR cycle length in epochs.
    #[arg(long, default_value_t = 1)]
    pub sgdr_cycle: usize,
    /// SGDR cycle length multiplier.
    #[arg(long, default_value_t = 2)]
    pub sgdr_mult: usize,
    /// One-cycle warm-up share of the run.
    #[arg(long, default_value_t = 0.25)]
    pub warmup: f64,
    /// Layer-group learning rates 0.01x / 0.1x / 1x (Mishra et al.).
    #[arg(long, default_value_t = false)]
    pub discriminative_lr: bool,
    /// Train only the head for this many epochs, then unfreeze everything (fine-tuning).
    #[arg(long, default_value_t = 0)]
    pub freeze_epochs: usize,

    #[arg(long, value_enum, default_value = "cross-entropy")]
    pub loss: LossKind,
    #[arg(long, default_value_t = 2.0)]
    pub focal_gamma: f64,
    #[arg(long, default_value_t = 0.0)]
    pub label_smoothing: f64,
    #[arg(long, value_enum, default_value = "none")]
    pub class_weights: ClassWeighting,
    /// Draw every class as often as the largest one in each epoch.
    #[arg(long, default_value_t = false)]
    pub oversample: bool,
    #[arg(long, value_enum, default_value = "standard")]
    pub augment: AugmentPreset,
    /// Biased training (shortcut learning, Katsch et al.): insert this artefact (a procedural
    /// kind such as ruler-drawn or ink, or a template class of --artefact-templates) into
    /// --bias-share of the training and validation images of --bias-class.
    #[arg(long)]
    pub bias_artefact: Option<String>,
    /// The class whose training images get --bias-artefact (e.g. nv).
    #[arg(long)]
    pub bias_class: Option<String>,
    /// Share of that class's training and validation images that get the artefact.
    #[arg(long, default_value_t = 1.0)]
    pub bias_share: f64,
    /// Folder of artefact templates (meta.json layout of github.com/thisismexp/artefact_insertion).
    #[arg(long)]
    pub artefact_templates: Option<PathBuf>,

    /// Clip each parameter's gradient to this L2 norm (steadies training at high learning rates).
    #[arg(long)]
    pub clip_grad_norm: Option<f32>,
    /// Adversarial training (Madry et al. 2018; the remedy Du-Harpur et al. suggest): train on PGD
    /// adversarial examples of every batch within this L∞ budget, in [0, 1] pixel units (0: off).
    #[arg(long, default_value_t = 0.0)]
    pub adversarial_eps: f32,
    /// PGD steps per batch of adversarial training (step size 2.5 eps / steps, Madry's rule).
    #[arg(long, default_value_t = 3)]
    pub adversarial_steps: usize,

    /// AttnMel-CNN-Lesion (Yan et al.): add Dice terms between the attention maps and the lesion
    /// masks to the loss (needs --arch attnmel and a dataset with masks).
    #[arg(long, default_value_t = false)]
    pub attention_masks: bool,
    /// Weight of the pool-3 attention Dice term (Yan's code: 0.001).
    #[arg(long, default_value_t = 0.001)]
    pub lambda_pool3: f64,
    /// Weight of the pool-4 attention Dice term (Yan's code: 0.01).
    #[arg(long, default_value_t = 0.01)]
    pub lambda_pool4: f64,
    /// Start from a named recipe (yan): it sets every option left at its default value; options
    /// given with other values win.
    #[arg(long, value_enum)]
    pub recipe: Option<Recipe>,

    /// Stop when validation AUROC has not improved for this many epochs (0 = never).
    #[arg(long, default_value_t = 0)]
    pub patience: usize,
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Train this many models with seeds seed, seed+1, ... and report mean and standard deviation.
    #[arg(long, default_value_t = 1)]
    pub repeats: usize,
    /// Skip unreadable images (and count them) instead of stopping.
    #[arg(long, default_value_t = false)]
    pub skip_bad: bool,
    /// Folder for the decoded-image cache (default: ~/.cache/dermrobust).
    #[arg(long)]
    pub cache_dir: Option<PathBuf>,
    /// Stop after this many training batches per epoch (for quick checks).
    #[arg(long)]
    pub max_batches: Option<usize>,
}

impl Default for TrainConfig {
    fn default() -> Self {
        use clap::Parser;
        #[derive(Parser)]
        struct Wrapper {
            #[command(flatten)]
            config: TrainConfig,
        }
        Wrapper::parse_from(["dermrobust"]).config
    }
}

/// Options without a default, which TOML leaves out when unset.
const OPTIONAL_KEYS: [&str; 10] = ["split", "pretrained", "centre_crop", "cache_dir", "max_batches", "clip_grad_norm", "bias_artefact", "bias_class", "artefact_templates", "recipe"];

/// The capture remedy's options without a default (TOML leaves them out when unset).
const CAPTURE_KEYS: [&str; 2] = ["gamma", "fov"];

impl TrainConfig {
    /// Whether training sees the classes in equal shares (oversampling or inverse-frequency class
    /// weights), so the model's learned prior is uniform.
    pub fn balances_classes(&self) -> bool {
        self.oversample || self.class_weights == ClassWeighting::Balanced
    }

    /// Merge a TOML file into `self` for every key not given on the command line.
    pub fn merge_toml(&mut self, path: &std::path::Path, matches: &ArgMatches) -> Result<()> {
        let text = std::fs::read_to_string(path).with_context(|| format!("cannot read configuration {}", path.display()))?;
        let file: toml::Table = toml::from_str(&text).with_context(|| format!("{} is not valid TOML", path.display()))?;
        let mut current = toml::Table::try_from(&*self)?;
        let known: Vec<String> = current.keys().cloned().collect();
        for (key, value) in file {
            if !known.contains(&key) && !OPTIONAL_KEYS.contains(&key.as_str()) && !CAPTURE_KEYS.contains(&key.as_str()) {
                anyhow::bail!("{}: unknown option '{key}'", path.display());
            }
            let from_cli = matches.value_source(&key) == Some(clap::parser::ValueSource::CommandLine);
            if !from_cli {
                current.insert(key, value);
            }
        }
        *self = current.try_into().with_context(|| format!("{}: invalid value", path.display()))?;
        Ok(())
    }
}

impl TrainConfig {
    /// Apply `--recipe`: every option the recipe names that still has its default value takes
    /// the recipe's value (so an option given with another value wins). Without a recipe, nothing
    /// changes.
    pub fn apply_recipe(&mut self) {
        let Some(recipe) = self.recipe else { return };
        let d = TrainConfig::default();
        macro_rules! set {
            ($field:ident, $value:expr) => {
                if self.$field == d.$field {
                    self.$field = $value;
                }
            };
        }
        match recipe {
            Recipe::Yan => {
                set!(optimizer, OptimizerKind::Sgd);
                set!(momentum, 0.9);
                set!(weight_decay, 1e-4);
                set!(lr, 0.01);
                set!(schedule, ScheduleKind::Step);
                set!(step_epochs, 10);
                set!(step_gamma, 0.1);
                set!(epochs, 50);
                set!(batch_size, 32);
                set!(oversample, true);
                set!(loss, LossKind::Focal);
                set!(focal_gamma, 2.0);
                set!(augment, AugmentPreset::Yan);
                set!(centre_crop, Some(0.7));
                set!(head, HeadKind::Linear);
                set!(dropout, 0.0);
            }
        }
    }

    /// Check every option's range. The error lists each bad option by its flag, e.g.
    /// `--batch-size must be at least 1, got 0` (one line per problem), so a run never starts with
    /// a value that would give NaN losses, an empty split or a division by zero.
    pub fn validate(&self) -> Result<()> {
        let mut problems: Vec<String> = Vec::new();
        let mut at_least = |flag: &str, v: usize, min: usize| {
            if v < min {
                problems.push(format!("--{flag} must be at least {min}, got {v}"));
            }
        };
        at_least("epochs", self.epochs, 1);
        at_least("batch-size", self.batch_size, 1);
        at_least("image-size", self.image_size, 16);
        at_least("step-epochs", self.step_epochs, 1);
        at_least("sgdr-cycle", self.sgdr_cycle, 1);
        at_least("sgdr-mult", self.sgdr_mult, 1);
        at_least("repeats", self.repeats, 1);
        if let Some(m) = self.max_batches {
            at_least("max-batches", m, 1);
        }
        // [lo, hi) or [lo, hi] ranges of real numbers; NaN and infinities fail every range.
        let mut in_range = |flag: &str, v: f64, lo: f64, hi: f64, hi_inclusive: bool| {
            let ok = v.is_finite() && v >= lo && if hi_inclusive { v <= hi } else { v < hi };
            if !ok {
                let close = if hi_inclusive { ']' } else { ')' };
                problems.push(format!("--{flag} must be in [{lo}, {hi}{close}, got {v}"));
            }
        };
        in_range("val-fraction", self.val_fraction, 0.0, 1.0, false);
        in_range("test-fraction", self.test_fraction, 0.0, 1.0, false);
        in_range("dropout", self.dropout, 0.0, 1.0, false);
        in_range("momentum", self.momentum, 0.0, 1.0, false);
        in_range("warmup", self.warmup, 0.0, 1.0, false);
        in_range("label-smoothing", self.label_smoothing, 0.0, 1.0, false);
        in_range("bias-share", self.bias_share, 0.0, 1.0, true);
        in_range("adversarial-eps", self.adversarial_eps as f64, 0.0, 1.0, true);
        if self.adversarial_eps > 0.0 && self.adversarial_steps == 0 {
            problems.push("--adversarial-steps must be at least 1 with --adversarial-eps".to_string());
        }
        if self.bias_artefact.is_some() != self.bias_class.is_some() {
            problems.push("--bias-artefact and --bias-class go together".to_string());
        }
        if let Some(c) = self.centre_crop {
            if !(c.is_finite() && c > 0.0 && c <= 1.0) {
                problems.push(format!("--centre-crop must be greater than 0 and at most 1, got {c}"));
            }
        }
        let mut positive = |flag: &str, v: f64| {
            if !(v.is_finite() && v > 0.0) {
                problems.push(format!("--{flag} must be a finite number greater than 0, got {v}"));
            }
        };
        positive("lr", self.lr);
        positive("width", self.width);
        positive("step-gamma", self.step_gamma);
        if let Some(c) = self.clip_grad_norm {
            positive("clip-grad-norm", c as f64);
        }
        let mut non_negative = |flag: &str, v: f64| {
            if !(v.is_finite() && v >= 0.0) {
                problems.push(format!("--{flag} must be a finite number of at least 0, got {v}"));
            }
        };
        non_negative("weight-decay", self.weight_decay);
        non_negative("focal-gamma", self.focal_gamma);
        non_negative("lambda-pool3", self.lambda_pool3);
        non_negative("lambda-pool4", self.lambda_pool4);
        if self.attention_masks && self.arch != Arch::Attnmel {
            problems.push(format!("--attention-masks regularises AttnMel-CNN's attention maps: it needs --arch attnmel, not {}", self.arch));
        }
        if let Err(e) = self.capture.remedy() {
            problems.push(e.to_string());
        }
        let held_out = self.val_fraction + self.test_fraction;
        if self.val_fraction.is_finite() && self.test_fraction.is_finite() && held_out >= 1.0 {
            problems.push(format!(
                "--val-fraction + --test-fraction must be less than 1 (something must be left to train on), got {} + {} = {held_out}",
                self.val_fraction, self.test_fraction
            ));
        }
        if problems.is_empty() {
            Ok(())
        } else if problems.len() == 1 {
            anyhow::bail!("{}", problems[0])
        } else {
            anyhow::bail!("invalid training options:\n  {}", problems.join("\n  "))
        }
    }
}

/// `DataSpec` travels as its command-line string in files.
mod spec_string {
    use dermrobust_core::data::DataSpec;
    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    pub fn serialize<S: Serializer>(spec: &DataSpec, s: S) -> Result<S::Ok, S::Error> {
        spec.serialize(s)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<DataSpec, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Either {
            Text(String),
            Full(DataSpec),
        }
        match Either::deserialize(d)? {
            Either::Text(t) => t.parse().map_err(serde::de::Error::custom),
            Either::Full(f) => Ok(f),
        }
    }
}
