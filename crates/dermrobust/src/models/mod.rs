//! Models: architectures by name, the classifier module and the interface every audit uses.
//!
//! A [`Classifier`] is a backbone split into two layer groups (`body_early`, `body_late`) and a
//! head. The split serves discriminative learning rates and freeze/unfreeze fine-tuning
//! (Mishra et al.: 0.01x, 0.1x, 1x); `features` and `head_forward` expose the last feature map
//! for Grad-CAM; inputs are raw `[0, 1]` RGB so gradients with respect to the image (FGSM) are
//! in pixel units.

pub mod checkpoint;
pub mod densenet;
pub mod head;
pub mod input;
pub mod layers;
pub mod onnx_export;
pub mod resnet;
pub mod run_dir;
pub mod vgg;

use std::fmt;
use std::str::FromStr;

use burn::prelude::*;
use serde::{Deserialize, Serialize};

pub use head::HeadKind;

/// Architectures in the registry (`--arch NAME`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Arch {
    Resnet18,
    Resnet34,
    Resnet50,
    /// VGG-16 (with batch norm) whose dense layers are replaced by global pooling.
    Vgg16Gap,
    Densenet121,
}

impl Arch {
    pub const ALL: [Arch; 5] = [Arch::Resnet18, Arch::Resnet34, Arch::Resnet50, Arch::Vgg16Gap, Arch::Densenet121];

    pub fn name(self) -> &'static str {
        match self {
            Arch::Resnet18 => "resnet18",
            Arch::Resnet34 => "resnet34",
            Arch::Resnet50 => "resnet50",
            Arch::Vgg16Gap => "vgg16-gap",
            Arch::Densenet121 => "densenet121",
        }
    }

    /// How many backbone stages form the early layer group.
    fn early_stages(self) -> usize {
        match self {
            Arch::Resnet18 | Arch::Resnet34 | Arch::Resnet50 => 3,
            Arch::Vgg16Gap => 3,
            Arch::Densenet121 => 5,
        }
    }
}

impl fmt::Display for Arch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Arch {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Arch::ALL.into_iter().find(|a| a.name() == s).ok_or_else(|| {
            format!("unknown architecture '{s}' (choose {})", Arch::ALL.map(Arch::name).join(", "))
        })
    }
}

/// Everything needed to rebuild a model; saved next to its weights.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ModelConfig {
    pub arch: Arch,
    pub num_classes: usize,
    /// Channel multiplier (1.0 = the published widths; 0.25 gives a CPU-sized variant).
    pub width: f64,
    pub head: HeadKind,
    pub dropout: f64,
    /// Blur-pool before every subsampling (Zhang 2019).
    pub anti_alias: bool,
    /// Per-channel mean and standard deviation used to normalise `[0, 1]` inputs.
    pub mean: [f32; 3],
    pub std: [f32; 3],
}

/// ImageNet statistics, which torchvision weights expect.
pub const IMAGENET_MEAN: [f32; 3] = [0.485, 0.456, 0.406];
pub const IMAGENET_STD: [f32; 3] = [0.229, 0.224, 0.225];

impl ModelConfig {
    pub fn new(arch: Arch, num_classes: usize) -> Self {
        ModelConfig {
            arch,
            num_classes,
            width: 1.0,
            head: HeadKind::Fastai,
            dropout: 0.5,
            anti_alias: false,
            mean: IMAGENET_MEAN,
            std: IMAGENET_STD,
        }
    }

    pub fn init(&self, device: &Device) -> Classifier {
        let (stages, channels) = match self.arch {
            Arch::Resnet18 => resnet::build(18, self.width, self.anti_alias, device),
            Arch::Resnet34 => resnet::build(34, self.width, self.anti_alias, device),
            Arch::Resnet50 => resnet::build(50, self.width, self.anti_alias, device),
            Arch::Vgg16Gap => vgg::build(self.width, self.anti_alias, device),
            Arch::Densenet121 => densenet::build(self.width, self.anti_alias, device),
        };
        let mut early = stages;
        let late = early.split_off(self.arch.early_stages().min(early.len()));
        Classifier { body_early: early, body_late: late, head: head::Head::new(self.head, channels, self.num_classes, self.dropout, device) }
    }
}

/// Channels `c` scaled by `width`, at least 8.
pub(crate) fn scaled(c: usize, width: f64) -> usize {
    ((c as f64 * width).round() as usize).max(8)
}

/// One backbone stage of any architecture.
#[derive(Module, Debug)]
pub enum Stage {
    ResStem(resnet::ResStem),
    Residual(resnet::ResStage),
    Vgg(vgg::VggStage),
    DenseStem(densenet::DenseStem),
    Dense(densenet::DenseBlock),
    Transition(densenet::Transition),
    Final(densenet::FinalNorm),
}

impl Stage {
    pub fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        match self {
            Stage::ResStem(s) => s.forward(x),
            Stage::Residual(s) => s.forward(x),
            Stage::Vgg(s) => s.forward(x),
            Stage::DenseStem(s) => s.forward(x),
            Stage::Dense(s) => s.forward(x),
            Stage::Transition(s) => s.forward(x),
            Stage::Final(s) => s.forward(x),
        }
    }
}

/// The classifier module. Parameter paths start with `body_early.`, `body_late.` or `head.`:
/// the three layer groups of discriminative learning rates.
#[derive(Module, Debug)]
pub struct Classifier {
    pub body_early: Vec<Stage>,
    pub body_late: Vec<Stage>,
    pub head: head::Head,
}

/// What a model returns for a batch: the logits, and any maps it computes beside them (e.g. the
/// attention maps of an attention model, which loss terms may regularise), by name.
pub struct ModelOutput {
    pub logits: Tensor<2>,
    pub maps: Vec<(String, Tensor<4>)>,
}

/// Names of the layer groups, in order from input to output.
pub const LAYER_GROUPS: [&str; 3] = ["body_early.", "body_late.", "head."];

impl Classifier {
    /// Last feature map of the backbone (the Grad-CAM layer) for normalised input.
    pub fn features(&self, x: Tensor<4>) -> Tensor<4> {
        let mut x = x;
        for s in self.body_early.iter().chain(&self.body_late) {
            x = s.forward(x);
        }
        x
    }

    pub fn head_forward(&self, features: Tensor<4>) -> Tensor<2> {
        self.head.forward(features)
    }

    /// Backbone stages from input to output.
    pub fn stages(&self) -> impl Iterator<Item = &Stage> {
        self.body_early.iter().chain(&self.body_late)
    }

    /// Names of the backbone stages, in torchvision's terms: ResNet `stem`, `layer1`..`layer4`;
    /// VGG `block1`..`block5`; DenseNet `stem`, `denseblock1`, `transition1`, ..., `norm5`.
    pub fn stage_names(&self) -> Vec<String> {
        let (mut residual, mut vgg, mut dense, mut transition) = (0, 0, 0, 0);
        self.stages()
            .map(|s| match s {
                Stage::ResStem(_) | Stage::DenseStem(_) => "stem".to_string(),
                Stage::Residual(_) => {
                    residual += 1;
                    format!("layer{residual}")
                }
                Stage::Vgg(_) => {
                    vgg += 1;
                    format!("block{vgg}")
                }
                Stage::Dense(_) => {
                    dense += 1;
                    format!("denseblock{dense}")
                }
                Stage::Transition(_) => {
                    transition += 1;
                    format!("transition{transition}")
                }
                Stage::Final(_) => "norm5".to_string(),
            })
            .collect()
    }

    /// The output of backbone stage `last` (inclusive) for normalised input.
    pub fn forward_through(&self, x: Tensor<4>, last: usize) -> Tensor<4> {
        self.stages().take(last + 1).fold(x, |x, s| s.forward(x))
    }

    /// Logits from the output of backbone stage `last` (the rest of the network).
    pub fn forward_after(&self, activation: Tensor<4>, last: usize) -> Tensor<2> {
        self.head_forward(self.stages().skip(last + 1).fold(activation, |x, s| s.forward(x)))
    }

    /// Fold every batch norm that follows a convolution into it (ResNet, VGG): the same
    /// function in inference mode, faster. Use only on an inference model (`valid()`).
    pub fn fold_batch_norm(mut self) -> Self {
        for s in self.body_early.iter_mut().chain(self.body_late.iter_mut()) {
            match s {
                Stage::ResStem(x) => x.fold_batch_norm(),
                Stage::Residual(x) => x.blocks.iter_mut().for_each(resnet::ResBlock::fold_batch_norm),
                Stage::Vgg(x) => x.fold_batch_norm(),
                Stage::DenseStem(_) | Stage::Dense(_) | Stage::Transition(_) | Stage::Final(_) => {}
            }
        }
        self
    }

    /// Logits for normalised input `[N, 3, H, W]`.
    pub fn forward(&self, x: Tensor<4>) -> Tensor<2> {
        self.head_forward(self.features(x))
    }

    /// Logits and extra outputs for normalised input (the architectures so far have no extra
    /// outputs; an attention model returns its maps here).
    pub fn forward_output(&self, x: Tensor<4>) -> ModelOutput {
        ModelOutput { logits: self.forward(x), maps: vec![] }
    }
}

/// Normalise raw `[0, 1]` input with the model's statistics (differentiable, so input
/// gradients stay in pixel units).
pub fn normalise(x: Tensor<4>, config: &ModelConfig) -> Tensor<4> {
    let device = x.device();
    let mean = Tensor::<4>::from_data(TensorData::new(config.mean.to_vec(), [1, 3, 1, 1]), &device);
    let std = Tensor::<4>::from_data(TensorData::new(config.std.to_vec(), [1, 3, 1, 1]), &device);
    (x - mean) / std
}
