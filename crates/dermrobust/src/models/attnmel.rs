//! AttnMel-CNN (Yan, Kawahara and Hamarneh, IPMI 2019, "Melanoma recognition via visual attention").
//!
//! A VGG-16 backbone (torchvision's `vgg16_bn` layout, [`super::vgg`]) without dense layers, and two
//! attention modules on the outputs of the third and fourth max-pools (`pool-3`, `pool-4`), both
//! guided by the fifth (`pool-5`, the global feature `G`):
//!
//! ```text
//! R = phi * ReLU(W_l * F + up(W_g * G)),   A = Sigmoid(R),   g_i = GAP(A ⊙ F)
//! logits = Linear([GAP(G), g_3, g_4])
//! ```
//!
//! Details the paper leaves out are taken from the authors' code
//! (github.com/SaoYan/IPMI2019-AttnMel, `networks.py`, `AttentionBlock` and `AttnVGG`):
//! - `W_l` and `W_g` are 1x1 convolutions to 256 filters without bias; `phi` (the paper's `W`) is a
//!   1x1 convolution to one channel with a bias.
//! - `up` is `F.interpolate(..., mode='bilinear', align_corners=False)` by 4 (pool-3) and 2 (pool-4);
//!   here the up-sampling goes to the local map's size, which is the same for inputs divisible by 32.
//! - The published models use `normalize_attn=False`: the attention map is a sigmoid (not a softmax over
//!   positions) and the attended features are globally average pooled (not summed).
//! - The classifier sees `cat(GAP(pool-5), g_3, g_4)` (512 + 256 + 512 features at full width), with
//!   no dropout.
//! - `reset_parameters`: attention convolutions He-initialised (`kaiming_normal_`, fan-in, ReLU gain),
//!   biases zero; the linear classifier N(0, 0.01) with zero bias.
//!
//! The attention maps are returned beside the logits (`ModelOutput::maps`, [`MAP_POOL3`], [`MAP_POOL4`]).

use burn::module::Param;
use burn::nn::conv::{Conv2d, Conv2dConfig};
use burn::nn::{Initializer, Linear, LinearConfig};
use burn::prelude::*;
use burn::tensor::activation::sigmoid;
use burn::tensor::module::interpolate;
use burn::tensor::ops::{InterpolateMode, InterpolateOptions};

use super::layers::{conv_forward, relu};

/// Name of the pool-3 attention map in [`super::ModelOutput::maps`].
pub const MAP_POOL3: &str = "attention-pool3";
/// Name of the pool-4 attention map.
pub const MAP_POOL4: &str = "attention-pool4";
/// Indices of the backbone stages whose outputs are pool-3, pool-4 and pool-5 (VGG blocks 3, 4, 5).
pub const TAPS: [usize; 3] = [2, 3, 4];
/// Filters of `W_l` and `W_g` (Yan et al.: 256, at every width).
pub const ATTENTION_FILTERS: usize = 256;

/// One attention module: local features `F` guided by the global map `G`.
#[derive(Module, Debug)]
pub struct AttentionBlock {
    pub w_l: Conv2d,
    pub w_g: Conv2d,
    pub phi: Conv2d,
}

fn conv1x1(c_in: usize, c_out: usize, bias: bool, device: &Device) -> Conv2d {
    // PyTorch's kaiming_normal_(mode='fan_in', nonlinearity='relu'): std = sqrt(2 / fan_in).
    let he = Initializer::KaimingNormal { gain: std::f64::consts::SQRT_2, fan_out_only: false };
    let mut conv = Conv2dConfig::new([c_in, c_out], [1, 1]).with_bias(bias).with_initializer(he).init(device);
    if bias {
        conv.bias = Some(Param::from_tensor(Tensor::zeros([c_out], device)));
    }
    conv
}

impl AttentionBlock {
    pub fn new(c_local: usize, c_global: usize, filters: usize, device: &Device) -> Self {
        AttentionBlock { w_l: conv1x1(c_local, filters, false, device), w_g: conv1x1(c_global, filters, false, device), phi: conv1x1(filters, 1, true, device) }
    }

    /// The attention map `A` `[N, 1, h, w]` (values in (0, 1)) and the pooled attended features
    /// `[N, C]` of local features `[N, C, h, w]` and global features `[N, C_g, h_g, w_g]`.
    pub fn forward(&self, local: Tensor<4>, global: Tensor<4>) -> (Tensor<4>, Tensor<2>) {
        let [n, c, h, w] = local.dims();
        let l = conv_forward(&self.w_l, local.clone());
        let mut g = conv_forward(&self.w_g, global);
        let [_, _, hg, wg] = g.dims();
        if (hg, wg) != (h, w) {
            g = interpolate(g, InterpolateOptions::new(InterpolateMode::Bilinear).with_align_corners(false).with_output_size([h, w]));
        }
        let a = sigmoid(conv_forward(&self.phi, relu(l + g)));
        let pooled: Tensor<2> = (local * a.clone()).mean_dims(&[2, 3]).reshape([n, c]);
        (a, pooled)
    }
}

/// The two attention modules of AttnMel-CNN (part of the classifier's head, so they train at the
/// head's learning rate and stay trainable while the backbone is frozen).
#[derive(Module, Debug)]
pub struct AttnMelAttention {
    pub pool3: AttentionBlock,
    pub pool4: AttentionBlock,
}

impl AttnMelAttention {
    /// Channels of pool-3, pool-4 and pool-5.
    pub fn new(channels: [usize; 3], device: &Device) -> Self {
        AttnMelAttention {
            pool3: AttentionBlock::new(channels[0], channels[2], ATTENTION_FILTERS, device),
            pool4: AttentionBlock::new(channels[1], channels[2], ATTENTION_FILTERS, device),
        }
    }

    /// The classifier's input `[N, C3 + C4 + C5, 1, 1]` (as a 1x1 map, so the head's pooling is the
    /// identity) in Yan's order `[GAP(pool-5), g_3, g_4]`, and the two attention maps.
    pub fn forward(&self, pool3: Tensor<4>, pool4: Tensor<4>, pool5: Tensor<4>) -> (Tensor<4>, Vec<(String, Tensor<4>)>) {
        let [n, c5, _, _] = pool5.dims();
        let g: Tensor<2> = pool5.clone().mean_dims(&[2, 3]).reshape([n, c5]);
        let (a3, g3) = self.pool3.forward(pool3, pool5.clone());
        let (a4, g4) = self.pool4.forward(pool4, pool5);
        let features = Tensor::cat(vec![g, g3, g4], 1);
        let total = features.dims()[1];
        (features.reshape([n, total, 1, 1]), vec![(MAP_POOL3.to_string(), a3), (MAP_POOL4.to_string(), a4)])
    }
}

/// Yan's linear classifier initialisation: weights N(0, 0.01), bias zero.
pub fn classifier(features: usize, classes: usize, device: &Device) -> Linear {
    let mut l = LinearConfig::new(features, classes).with_initializer(Initializer::Normal { mean: 0.0, std: 0.01 }).init(device);
    l.bias = Some(Param::from_tensor(Tensor::zeros([classes], device)));
    l
}
