//! Guided backpropagation (Springenberg et al. 2015): the gradient of the target logit with
//! respect to the input, where every ReLU passes gradient back only where its input was positive
//! AND the gradient arriving at it is positive — pytorch-grad-cam's `GuidedBackpropReLU`.
//!
//! burn's autodiff has no per-op backward override on the dispatch backend, so the modified
//! backward is obtained exactly from standard autodiff: each ReLU of the forward pass (reached
//! through the models' ReLU hook) returns `relu(x).detach() + (x - x.detach()) * M`, whose value
//! is `relu(x)` and whose backward multiplies the incoming gradient by the constant mask `M`; a
//! zero "probe" added to its output records the gradient arriving there. Guided backprop is the
//! gradient with `M_l = [x_l > 0] * [g_l > 0]`, where `g_l` depends only on the masks of ReLUs
//! applied after `l`. Starting from the ordinary masks `[x_l > 0]`, each pass fixes at least the
//! latest ReLU not yet fixed, so the masks reach their (unique) fixed point in at most one pass
//! per ReLU; the loop stops when a pass leaves every mask unchanged.

use std::cell::RefCell;
use std::rc::Rc;

use anyhow::{Context, Result};
use burn::prelude::*;
use dermrobust_core::imaging::Image;

use crate::evaluation::gradients::DifferentiableModel;
use crate::models::input::images_to_tensor;
use crate::models::layers::with_relu_hook;
use crate::models::normalise;

#[derive(Default)]
struct Pass {
    /// The masks to use per ReLU (by call order); `None`: the ordinary `[x > 0]`.
    masks: Vec<Option<Vec<f32>>>,
    /// What this pass saw per ReLU: `[x > 0]` and the probe.
    positive: Vec<Vec<f32>>,
    probes: Vec<Tensor<1>>,
}

fn flat<const D: usize>(t: Tensor<D>) -> Result<Vec<f32>> {
    t.try_into_vec_as::<f32>().map_err(|e| anyhow::anyhow!("{e:?}"))
}

/// Guided-backpropagation gradients (`[3, H, W]` per image, in raw-pixel units) of the logit of
/// `classes[i]`, and the number of passes it took.
pub fn guided_backprop(model: &DifferentiableModel, images: &[Image], classes: &[usize]) -> Result<(Vec<Image>, usize)> {
    let (net, meta, device) = model.network()?;
    guided_backprop_with(&|x| net.forward(normalise(x, &meta.config)), meta.classes.len(), device, images, classes)
}

/// Guided backpropagation through any network given as `forward` (raw `[0, 1]` images on the
/// autodiff `device` to `k` logits) whose ReLUs are [`crate::models::layers::relu`].
pub fn guided_backprop_with(forward: &dyn Fn(Tensor<4>) -> Tensor<2>, k: usize, device: &Device, images: &[Image], classes: &[usize]) -> Result<(Vec<Image>, usize)> {
    anyhow::ensure!(images.len() == classes.len(), "{} images, {} target classes", images.len(), classes.len());
    let state = Rc::new(RefCell::new(Pass::default()));
    let mut passes = 0;
    loop {
        passes += 1;
        {
            let mut s = state.borrow_mut();
            s.positive.clear();
            s.probes.clear();
        }
        let st = state.clone();
        let dev = device.clone();
        let hook: crate::models::layers::ReluHook = Rc::new(move |x: Tensor<1>| {
            let mut s = st.borrow_mut();
            let l = s.positive.len();
            let n = x.dims()[0];
            let positive = x.clone().greater_elem(0.0).float();
            let pos_vec = flat(positive.clone().inner()).unwrap_or_default();
            let mask = match s.masks.get(l).and_then(|m| m.clone()) {
                Some(m) => Tensor::<1>::from_data(TensorData::new(m, [n]), &dev),
                None => positive.detach(),
            };
            let probe = Tensor::<1>::zeros([n], &dev).require_grad();
            s.positive.push(pos_vec);
            s.probes.push(probe.clone());
            burn::tensor::activation::relu(x.clone()).detach() + (x.clone() - x.detach()) * mask + probe
        });
        let x = images_to_tensor(images, device).require_grad();
        let logits = with_relu_hook(hook, || forward(x.clone()));
        let n = images.len();
        let mut onehot = vec![0f32; n * k];
        for (i, &c) in classes.iter().enumerate() {
            anyhow::ensure!(c < k, "target class {c} does not exist (the model has {k} classes)");
            onehot[i * k + c] = 1.0;
        }
        let onehot = Tensor::<2>::from_data(TensorData::new(onehot, [n, k]), device);
        let grads = (logits * onehot).sum().backward();
        let mut s = state.borrow_mut();
        let relus = s.positive.len();
        let mut changed = false;
        let mut new_masks = Vec::with_capacity(relus);
        for l in 0..relus {
            let g = match s.probes[l].grad(&grads) {
                Some(g) => flat(g)?,
                None => vec![0.0; s.positive[l].len()],
            };
            let m: Vec<f32> = s.positive[l].iter().zip(&g).map(|(&p, &gv)| if p > 0.0 && gv > 0.0 { 1.0 } else { 0.0 }).collect();
            if s.masks.get(l).and_then(|o| o.as_ref()) != Some(&m) {
                changed = true;
            }
            new_masks.push(Some(m));
        }
        s.masks = new_masks;
        // The input gradient of this pass used the previous masks: it is the answer once a
        // pass changes none of them (the first pass always sets them).
        if !changed || passes > relus + 1 {
            let gx = x.grad(&grads).context("the input received no gradient")?;
            let size = images[0].width;
            let g = flat(gx)?;
            return Ok((g.chunks(3 * size * size).map(|c| Image::new(3, size, size, c.to_vec())).collect(), passes));
        }
    }
}

/// The 2-D saliency of a 3-channel gradient image: the largest absolute value over channels
/// (Simonyan et al. 2014), scaled to [0, 1].
pub fn saliency(gradient: &Image) -> Image {
    let hw = gradient.width * gradient.height;
    let mut v: Vec<f32> = (0..hw).map(|p| (0..gradient.channels).map(|c| gradient.data[c * hw + p].abs()).fold(0f32, f32::max)).collect();
    super::cam::scale_unit(&mut v);
    Image::new(1, gradient.width, gradient.height, v)
}
