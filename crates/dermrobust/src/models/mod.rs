//! Models: architectures by name, the classifier module and the interface every audit uses.
//!
//! A [`Classifier`] is a backbone split into two layer groups (`body_early`, `body_late`) and a
//! head. The split serves discriminative learning rates and freeze/unfreeze fine-tuning
//! (Mishra et al.: 0.01x, 0.1x, 1x); `features` and `head_forward` expose the last feature map
//! for Grad-CAM; inputs are raw `[0, 1]` RGB so gradients with respect to the image (FGSM) are
//! in pixel units.

pub mod attnmel;
pub mod checkpoint;
pub mod densenet;
pub mod kernels;
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
    /// AttnMel-CNN (Yan et al. 2019): VGG-16 (with batch norm) without dense layers and two
    /// attention modules on pool-3 and pool-4 guided by pool-5 ([`attnmel`]).
    Attnmel,
}

impl Arch {
    pub const ALL: [Arch; 6] = [Arch::Resnet18, Arch::Resnet34, Arch::Resnet50, Arch::Vgg16Gap, Arch::Densenet121, Arch::Attnmel];

    pub fn name(self) -> &'static str {
        match self {
            Arch::Resnet18 => "resnet18",
            Arch::Resnet34 => "resnet34",
            Arch::Resnet50 => "resnet50",
            Arch::Vgg16Gap => "vgg16-gap",
            Arch::Densenet121 => "densenet121",
            Arch::Attnmel => "attnmel",
        }
    }

    /// How many backbone stages form the early layer group.
    fn early_stages(self) -> usize {
        match self {
            Arch::Resnet18 | Arch::Resnet34 | Arch::Resnet50 => 3,
            Arch::Vgg16Gap | Arch::Attnmel => 3,
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
            Arch::Attnmel => vgg::build(self.width, self.anti_alias, device),
        };
        let mut early = stages;
        let late = early.split_off(self.arch.early_stages().min(early.len()));
        let head = if self.arch == Arch::Attnmel {
            // The head reads [GAP(pool-5), g_3, g_4] (Yan's classifier input).
            let taps = [scaled(256, self.width), scaled(512, self.width), channels];
            let total = taps.iter().sum();
            let mut h = head::Head::new(self.head, total, self.num_classes, self.dropout, device);
            if self.head == HeadKind::Linear {
                h.out = attnmel::classifier(total, self.num_classes, device);
            }
            h.attention = Some(attnmel::AttnMelAttention::new(taps, device));
            h
        } else {
            head::Head::new(self.head, channels, self.num_classes, self.dropout, device)
        };
        Classifier { body_early: early, body_late: late, head }
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

    /// The output of backbone stage `last` for normalised input, made a leaf of the autodiff
    /// graph (so its gradient is kept), and the logits computed from it: for gradients with
    /// respect to a layer. Works for every architecture (an attention model's head also reads
    /// earlier stages, which do not depend on the leaf).
    pub fn forward_split(&self, x: Tensor<4>, last: usize) -> (Tensor<4>, Tensor<2>) {
        let (leaf, output) = self.run_stages(x, Some(last));
        (leaf.unwrap_or_else(|| panic!("stage {last} does not exist (the model has {} stages)", self.stages().count())), output.logits)
    }

    /// The whole network: every stage, then the head (which for an attention model also reads
    /// earlier stages). With `leaf_at`, that stage's output is made a leaf of the autodiff graph
    /// and returned too.
    fn run_stages(&self, x: Tensor<4>, leaf_at: Option<usize>) -> (Option<Tensor<4>>, ModelOutput) {
        let mut leaf = None;
        let mut taps = Vec::new();
        let mut x = x;
        for (i, s) in self.stages().enumerate() {
            x = s.forward(x);
            if leaf_at == Some(i) {
                x = x.detach().require_grad();
                leaf = Some(x.clone());
            }
            if self.head.attention.is_some() {
                taps.push(x.clone());
            }
        }
        let output = match &self.head.attention {
            Some(_) => self.attention_output(taps),
            None => ModelOutput { logits: self.head_forward(x), maps: vec![] },
        };
        (leaf, output)
    }

    /// Logits and attention maps of an attention model from its stage outputs.
    fn attention_output(&self, mut taps: Vec<Tensor<4>>) -> ModelOutput {
        let attention = self.head.attention.as_ref().expect("an attention model");
        let [i3, i4, i5] = attnmel::TAPS;
        let pool5 = taps[i5].clone();
        let pool4 = taps[i4].clone();
        let pool3 = taps.swap_remove(i3);
        let (features, maps) = attention.forward(pool3, pool4, pool5);
        ModelOutput { logits: self.head_forward(features), maps }
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
        self.forward_output(x).logits
    }

    /// Logits and extra outputs for normalised input: AttnMel-CNN returns its two attention maps
    /// ([`attnmel::MAP_POOL3`], [`attnmel::MAP_POOL4`], `[N, 1, h, w]` in (0, 1)); the other
    /// architectures have none.
    pub fn forward_output(&self, x: Tensor<4>) -> ModelOutput {
        self.run_stages(x, None).1
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
