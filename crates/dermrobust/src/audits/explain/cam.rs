//! The class-activation-map family, designed as pytorch-grad-cam's `BaseCAM`: one base captures
//! a layer's activations `A` and the gradients `G` of the target logit with respect to them,
//! asks the method for its low-resolution map, then applies ReLU, min-max scaling to [0, 1],
//! bilinear upsampling to the input size (half-pixel centres, as cv2.resize) and scales again.
//! Methods differ only in [`CamMethod::low_resolution`]: most give channel weights `w_k` and the
//! map `sum_k w_k A_k`; HiResCAM and LayerCAM weight element by element.

use anyhow::{bail, Result};
use dermrobust_core::imaging::Image;
use serde::{Deserialize, Serialize};

use crate::evaluation::gradients::{DifferentiableClassifier, GradTarget, LayerCapture};

/// A member of the CAM family.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum CamMethod {
    /// Selvaraju et al. 2017: `w_k` = spatial mean of `G_k`.
    GradCam,
    /// Chattopadhay et al. 2018 (pytorch-grad-cam's eq. 19 form): `a_ij = G^2 / (2 G^2 + sum(A) G^3 + 1e-6)`
    /// (0 where `G = 0`), `w_k = sum_ij a_ij ReLU(G_ij)`.
    GradCamPlusPlus,
    /// Fu et al. 2020: `w_k = sum_ij G_ij A_ij / (sum_ij A_ij + 1e-7)`.
    XGradCam,
    /// Draelos and Carin 2020: map `= sum_k G_k * A_k` element by element (no spatial averaging).
    HiResCam,
    /// Jiang et al. 2021: map `= sum_k ReLU(G_k) * A_k`.
    LayerCam,
}

impl CamMethod {
    pub fn name(self) -> &'static str {
        match self {
            CamMethod::GradCam => "gradcam",
            CamMethod::GradCamPlusPlus => "gradcam++",
            CamMethod::XGradCam => "xgradcam",
            CamMethod::HiResCam => "hirescam",
            CamMethod::LayerCam => "layercam",
        }
    }

    /// The channel weights of one image (`a`, `g`: `[C, H*W]`), for methods that have them.
    pub fn weights(self, a: &[f32], g: &[f32], c: usize, hw: usize) -> Option<Vec<f32>> {
        let ch = |k: usize| (&a[k * hw..(k + 1) * hw], &g[k * hw..(k + 1) * hw]);
        match self {
            CamMethod::GradCam => Some((0..c).map(|k| ch(k).1.iter().sum::<f32>() / hw as f32).collect()),
            CamMethod::GradCamPlusPlus => Some(
                (0..c)
                    .map(|k| {
                        let (ak, gk) = ch(k);
                        let sum_a: f32 = ak.iter().sum();
                        gk.iter()
                            .map(|&gv| {
                                if gv == 0.0 {
                                    return 0.0;
                                }
                                let g2 = gv * gv;
                                let aij = g2 / (2.0 * g2 + sum_a * g2 * gv + 1e-6);
                                gv.max(0.0) * aij
                            })
                            .sum()
                    })
                    .collect(),
            ),
            CamMethod::XGradCam => Some(
                (0..c)
                    .map(|k| {
                        let (ak, gk) = ch(k);
                        let sum_a: f32 = ak.iter().sum();
                        ak.iter().zip(gk).map(|(av, gv)| gv * av / (sum_a + 1e-7)).sum()
                    })
                    .collect(),
            ),
            CamMethod::HiResCam | CamMethod::LayerCam => None,
        }
    }

    /// The map of one image at the layer's resolution, before ReLU (`a`, `g`: `[C, H*W]`).
    pub fn low_resolution(self, a: &[f32], g: &[f32], c: usize, hw: usize) -> Vec<f32> {
        let mut cam = vec![0f32; hw];
        match self.weights(a, g, c, hw) {
            Some(w) => {
                for k in 0..c {
                    for p in 0..hw {
                        cam[p] += w[k] * a[k * hw + p];
                    }
                }
            }
            None => {
                for k in 0..c {
                    for p in 0..hw {
                        let gv = g[k * hw + p];
                        let gv = if self == CamMethod::LayerCam { gv.max(0.0) } else { gv };
                        cam[p] += gv * a[k * hw + p];
                    }
                }
            }
        }
        cam
    }
}

/// pytorch-grad-cam's `scale_cam_image` (without the resize): `(x - min) / (1e-7 + max(x - min))`.
pub fn scale_unit(v: &mut [f32]) {
    let min = v.iter().copied().fold(f32::INFINITY, f32::min);
    let max = v.iter().map(|x| x - min).fold(0f32, f32::max);
    v.iter_mut().for_each(|x| *x = (*x - min) / (1e-7 + max));
}

/// The shared last steps of every map: ReLU, scale to [0, 1], bilinear upsampling to `size`
/// (half-pixel centres), scale again. `low` is `h x w`.
pub fn finish_map(mut low: Vec<f32>, w: usize, h: usize, size: usize) -> Image {
    low.iter_mut().for_each(|v| *v = v.max(0.0));
    scale_unit(&mut low);
    let mut up = Image::new(1, w, h, low).resized(size, size);
    up.data.iter_mut().for_each(|v| *v = v.max(0.0));
    scale_unit(&mut up.data);
    up
}

/// One CAM: the map at the layer's resolution (after ReLU, unscaled) and at the input's.
#[derive(Clone, Debug)]
pub struct Cam {
    pub low: Image,
    pub map: Image,
}

/// CAMs of `method` at `layer` for `images`, with respect to the logit of `classes[i]`.
pub fn cams(model: &dyn DifferentiableClassifier, images: &[Image], layer: &str, classes: &[usize], method: CamMethod) -> Result<(Vec<Cam>, LayerCapture)> {
    if images.len() != classes.len() {
        bail!("{} images, {} target classes", images.len(), classes.len());
    }
    let capture = model.layer_gradient(images, layer, &GradTarget::ClassScore(classes.to_vec()))?;
    Ok((cams_from_capture(&capture, method, model.input_size()), capture))
}

/// CAMs from an existing capture (several methods share one forward and backward pass).
pub fn cams_from_capture(capture: &LayerCapture, method: CamMethod, size: usize) -> Vec<Cam> {
    let [n, c, h, w] = capture.shape;
    let per = c * h * w;
    (0..n)
        .map(|i| {
            let a = &capture.activations[i * per..(i + 1) * per];
            let g = &capture.gradients[i * per..(i + 1) * per];
            let low = method.low_resolution(a, g, c, h * w);
            let low_img = Image::new(1, w, h, low.iter().map(|v| v.max(0.0)).collect());
            Cam { map: finish_map(low, w, h, size), low: low_img }
        })
        .collect()
}
