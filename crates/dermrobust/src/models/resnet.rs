//! ResNet-18/34/50 (He et al. 2016) in torchvision's layout, optionally anti-aliased
//! (Zhang 2019: stride-2 convolutions become stride 1 followed by a blur-pool; max-pool becomes
//! max-pool with stride 1 followed by a blur-pool).

use burn::nn::conv::Conv2d;
use burn::nn::pool::{MaxPool2d, MaxPool2dConfig};
use burn::nn::{BatchNorm, PaddingConfig2d};
use burn::prelude::*;

use super::layers::{bn, conv, conv_bn, fold, relu, BlurPool};
use super::Stage;

#[derive(Module, Debug)]
pub struct ResStem {
    pub conv1: Conv2d,
    pub bn1: Option<BatchNorm>,
    pub pool: MaxPool2d,
    pub blur: Option<BlurPool>,
}

impl ResStem {
    pub fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        let x = self.pool.forward(relu(conv_bn(&self.conv1, &self.bn1, x)));
        match &self.blur {
            Some(b) => b.forward(x),
            None => x,
        }
    }
}

/// The projection shortcut of the first block of a stage.
#[derive(Module, Debug)]
pub struct Shortcut {
    pub blur: Option<BlurPool>,
    pub conv: Conv2d,
    pub bn: Option<BatchNorm>,
}

/// A basic block (two 3x3 convolutions) or, with `conv3`, a bottleneck block (1x1, 3x3, 1x1).
#[derive(Module, Debug)]
pub struct ResBlock {
    pub conv1: Conv2d,
    pub bn1: Option<BatchNorm>,
    pub conv2: Conv2d,
    pub bn2: Option<BatchNorm>,
    pub conv3: Option<Conv2d>,
    pub bn3: Option<BatchNorm>,
    pub downsample: Option<Shortcut>,
    /// Anti-aliasing blur-pool that replaces the block's stride.
    pub blur: Option<BlurPool>,
}

impl ResBlock {
    pub fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        let identity = match &self.downsample {
            Some(s) => {
                let y = match &s.blur {
                    Some(b) => b.forward(x.clone()),
                    None => x.clone(),
                };
                conv_bn(&s.conv, &s.bn, y)
            }
            None => x.clone(),
        };
        let blur = |y: Tensor<4>| match &self.blur {
            Some(b) => b.forward(y),
            None => y,
        };
        let out = match &self.conv3 {
            // Basic: the stride sits in conv1 (or in the blur after it).
            None => {
                let y = blur(relu(conv_bn(&self.conv1, &self.bn1, x)));
                conv_bn(&self.conv2, &self.bn2, y)
            }
            // Bottleneck (torchvision v1.5): the stride sits in the 3x3 conv2.
            Some(c3) => {
                let y = relu(conv_bn(&self.conv1, &self.bn1, x));
                let y = blur(relu(conv_bn(&self.conv2, &self.bn2, y)));
                conv_bn(c3, &self.bn3, y)
            }
        };
        relu(out + identity)
    }
}

#[derive(Module, Debug)]
pub struct ResStage {
    pub blocks: Vec<ResBlock>,
}

impl ResStem {
    pub fn fold_batch_norm(&mut self) {
        fold(&mut self.conv1, &mut self.bn1);
    }
}

impl ResBlock {
    pub fn fold_batch_norm(&mut self) {
        fold(&mut self.conv1, &mut self.bn1);
        fold(&mut self.conv2, &mut self.bn2);
        if let Some(c3) = &mut self.conv3 {
            fold(c3, &mut self.bn3);
        }
        if let Some(s) = &mut self.downsample {
            fold(&mut s.conv, &mut s.bn);
        }
    }
}

impl ResStage {
    pub fn forward(&self, mut x: Tensor<4>) -> Tensor<4> {
        for b in &self.blocks {
            x = b.forward(x);
        }
        x
    }
}

/// Stages of a ResNet: `depth` 18, 34 or 50. Returns (stages, output channels).
pub fn build(depth: usize, width: f64, anti_alias: bool, device: &Device) -> (Vec<Stage>, usize) {
    let (layers, bottleneck) = match depth {
        18 => ([2, 2, 2, 2], false),
        34 => ([3, 4, 6, 3], false),
        _ => ([3, 4, 6, 3], true),
    };
    let expansion = if bottleneck { 4 } else { 1 };
    let ch = |c: usize| super::scaled(c, width);
    let stem_out = ch(64);
    let blur = |c: usize| anti_alias.then(|| BlurPool::new(c, 2, 4, device));
    let mut stages = vec![Stage::ResStem(ResStem {
        conv1: conv(3, stem_out, 7, 2, device),
        bn1: bn(stem_out, device),
        pool: MaxPool2dConfig::new([3, 3])
            .with_strides(if anti_alias { [1, 1] } else { [2, 2] })
            .with_padding(PaddingConfig2d::Explicit(1, 1, 1, 1))
            .init(),
        blur: blur(stem_out),
    })];
    let mut c_in = stem_out;
    for (i, &n) in layers.iter().enumerate() {
        let planes = ch(64 << i);
        let stride = if i == 0 { 1 } else { 2 };
        let mut blocks = Vec::new();
        for j in 0..n {
            let s = if j == 0 { stride } else { 1 };
            let conv_stride = if anti_alias { 1 } else { s };
            let c_out = planes * expansion;
            let downsample = (j == 0 && (s != 1 || c_in != c_out)).then(|| Shortcut {
                blur: (anti_alias && s == 2).then(|| BlurPool::new(c_in, 2, 4, device)),
                conv: conv(c_in, c_out, 1, conv_stride, device),
                bn: bn(c_out, device),
            });
            let aa_blur = (anti_alias && s == 2).then(|| BlurPool::new(planes, 2, 4, device));
            let block = if bottleneck {
                ResBlock {
                    conv1: conv(c_in, planes, 1, 1, device),
                    bn1: bn(planes, device),
                    conv2: conv(planes, planes, 3, conv_stride, device),
                    bn2: bn(planes, device),
                    conv3: Some(conv(planes, c_out, 1, 1, device)),
                    bn3: bn(c_out, device),
                    downsample,
                    blur: aa_blur,
                }
            } else {
                ResBlock {
                    conv1: conv(c_in, planes, 3, conv_stride, device),
                    bn1: bn(planes, device),
                    conv2: conv(planes, planes, 3, 1, device),
                    bn2: bn(planes, device),
                    conv3: None,
                    bn3: None,
                    downsample,
                    blur: aa_blur,
                }
            };
            blocks.push(block);
            c_in = c_out;
        }
        stages.push(Stage::Residual(ResStage { blocks }));
    }
    (stages, c_in)
}
