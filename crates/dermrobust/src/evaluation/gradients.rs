//! Differentiable classifiers: logits, gradients with respect to the input image, and
//! activations with their gradients at a named layer. The shared ground of gradient attacks
//! (FGSM, PGD) and gradient explanations (Grad-CAM, guided backprop).
//!
//! Inputs are raw `[0, 1]` RGB; the model's normalisation is inside the graph, so input gradients
//! are in pixel units. The network runs on the autodiff device with every module frozen: batch
//! norm uses its running statistics and dropout is off, exactly as in inference (and as PyTorch's
//! `model.eval()`), while gradients still flow to the input.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use burn::module::Module;
use burn::prelude::*;
use burn::tensor::activation::{log_softmax, softmax};
use dermrobust_core::imaging::Image;

use super::classifier::{softmax as softmax_of, ImageClassifier};
use super::load::is_onnx;
use crate::models::checkpoint::{self, ModelMeta};
use crate::models::input::images_to_tensor;
use crate::models::run_dir::resolve_model_path;
use crate::models::{normalise, Classifier};

/// What a gradient is taken of, per image of a batch (summed over the batch; images do not
/// interact, so each image's gradient is that of its own term).
#[derive(Clone, Debug, PartialEq)]
pub enum GradTarget {
    /// The logit (pre-softmax score) of the given class of each image, as pytorch-grad-cam's
    /// `ClassifierOutputTarget`. For an ensemble: the mean of the members' logits.
    ClassScore(Vec<usize>),
    /// The cross-entropy loss of each image with the given labels: `-log p(label)`, where `p` is
    /// the classifier's probability (for an ensemble, the mean of the members' probabilities,
    /// which is what the ensemble predicts). Untargeted attacks ascend it; targeted ones descend
    /// it with the target as label.
    Loss(Vec<usize>),
}

impl GradTarget {
    fn classes(&self) -> &[usize] {
        match self {
            GradTarget::ClassScore(c) | GradTarget::Loss(c) => c,
        }
    }
}

/// Activations of a layer and the gradient of the target with respect to them, `[N, C, H, W]`.
#[derive(Clone, Debug)]
pub struct LayerCapture {
    pub layer: String,
    pub shape: [usize; 4],
    pub activations: Vec<f32>,
    pub gradients: Vec<f32>,
    /// Logits of each image, `[N][classes]`.
    pub logits: Vec<Vec<f32>>,
}

/// One input gradient per image (an image of gradients, same size) and each image's logits.
#[derive(Clone, Debug)]
pub struct InputGradient {
    pub gradients: Vec<Image>,
    pub logits: Vec<Vec<f32>>,
    /// The value of the target per image (logit or loss).
    pub values: Vec<f32>,
}

/// A classifier that can give gradients: the interface every gradient attack and explanation
/// method uses.
pub trait DifferentiableClassifier: ImageClassifier {
    /// Logits of each image.
    fn logits(&self, images: &[Image]) -> Result<Vec<Vec<f32>>>;
    /// The gradient of `target` with respect to each raw input image.
    fn input_gradient(&self, images: &[Image], target: &GradTarget) -> Result<InputGradient>;
    /// Names of the layers [`layer_gradient`](Self::layer_gradient) can capture.
    fn layer_names(&self) -> Vec<String>;
    /// Activations of `layer` and the gradient of `target` with respect to them.
    fn layer_gradient(&self, images: &[Image], layer: &str, target: &GradTarget) -> Result<LayerCapture>;
}

/// One network of a [`DifferentiableModel`].
struct Member {
    /// Frozen, on the autodiff device.
    model: Classifier,
    /// The same weights without autodiff, for plain forward passes.
    inference: Classifier,
    meta: ModelMeta,
}

impl Member {
    fn new(model: Classifier, meta: ModelMeta) -> Self {
        let model = model.freeze();
        Member { inference: model.valid(), model, meta }
    }
}

/// dermrobust models (one, or an ensemble with the same classes) on the autodiff device.
pub struct DifferentiableModel {
    members: Vec<Member>,
    device: Device,
    paths: Vec<PathBuf>,
}

/// The message for a model that cannot give gradients.
pub fn no_gradients_message(path: &Path, needs: &str) -> String {
    format!(
        "{} is an ONNX model: it runs without gradients, so {needs} cannot use it. \
         Audit it with the black-box methods (brittleness, differential-evolution attacks, artefacts, occlusion), \
         or give a dermrobust model (a training run or model folder)",
        path.display()
    )
}

impl DifferentiableModel {
    /// Load one model (a run or model folder).
    pub fn load(path: &Path) -> Result<Self> {
        Self::load_ensemble(&[path.to_path_buf()])
    }

    /// Load several models as one ensemble (the mean of their probabilities).
    pub fn load_ensemble(paths: &[PathBuf]) -> Result<Self> {
        if paths.is_empty() {
            bail!("no model given");
        }
        let device = crate::device::autodiff_device();
        let mut members: Vec<Member> = Vec::new();
        for p in paths {
            if is_onnx(p) {
                bail!("{}", no_gradients_message(p, "gradient methods"));
            }
            let (model, meta) = checkpoint::load(&resolve_model_path(p), &device).with_context(|| format!("loading {}", p.display()))?;
            if let Some(first) = members.first() {
                if first.meta.classes != meta.classes || first.meta.preprocess != meta.preprocess {
                    bail!("{}: an ensemble's models must share classes and input size", p.display());
                }
            }
            members.push(Member::new(model, meta));
        }
        Ok(DifferentiableModel { members, device, paths: paths.to_vec() })
    }

    /// From an already built network (tests, freshly trained models).
    pub fn from_model(model: Classifier, meta: ModelMeta) -> Self {
        let device = crate::device::autodiff_device();
        DifferentiableModel { members: vec![Member::new(model.fork(&device), meta)], device, paths: vec![] }
    }

    /// An ensemble of already built networks with the same classes and input.
    pub fn from_models(models: Vec<(Classifier, ModelMeta)>) -> Result<Self> {
        let device = crate::device::autodiff_device();
        let mut members: Vec<Member> = Vec::new();
        for (model, meta) in models {
            if members.first().is_some_and(|first| first.meta.classes != meta.classes || first.meta.preprocess != meta.preprocess) {
                bail!("an ensemble's models must share classes and input size");
            }
            members.push(Member::new(model.fork(&device), meta));
        }
        if members.is_empty() {
            bail!("no model given");
        }
        Ok(DifferentiableModel { members, device, paths: vec![] })
    }

    fn first(&self) -> &Member {
        &self.members[0]
    }

    fn check(&self, images: &[Image], target: Option<&GradTarget>) -> Result<()> {
        if images.is_empty() {
            bail!("no image given");
        }
        let size = self.input_size();
        if let Some(img) = images.iter().find(|i| i.width != size || i.height != size || i.channels != 3) {
            bail!("the model expects {size}x{size} RGB images, got {}x{}x{}", img.width, img.height, img.channels);
        }
        if let Some(t) = target {
            let k = self.classes().len();
            if t.classes().len() != images.len() {
                bail!("{} target classes for {} images", t.classes().len(), images.len());
            }
            if let Some(&c) = t.classes().iter().find(|&&c| c >= k) {
                bail!("target class {c} does not exist (the model has {k} classes)");
            }
        }
        Ok(())
    }

    /// The scalar objective (summed over the batch) and its per-image values, from each
    /// member's logits.
    fn objective(&self, logits: &[Tensor<2>], target: &GradTarget) -> (Tensor<1>, Tensor<2>) {
        let [n, k] = logits[0].dims();
        let mut onehot = vec![0.0f32; n * k];
        for (i, &c) in target.classes().iter().enumerate() {
            onehot[i * k + c] = 1.0;
        }
        let onehot = Tensor::<2>::from_data(TensorData::new(onehot, [n, k]), &self.device);
        let m = logits.len() as f32;
        let per_image: Tensor<2> = match target {
            GradTarget::ClassScore(_) => {
                let mean = logits.iter().cloned().reduce(|a, b| a + b).expect("a member").div_scalar(m);
                (mean * onehot).sum_dim(1)
            }
            GradTarget::Loss(_) if logits.len() == 1 => -(log_softmax(logits[0].clone(), 1) * onehot).sum_dim(1),
            GradTarget::Loss(_) => {
                let mean_p = logits.iter().map(|l| softmax(l.clone(), 1)).reduce(|a, b| a + b).expect("a member").div_scalar(m);
                -((mean_p * onehot).sum_dim(1).clamp_min(1e-12).log())
            }
        };
        (per_image.clone().sum().reshape([1]), per_image)
    }
}

fn rows(t: Tensor<2>) -> Result<Vec<Vec<f32>>> {
    let [_, k] = t.dims();
    let flat: Vec<f32> = t.try_into_vec_as::<f32>().map_err(|e| anyhow::anyhow!("{e:?}"))?;
    Ok(flat.chunks(k).map(<[f32]>::to_vec).collect())
}

fn flat<const D: usize>(t: Tensor<D>) -> Result<Vec<f32>> {
    t.try_into_vec_as::<f32>().map_err(|e| anyhow::anyhow!("{e:?}"))
}

impl ImageClassifier for DifferentiableModel {
    fn classes(&self) -> &[String] {
        &self.first().meta.classes
    }

    fn input_size(&self) -> usize {
        self.first().meta.preprocess.size
    }

    fn predict(&self, images: &[Image]) -> Result<Vec<Vec<f32>>> {
        let logits = self.logits(images)?;
        let m = self.members.len();
        if m == 1 {
            return Ok(logits.iter().map(|l| softmax_of(l)).collect());
        }
        // `logits` of an ensemble are the mean of the members'; the prediction is the mean of
        // their probabilities, as `Ensemble` computes it.
        let mut out = vec![vec![0.0; self.classes().len()]; images.len()];
        for member in &self.members {
            let x = images_to_tensor(images, &self.device).inner();
            let p = rows(softmax(member.inference.forward(normalise(x, &member.meta.config)), 1))?;
            for (o, p) in out.iter_mut().zip(p) {
                o.iter_mut().zip(p).for_each(|(a, v)| *a += v / m as f32);
            }
        }
        Ok(out)
    }

    fn describe(&self) -> String {
        let c = &self.first().meta.config;
        let what = format!("{} x{} ({} classes), differentiable", c.arch, c.width, c.num_classes);
        if self.members.len() > 1 { format!("ensemble of {}: {what}", self.members.len()) } else { what }
    }
}


impl DifferentiableClassifier for DifferentiableModel {
    fn logits(&self, images: &[Image]) -> Result<Vec<Vec<f32>>> {
        self.check(images, None)?;
        let x = images_to_tensor(images, &self.device).inner();
        let m = self.members.len() as f32;
        let sum = self.members.iter().map(|member| member.inference.forward(normalise(x.clone(), &member.meta.config))).reduce(|a, b| a + b).expect("a member");
        rows(sum.div_scalar(m))
    }

    fn input_gradient(&self, images: &[Image], target: &GradTarget) -> Result<InputGradient> {
        self.check(images, Some(target))?;
        let x = images_to_tensor(images, &self.device).require_grad();
        let logits: Vec<Tensor<2>> = self.members.iter().map(|member| member.model.forward(normalise(x.clone(), &member.meta.config))).collect();
        let mean_logits = logits.iter().cloned().reduce(|a, b| a + b).expect("a member").div_scalar(self.members.len() as f32);
        let (objective, per_image) = self.objective(&logits, target);
        let grads = objective.backward();
        let gx = x.grad(&grads).context("the input received no gradient")?;
        let (size, plane) = (self.input_size(), 3 * self.input_size() * self.input_size());
        let g = flat(gx)?;
        Ok(InputGradient {
            gradients: g.chunks(plane).map(|c| Image::new(3, size, size, c.to_vec())).collect(),
            logits: rows(mean_logits.inner())?,
            values: flat(per_image.inner())?,
        })
    }

    fn layer_names(&self) -> Vec<String> {
        self.first().model.stage_names()
    }

    fn layer_gradient(&self, images: &[Image], layer: &str, target: &GradTarget) -> Result<LayerCapture> {
        self.check(images, Some(target))?;
        if self.members.len() > 1 {
            bail!("layer activations of an ensemble are not defined: capture layer '{layer}' of each model on its own");
        }
        let member = self.first();
        let names = member.model.stage_names();
        let index = names.iter().position(|n| n == layer).with_context(|| format!("no layer '{layer}' in {} (layers: {})", member.meta.config.arch, names.join(", ")))?;
        // Split the network at the layer: the activation becomes a leaf of the graph, so its
        // gradient is retained (exactly the gradient a hook would see).
        let x = images_to_tensor(images, &self.device);
        let (activation, logits) = member.model.forward_split(normalise(x, &member.meta.config), index);
        let (objective, _) = self.objective(std::slice::from_ref(&logits), target);
        let grads = objective.backward();
        let ga = activation.grad(&grads).context("the layer received no gradient")?;
        let shape = ga.dims();
        Ok(LayerCapture { layer: layer.to_string(), shape, activations: flat(activation.inner())?, gradients: flat(ga)?, logits: rows(logits.inner())? })
    }
}

impl DifferentiableModel {
    /// The model files this was loaded from (empty for an in-memory model).
    pub fn paths(&self) -> &[PathBuf] {
        &self.paths
    }

    /// The network of a single model (not an ensemble), frozen on the autodiff device, with its
    /// metadata and device: for explanation methods that change the backward pass (guided
    /// backpropagation).
    pub fn network(&self) -> Result<(&Classifier, &ModelMeta, &Device)> {
        if self.members.len() > 1 {
            bail!("this method needs one network, not an ensemble of {}: explain each model on its own", self.members.len());
        }
        let m = self.first();
        Ok((&m.model, &m.meta, &self.device))
    }
}
