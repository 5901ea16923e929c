//! Where the model looks (Mishra et al. 2019): saliency maps and their audit against lesion
//! masks. Gradient methods (the CAM family of [`cam`], guided backpropagation, guided Grad-CAM)
//! need a [`DifferentiableModel`]; the black-box methods ([`blackbox`]: occlusion, RISE) run on
//! any [`ImageClassifier`], ONNX models included. Every method returns maps in one format: a
//! 1-channel [`Image`] of the input's size with values in [0, 1].

pub mod attention;
pub mod blackbox;
pub mod cam;
pub mod guided;
pub mod metrics;
pub mod render;
pub mod run;

use std::fmt;
use std::str::FromStr;

use anyhow::{bail, Result};
use dermrobust_core::imaging::Image;
use serde::{Deserialize, Serialize};

pub use blackbox::{OcclusionSettings, RiseSettings};
pub use cam::CamMethod;
use crate::evaluation::gradients::DifferentiableModel;
use crate::evaluation::ImageClassifier;

/// An explanation method (`--methods`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Method {
    Cam(CamMethod),
    GuidedBackprop,
    /// Grad-CAM times guided backpropagation, pixel by pixel (Selvaraju et al. 2017).
    GuidedGradCam,
    Occlusion,
    Rise,
    /// An attention model's own attention map (AttnMel-CNN: `attention-pool3`, `attention-pool4`;
    /// `attention` asks for both).
    Attention(attention::AttentionLayer),
}

impl Method {
    pub const ALL: [Method; 12] = [
        Method::Cam(CamMethod::GradCam),
        Method::Cam(CamMethod::GradCamPlusPlus),
        Method::Cam(CamMethod::XGradCam),
        Method::Cam(CamMethod::HiResCam),
        Method::Cam(CamMethod::LayerCam),
        Method::GuidedBackprop,
        Method::GuidedGradCam,
        Method::Occlusion,
        Method::Rise,
        Method::Attention(attention::AttentionLayer::Both),
        Method::Attention(attention::AttentionLayer::Pool3),
        Method::Attention(attention::AttentionLayer::Pool4),
    ];

    pub fn name(self) -> &'static str {
        match self {
            Method::Cam(c) => c.name(),
            Method::GuidedBackprop => "guided-backprop",
            Method::GuidedGradCam => "guided-gradcam",
            Method::Occlusion => "occlusion",
            Method::Rise => "rise",
            Method::Attention(attention::AttentionLayer::Both) => "attention",
            Method::Attention(attention::AttentionLayer::Pool3) => "attention-pool3",
            Method::Attention(attention::AttentionLayer::Pool4) => "attention-pool4",
        }
    }

    /// `methods` with `attention` replaced by the two attention maps (pool-3, pool-4).
    pub fn expand(methods: &[Method]) -> Vec<Method> {
        let mut out = Vec::new();
        for &m in methods {
            let add: Vec<Method> = match m {
                Method::Attention(attention::AttentionLayer::Both) => vec![Method::Attention(attention::AttentionLayer::Pool3), Method::Attention(attention::AttentionLayer::Pool4)],
                m => vec![m],
            };
            for a in add {
                if !out.contains(&a) {
                    out.push(a);
                }
            }
        }
        out
    }

    /// Whether the method needs gradients (a dermrobust model, not ONNX).
    pub fn needs_gradients(self) -> bool {
        !matches!(self, Method::Occlusion | Method::Rise)
    }
}

impl fmt::Display for Method {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Method {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let s = s.trim().to_ascii_lowercase().replace('_', "-");
        let s = match s.as_str() {
            "grad-cam" => "gradcam".to_string(),
            "grad-cam++" | "gradcam-plus-plus" | "gradcampp" => "gradcam++".to_string(),
            "gbp" | "guided-backpropagation" => "guided-backprop".to_string(),
            _ => s,
        };
        Method::ALL.into_iter().find(|m| m.name() == s).ok_or_else(|| format!("unknown method '{s}' (choose {})", Method::ALL.map(Method::name).join(", ")))
    }
}

/// What explains: a model with gradients, or only predictions.
pub enum Explainer<'a> {
    Gradients(&'a DifferentiableModel),
    BlackBox(&'a dyn ImageClassifier),
}

impl Explainer<'_> {
    pub fn classifier(&self) -> &dyn ImageClassifier {
        match self {
            Explainer::Gradients(m) => *m,
            Explainer::BlackBox(c) => *c,
        }
    }
}

/// Settings shared by the methods.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct MethodSettings {
    /// The layer of the CAM methods (default: the last backbone stage).
    pub layer: Option<String>,
    pub occlusion: OcclusionSettings,
    pub rise: RiseSettings,
}

impl Default for MethodSettings {
    fn default() -> Self {
        MethodSettings { layer: None, occlusion: OcclusionSettings::default(), rise: RiseSettings::default() }
    }
}

impl MethodSettings {
    /// The CAM layer for `model`.
    pub fn layer_for(&self, model: &DifferentiableModel) -> Result<String> {
        use crate::evaluation::gradients::DifferentiableClassifier;
        let names = model.layer_names();
        match &self.layer {
            Some(l) if names.contains(l) => Ok(l.clone()),
            Some(l) => bail!("no layer '{l}' (layers: {})", names.join(", ")),
            None => names.last().cloned().ok_or_else(|| anyhow::anyhow!("the model has no named layers")),
        }
    }
}

/// Maps of `method` for `images`, each for its class `classes[i]` (1 channel, input size,
/// values in [0, 1]).
pub fn explain(explainer: &Explainer, method: Method, images: &[Image], classes: &[usize], settings: &MethodSettings) -> Result<Vec<Image>> {
    if images.is_empty() {
        return Ok(vec![]);
    }
    match (method, explainer) {
        (Method::Occlusion, e) => blackbox::occlusion(e.classifier(), images, classes, &settings.occlusion),
        (Method::Rise, e) => blackbox::rise(e.classifier(), images, classes, &settings.rise),
        (Method::Attention(layer), Explainer::Gradients(model)) => attention::attention_maps(model, images, layer),
        (m, Explainer::BlackBox(c)) => bail!("{m} needs gradients, which {} cannot give: use occlusion or rise", c.describe()),
        (Method::Cam(c), Explainer::Gradients(model)) => {
            let layer = settings.layer_for(model)?;
            Ok(cam::cams(*model, images, &layer, classes, c)?.0.into_iter().map(|c| c.map).collect())
        }
        (Method::GuidedBackprop, Explainer::Gradients(model)) => Ok(guided::guided_backprop(model, images, classes)?.0.iter().map(guided::saliency).collect()),
        (Method::GuidedGradCam, Explainer::Gradients(model)) => {
            let layer = settings.layer_for(model)?;
            let cams = cam::cams(*model, images, &layer, classes, CamMethod::GradCam)?.0;
            let (gb, _) = guided::guided_backprop(model, images, classes)?;
            Ok(gb.iter().zip(cams).map(|(g, c)| guided_gradcam(g, &c.map)).collect())
        }
    }
}

/// Maps of several methods for the same images: the CAM methods share one capture of the
/// layer, and guided backprop and guided Grad-CAM one guided pass. `out[m][i]` is method
/// `methods[m]`'s map of image `i`.
pub fn explain_many(explainer: &Explainer, methods: &[Method], images: &[Image], classes: &[usize], settings: &MethodSettings) -> Result<Vec<Vec<Image>>> {
    let model = match explainer {
        Explainer::Gradients(m) if !images.is_empty() => *m,
        _ => return methods.iter().map(|&m| explain(explainer, m, images, classes, settings)).collect(),
    };
    let wants_cam = methods.iter().any(|m| matches!(m, Method::Cam(_) | Method::GuidedGradCam));
    let capture = if wants_cam {
        let layer = settings.layer_for(model)?;
        Some(cam::cams(model, images, &layer, classes, CamMethod::GradCam)?.1)
    } else {
        None
    };
    let guided = if methods.iter().any(|m| matches!(m, Method::GuidedBackprop | Method::GuidedGradCam)) { Some(guided::guided_backprop(model, images, classes)?.0) } else { None };
    let size = images[0].width;
    methods
        .iter()
        .map(|&m| match m {
            Method::Cam(c) => Ok(cam::cams_from_capture(capture.as_ref().expect("captured"), c, size).into_iter().map(|c| c.map).collect()),
            Method::GuidedBackprop => Ok(guided.as_ref().expect("guided").iter().map(guided::saliency).collect()),
            Method::GuidedGradCam => {
                let cams = cam::cams_from_capture(capture.as_ref().expect("captured"), CamMethod::GradCam, size);
                Ok(guided.as_ref().expect("guided").iter().zip(cams).map(|(g, c)| guided_gradcam(g, &c.map)).collect())
            }
            other => explain(explainer, other, images, classes, settings),
        })
        .collect()
}

/// Guided Grad-CAM: the guided-backprop gradient times the Grad-CAM map, pixel by pixel, as a
/// saliency in [0, 1].
pub fn guided_gradcam(guided_gradient: &Image, gradcam: &Image) -> Image {
    let mut prod = guided_gradient.clone();
    let hw = prod.width * prod.height;
    for ch in 0..prod.channels {
        for p in 0..hw {
            prod.data[ch * hw + p] *= gradcam.data[p];
        }
    }
    guided::saliency(&prod)
}
