//! The classifier interface every evaluation and audit uses: images in, class probabilities
//! out. Trained models, test-time augmentation and ensembles all implement it, so an audit
//! never cares which one it measures.

use std::path::Path;

use anyhow::Result;
use burn::prelude::*;
use burn::tensor::activation;
use dermrobust_core::imaging::Image;

use crate::models::checkpoint::{self, ModelMeta};
use crate::models::{normalise, Classifier};
use crate::models::input::images_to_tensor;

pub trait ImageClassifier: Send + Sync {
    /// Class names, in the order of the probabilities.
    fn classes(&self) -> &[String];
    /// Side of the square input the classifier expects.
    fn input_size(&self) -> usize;
    /// Class probabilities of each image (images at `input_size`, raw `[0, 1]` RGB).
    fn predict(&self, images: &[Image]) -> Result<Vec<Vec<f32>>>;
    /// A short description for reports.
    fn describe(&self) -> String;
    /// Forward passes of the underlying network per image (test-time views x ensemble members).
    fn views(&self) -> usize {
        1
    }
}

/// Boxed and borrowed classifiers are classifiers too, so TTA and ensembles can wrap a loaded
/// model, an ensemble or a reference without caring which.
macro_rules! forward_classifier {
    ($($ty:ty),*) => {$(
        impl<C: ImageClassifier + ?Sized> ImageClassifier for $ty {
            fn classes(&self) -> &[String] {
                (**self).classes()
            }
            fn input_size(&self) -> usize {
                (**self).input_size()
            }
            fn predict(&self, images: &[Image]) -> Result<Vec<Vec<f32>>> {
                (**self).predict(images)
            }
            fn describe(&self) -> String {
                (**self).describe()
            }
            fn views(&self) -> usize {
                (**self).views()
            }
        }
    )*};
}
forward_classifier!(Box<C>, &C);

/// The softmax of one row of logits (numerically stable).
pub fn softmax(logits: &[f32]) -> Vec<f32> {
    let max = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let e: Vec<f32> = logits.iter().map(|v| (v - max).exp()).collect();
    let sum: f32 = e.iter().sum();
    e.into_iter().map(|v| v / sum).collect()
}

/// A trained model on the CPU, in inference mode.
pub struct TrainedModel {
    pub model: Classifier,
    pub meta: ModelMeta,
    pub device: Device,
    pub batch_size: usize,
}

impl TrainedModel {
    pub fn load(path: &Path) -> Result<Self> {
        let device = crate::device::inference_device();
        let (model, meta) = checkpoint::load(path, &device)?;
        // Batch norm folded into the convolutions: same outputs, less work per image.
        Ok(TrainedModel { model: model.valid().fold_batch_norm(), meta, device, batch_size: 64 })
    }

    /// Logits of raw `[0, 1]` input.
    pub fn logits(&self, x: Tensor<4>) -> Tensor<2> {
        self.model.forward(normalise(x, &self.meta.config))
    }
}

impl ImageClassifier for TrainedModel {
    fn classes(&self) -> &[String] {
        &self.meta.classes
    }

    fn input_size(&self) -> usize {
        self.meta.preprocess.size
    }

    fn predict(&self, images: &[Image]) -> Result<Vec<Vec<f32>>> {
        let k = self.meta.classes.len();
        let mut out = Vec::with_capacity(images.len());
        for chunk in images.chunks(self.batch_size.max(1)) {
            let probs = activation::softmax(self.logits(images_to_tensor(chunk, &self.device)), 1);
            let flat: Vec<f32> = probs.try_into_vec_as::<f32>().map_err(|e| anyhow::anyhow!("{e:?}"))?;
            out.extend(flat.chunks(k).map(<[f32]>::to_vec));
        }
        Ok(out)
    }

    fn describe(&self) -> String {
        let c = &self.meta.config;
        format!("{}{} x{} ({} classes)", c.arch, if c.anti_alias { " anti-aliased" } else { "" }, c.width, c.num_classes)
    }
}

/// An ensemble: the mean probability of several classifiers with the same classes.
pub struct Ensemble {
    pub members: Vec<Box<dyn ImageClassifier>>,
}

impl ImageClassifier for Ensemble {
    fn classes(&self) -> &[String] {
        self.members[0].classes()
    }

    fn input_size(&self) -> usize {
        self.members[0].input_size()
    }

    fn predict(&self, images: &[Image]) -> Result<Vec<Vec<f32>>> {
        let mut sum: Vec<Vec<f32>> = vec![vec![0.0; self.classes().len()]; images.len()];
        for m in &self.members {
            for (acc, p) in sum.iter_mut().zip(m.predict(images)?) {
                acc.iter_mut().zip(p).for_each(|(a, v)| *a += v);
            }
        }
        let n = self.members.len() as f32;
        Ok(sum.into_iter().map(|v| v.into_iter().map(|x| x / n).collect()).collect())
    }

    fn describe(&self) -> String {
        format!("ensemble of {}: {}", self.members.len(), self.members[0].describe())
    }

    fn views(&self) -> usize {
        self.members.iter().map(|m| m.views()).sum()
    }
}

/// How a classifier's probabilities become a decision.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum DecisionRule {
    /// The most probable class, as trained (Maron et al.).
    #[default]
    Argmax,
    /// The most probable class after correcting the probabilities to equal class priors
    /// (dividing by each class's share of the training images), so that a model trained on
    /// imbalanced data does not decide (nearly) everything for the majority class.
    Balanced,
}

/// Prior correction (Saerens et al. 2002; the "logit adjustment" of Menon et al. 2021): each
/// class probability divided by that class's share of the training images, renormalised. For a
/// calibrated model this is the posterior under equal class priors, whose argmax maximises
/// balanced accuracy. A binary model's ranking (AUROC) is unchanged: the corrected positive
/// probability is a monotone function of the original.
pub struct PriorCorrected<C: ImageClassifier> {
    pub inner: C,
    /// Class shares of the training images, in the classifier's class order (positive).
    pub priors: Vec<f32>,
}

impl<C: ImageClassifier> PriorCorrected<C> {
    pub fn new(inner: C, priors: Vec<f32>) -> Result<Self> {
        if priors.len() != inner.classes().len() || priors.iter().any(|&p| !(p > 0.0 && p.is_finite())) {
            anyhow::bail!("prior correction needs one positive share per class ({} classes), got {priors:?}", inner.classes().len());
        }
        Ok(PriorCorrected { inner, priors })
    }
}

impl<C: ImageClassifier> ImageClassifier for PriorCorrected<C> {
    fn classes(&self) -> &[String] {
        self.inner.classes()
    }

    fn input_size(&self) -> usize {
        self.inner.input_size()
    }

    fn predict(&self, images: &[Image]) -> Result<Vec<Vec<f32>>> {
        Ok(self
            .inner
            .predict(images)?
            .into_iter()
            .map(|p| {
                let adjusted: Vec<f32> = p.iter().zip(&self.priors).map(|(v, prior)| v / prior).collect();
                let sum: f32 = adjusted.iter().sum();
                adjusted.into_iter().map(|v| v / sum).collect()
            })
            .collect())
    }

    fn describe(&self) -> String {
        format!("{}, balanced decision", self.inner.describe())
    }

    fn views(&self) -> usize {
        self.inner.views()
    }
}

/// The class prior a model learned, which `--decision balanced` divides by: equal shares when its
/// training balanced the classes (oversampling or inverse-frequency class weights), else the
/// training part's class shares. Dividing an already balanced model by the data's shares would
/// push its decisions toward the rare classes.
pub fn learned_prior(balanced_training: bool, labels: &[usize], train: &[usize], classes: usize) -> Result<Vec<f32>> {
    if balanced_training {
        Ok(vec![1.0 / classes as f32; classes])
    } else {
        class_shares(labels, train, classes)
    }
}

/// Each class's share of the images `indices` of `labels` (for [`PriorCorrected`]).
pub fn class_shares(labels: &[usize], indices: &[usize], classes: usize) -> Result<Vec<f32>> {
    let mut counts = vec![0usize; classes];
    for &i in indices {
        counts[labels[i]] += 1;
    }
    if let Some(c) = counts.iter().position(|&n| n == 0) {
        anyhow::bail!("class {c} has no training image, so its prior is unknown");
    }
    Ok(counts.iter().map(|&n| n as f32 / indices.len() as f32).collect())
}
