//! Classification heads on top of a backbone's feature map.

use burn::nn::{BatchNorm, Dropout, DropoutConfig, Linear, LinearConfig};
use burn::prelude::*;
use serde::{Deserialize, Serialize};

use super::kernels::batch_norm::batch_norm;
use super::layers::{bn, relu};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, Default, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum HeadKind {
    /// fastai's head, used by Maron et al.: concatenated average and max pooling, batch norm,
    /// dropout 0.25, linear to 512, ReLU, batch norm, dropout 0.5, linear.
    #[default]
    Fastai,
    /// Global average pooling, dropout, one linear layer (torchvision's `fc`).
    Linear,
}

#[derive(Module, Debug)]
pub struct Head {
    /// Concatenate max pooling to average pooling (fastai's AdaptiveConcatPool2d).
    pub concat_pool: bool,
    pub bn1: Option<BatchNorm>,
    pub drop1: Dropout,
    pub hidden: Option<Linear>,
    pub bn2: Option<BatchNorm>,
    pub drop2: Dropout,
    pub out: Linear,
    /// AttnMel-CNN's attention modules (Yan et al. 2019), which make the head's input from the
    /// pool-3, pool-4 and pool-5 maps; `None` for every other architecture.
    pub attention: Option<super::attnmel::AttnMelAttention>,
}

impl Head {
    pub fn new(kind: HeadKind, channels: usize, num_classes: usize, dropout: f64, device: &Device) -> Self {
        match kind {
            HeadKind::Fastai => {
                let hidden = 512.min(4 * channels).max(16);
                Head {
                    concat_pool: true,
                    bn1: bn(2 * channels, device),
                    drop1: DropoutConfig::new(dropout / 2.0).init(),
                    hidden: Some(LinearConfig::new(2 * channels, hidden).init(device)),
                    bn2: bn(hidden, device),
                    drop2: DropoutConfig::new(dropout).init(),
                    out: LinearConfig::new(hidden, num_classes).init(device),
                    attention: None,
                }
            }
            HeadKind::Linear => Head {
                concat_pool: false,
                bn1: None,
                drop1: DropoutConfig::new(0.0).init(),
                hidden: None,
                bn2: None,
                drop2: DropoutConfig::new(dropout).init(),
                out: LinearConfig::new(channels, num_classes).init(device),
                attention: None,
            },
        }
    }

    /// Pooled features `[N, C]` (or `[N, 2C]`) of a feature map `[N, C, H, W]`.
    pub fn pool(&self, features: Tensor<4>) -> Tensor<2> {
        let [n, c, h, w] = features.dims();
        let flat: Tensor<3> = features.reshape([n, c, h * w]);
        let avg: Tensor<2> = flat.clone().mean_dim(2).reshape([n, c]);
        if self.concat_pool {
            let max: Tensor<2> = flat.max_dim(2).reshape([n, c]);
            Tensor::cat(vec![max, avg], 1)
        } else {
            avg
        }
    }

    pub fn forward(&self, features: Tensor<4>) -> Tensor<2> {
        let mut x = self.pool(features);
        if let Some(b) = &self.bn1 {
            x = batch_norm(b, x);
        }
        x = self.drop1.forward(x);
        if let Some(h) = &self.hidden {
            x = relu(h.forward(x));
            if let Some(b) = &self.bn2 {
                x = batch_norm(b, x);
            }
        }
        self.out.forward(self.drop2.forward(x))
    }
}
