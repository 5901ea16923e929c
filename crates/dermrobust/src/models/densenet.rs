//! DenseNet-121 (Huang et al. 2017) in torchvision's layout, optionally anti-aliased
//! (transition average-pooling replaced by a blur-pool; stem max-pool by max-pool + blur-pool).

use burn::nn::conv::Conv2d;
use burn::nn::pool::{AvgPool2d, AvgPool2dConfig, MaxPool2d, MaxPool2dConfig};
use burn::nn::{BatchNorm, PaddingConfig2d};
use burn::prelude::*;

use super::kernels::batch_norm::batch_norm;
use super::layers::{conv, conv_forward, relu, BlurPool};
use burn::nn::BatchNormConfig;

/// DenseNet normalises before its convolutions (pre-activation), so its batch norms cannot be
/// folded into them and stay plain `BatchNorm`s.
fn bn(channels: usize, device: &Device) -> BatchNorm {
    BatchNormConfig::new(channels).init(device)
}
use super::Stage;

#[derive(Module, Debug)]
pub struct DenseStem {
    pub conv0: Conv2d,
    pub norm0: BatchNorm,
    pub pool0: MaxPool2d,
    pub blur: Option<BlurPool>,
}

impl DenseStem {
    pub fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        let x = self.pool0.forward(relu(batch_norm(&self.norm0, conv_forward(&self.conv0, x))));
        match &self.blur {
            Some(b) => b.forward(x),
            None => x,
        }
    }
}

#[derive(Module, Debug)]
pub struct DenseLayer {
    pub norm1: BatchNorm,
    pub conv1: Conv2d,
    pub norm2: BatchNorm,
    pub conv2: Conv2d,
}

#[derive(Module, Debug)]
pub struct DenseBlock {
    pub layers: Vec<DenseLayer>,
}

impl DenseBlock {
    pub fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        let mut features = x;
        for l in &self.layers {
            let y = conv_forward(&l.conv1, relu(batch_norm(&l.norm1, features.clone())));
            let y = conv_forward(&l.conv2, relu(batch_norm(&l.norm2, y)));
            features = Tensor::cat(vec![features, y], 1);
        }
        features
    }
}

#[derive(Module, Debug)]
pub struct Transition {
    pub norm: BatchNorm,
    pub conv: Conv2d,
    pub pool: Option<AvgPool2d>,
    pub blur: Option<BlurPool>,
}

impl Transition {
    pub fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        let x = conv_forward(&self.conv, relu(batch_norm(&self.norm, x)));
        match (&self.pool, &self.blur) {
            (_, Some(b)) => b.forward(x),
            (Some(p), None) => p.forward(x),
            (None, None) => x,
        }
    }
}

/// The final batch norm and ReLU of DenseNet.
#[derive(Module, Debug)]
pub struct FinalNorm {
    pub norm5: BatchNorm,
}

impl FinalNorm {
    pub fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        relu(batch_norm(&self.norm5, x))
    }
}

/// DenseNet-121 stages. Returns (stages, output channels).
pub fn build(width: f64, anti_alias: bool, device: &Device) -> (Vec<Stage>, usize) {
    let growth = super::scaled(32, width);
    let init = super::scaled(64, width);
    let bn_size = 4;
    let mut stages = vec![Stage::DenseStem(DenseStem {
        conv0: conv(3, init, 7, 2, device),
        norm0: bn(init, device),
        pool0: MaxPool2dConfig::new([3, 3])
            .with_strides(if anti_alias { [1, 1] } else { [2, 2] })
            .with_padding(PaddingConfig2d::Explicit(1, 1, 1, 1))
            .init(),
        blur: anti_alias.then(|| BlurPool::new(init, 2, 4, device)),
    })];
    let mut c = init;
    let blocks = [6, 12, 24, 16];
    for (i, &n) in blocks.iter().enumerate() {
        let mut layers = Vec::new();
        for _ in 0..n {
            layers.push(DenseLayer {
                norm1: bn(c, device),
                conv1: conv(c, bn_size * growth, 1, 1, device),
                norm2: bn(bn_size * growth, device),
                conv2: conv(bn_size * growth, growth, 3, 1, device),
            });
            c += growth;
        }
        stages.push(Stage::Dense(DenseBlock { layers }));
        if i + 1 < blocks.len() {
            let out = c / 2;
            stages.push(Stage::Transition(Transition {
                norm: bn(c, device),
                conv: conv(c, out, 1, 1, device),
                pool: (!anti_alias).then(|| AvgPool2dConfig::new([2, 2]).init()),
                blur: anti_alias.then(|| BlurPool::new(out, 2, 4, device)),
            }));
            c = out;
        }
    }
    stages.push(Stage::Final(FinalNorm { norm5: bn(c, device) }));
    (stages, c)
}
