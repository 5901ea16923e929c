//! VGG-16 with batch normalisation (torchvision's `vgg16_bn` layout), its dense layers replaced by global pooling (VGG-16-GAP, as
//! in Yan et al. 2019), optionally anti-aliased (max-pool stride 1 + blur-pool).

use burn::nn::conv::Conv2d;
use burn::nn::pool::{MaxPool2d, MaxPool2dConfig};
use burn::nn::BatchNorm;
use burn::prelude::*;

use super::layers::{bn, conv_bn, conv_with_bias, fold, relu, BlurPool};
use super::Stage;

#[derive(Module, Debug)]
pub struct VggStage {
    pub convs: Vec<Conv2d>,
    /// One per convolution; empty once folded into the convolutions.
    pub norms: Vec<Option<BatchNorm>>,
    pub pool: MaxPool2d,
    pub blur: Option<BlurPool>,
}

impl VggStage {
    pub fn forward(&self, mut x: Tensor<4>) -> Tensor<4> {
        for (i, c) in self.convs.iter().enumerate() {
            x = relu(conv_bn(c, self.norms.get(i).unwrap_or(&None), x));
        }
        let x = self.pool.forward(x);
        match &self.blur {
            Some(b) => b.forward(x),
            None => x,
        }
    }
}

impl VggStage {
    pub fn fold_batch_norm(&mut self) {
        for (c, n) in self.convs.iter_mut().zip(self.norms.iter_mut()) {
            fold(c, n);
        }
    }
}

/// The five VGG-16 stages. Returns (stages, output channels).
pub fn build(width: f64, anti_alias: bool, device: &Device) -> (Vec<Stage>, usize) {
    let plan: [(usize, usize); 5] = [(64, 2), (128, 2), (256, 3), (512, 3), (512, 3)];
    let mut c_in = 3;
    let mut stages = Vec::new();
    for (c, n) in plan {
        let c_out = super::scaled(c, width);
        let mut convs = Vec::new();
        let mut norms = Vec::new();
        for _ in 0..n {
            convs.push(conv_with_bias(c_in, c_out, 3, 1, device));
            norms.push(bn(c_out, device));
            c_in = c_out;
        }
        let stride = if anti_alias { 1 } else { 2 };
        stages.push(Stage::Vgg(VggStage {
            convs,
            norms,
            pool: MaxPool2dConfig::new([2, 2]).with_strides([stride, stride]).init(),
            blur: anti_alias.then(|| BlurPool::new(c_out, 2, 4, device)),
        }));
    }
    (stages, c_in)
}
