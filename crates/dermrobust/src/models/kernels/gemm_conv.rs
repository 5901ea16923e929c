//! Convolution as one matrix product over the whole batch, forward and both gradients, as a burn
//! backend extension for burn-flex (issue 14).
//!
//! Why: burn-flex 0.22 runs a convolution as one small matrix product per image and tile, and its
//! backward as burn's generic one (the weight gradient is a convolution with the output gradient as
//! kernel: a very thin product). On ResNet-18 at 64 px that made every convolution 3-4x slower
//! than PyTorch's oneDNN. Here the input is unfolded once for the whole batch (im2col, `[K, M]`
//! with `K = c_in * kh * kw` and `M = batch * out_h * out_w`), and each pass is a single large
//! product with the `gemm` crate (the one burn-flex uses), spread over all threads:
//!
//! - forward: `Y[o, m] = W[o, k] · cols[k, m]`;
//! - weight gradient: `dW[o, k] = G[o, m] · cols[k, m]ᵀ`;
//! - input gradient: `dcols[k, m] = W[o, k]ᵀ · G[o, m]`, folded back onto the input (col2im).
//!
//! Only float32 on burn-flex, groups 1, dilation 1 (every convolution of our architectures);
//! [`gemm_conv2d`] says whether a tensor can take this path, and the model layer falls back to
//! burn's convolution otherwise (other devices, other dtypes).

use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::checkpoint::strategy::CheckpointStrategy;
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops, OpsKind};
use burn::backend::autodiff::NodeId;
use burn::backend::flex::FlexTensor;
use burn::backend::tensor::FloatTensor;
use burn::backend::{backend_extension, Autodiff, Backend, Flex, TensorMetadata};
use burn::prelude::*;
use burn::tensor::DType;
use rayon::prelude::*;

/// The shape of one convolution: input `[n, c, h, w]`, weights `[o, c, kh, kw]`, stride
/// `[sh, sw]`, padding `[top, left, bottom, right]`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ConvGeometry {
    pub n: usize,
    pub c: usize,
    pub h: usize,
    pub w: usize,
    pub o: usize,
    pub kh: usize,
    pub kw: usize,
    pub stride: [usize; 2],
    pub padding: [usize; 4],
}

impl ConvGeometry {
    pub fn new(input: [usize; 4], weight: [usize; 4], stride: [usize; 2], padding: [usize; 4]) -> Self {
        let [n, c, h, w] = input;
        let [o, wc, kh, kw] = weight;
        assert_eq!(c, wc, "convolution: the input has {c} channels, the weights expect {wc}");
        assert!(stride[0] > 0 && stride[1] > 0, "convolution: stride must be positive");
        assert!(h + padding[0] + padding[2] >= kh && w + padding[1] + padding[3] >= kw, "convolution: the kernel is larger than the padded input");
        ConvGeometry { n, c, h, w, o, kh, kw, stride, padding }
    }
    pub fn out_h(&self) -> usize {
        (self.h + self.padding[0] + self.padding[2] - self.kh) / self.stride[0] + 1
    }
    pub fn out_w(&self) -> usize {
        (self.w + self.padding[1] + self.padding[3] - self.kw) / self.stride[1] + 1
    }
    /// Output positions per image.
    fn p(&self) -> usize {
        self.out_h() * self.out_w()
    }
    /// Rows of the unfolded input: one per input channel and kernel offset.
    fn k(&self) -> usize {
        self.c * self.kh * self.kw
    }
    /// Columns of the unfolded input: one per image and output position.
    fn m(&self) -> usize {
        self.n * self.p()
    }
}

/// `dst[m, n] = lhs[m, k] · rhs[k, n]` (or `+=` with `accumulate`), with row and column strides
/// for each input and a row stride for `dst`, on all threads or on this one.
#[allow(clippy::too_many_arguments)]
fn matmul(m: usize, n: usize, k: usize, dst: &mut [f32], dst_row_stride: usize, accumulate: bool, lhs: &[f32], lhs_strides: [usize; 2], rhs: &[f32], rhs_strides: [usize; 2], threads: gemm::Parallelism) {
    let last = |s: [usize; 2], rows: usize, cols: usize| if rows == 0 || cols == 0 { 0 } else { (rows - 1) * s[0] + (cols - 1) * s[1] + 1 };
    assert!(dst_row_stride >= n && dst.len() >= last([dst_row_stride, 1], m, n));
    assert!(lhs.len() >= last(lhs_strides, m, k) && rhs.len() >= last(rhs_strides, k, n));
    if m == 0 || n == 0 || k == 0 {
        if !accumulate {
            dst.chunks_mut(dst_row_stride).take(m).for_each(|row| row[..n].fill(0.0));
        }
        return;
    }
    // SAFETY: the asserts above keep every index the strides reach inside the slices, and `dst`
    // (a unique borrow) does not alias the inputs.
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            dst.as_mut_ptr(),
            1,
            dst_row_stride as isize,
            accumulate,
            lhs.as_ptr(),
            lhs_strides[1] as isize,
            lhs_strides[0] as isize,
            rhs.as_ptr(),
            rhs_strides[1] as isize,
            rhs_strides[0] as isize,
            if accumulate { 1.0 } else { 0.0 },
            1.0,
            false,
            false,
            false,
            threads,
        );
    }
}

const ALL_THREADS: gemm::Parallelism = gemm::Parallelism::Rayon(0);
const ONE_THREAD: gemm::Parallelism = gemm::Parallelism::None;

/// From this many output positions per image on, each image is its own matrix product (the
/// threads share the images), which reads and writes the NCHW tensors in place; below it, one
/// product over the whole batch, with the output gradient or the result copied channel-major.
const PER_IMAGE_MIN_POSITIONS: usize = 64;

/// The output positions `lo..hi` (out of `out`) whose input coordinate `o * stride + offset -
/// pad` falls inside `0..size`.
#[inline]
fn valid_outputs(out: usize, stride: usize, offset: usize, pad: usize, size: usize) -> (usize, usize) {
    // o * stride + offset >= pad  and  o * stride + offset < pad + size
    let lo = pad.saturating_sub(offset).div_ceil(stride);
    let hi = if pad + size > offset { (pad + size - offset).div_ceil(stride) } else { 0 };
    (lo.min(out), hi.min(out).max(lo.min(out)))
}

/// The unfolded input `[K, M]`: row `(c, i, j)` holds, for every image and output position, the
/// input pixel that kernel offset `(i, j)` of channel `c` meets (0 in the padding).
fn im2col(x: &[f32], g: &ConvGeometry) -> Vec<f32> {
    let (p, m, ow) = (g.p(), g.m(), g.out_w());
    let mut cols = vec![0.0f32; g.k() * m];
    let (sh, sw) = (g.stride[0], g.stride[1]);
    cols.par_chunks_mut(m.max(1)).enumerate().for_each(|(row, out)| {
        let (c, i, j) = (row / (g.kh * g.kw), row / g.kw % g.kh, row % g.kw);
        let (y_lo, y_hi) = valid_outputs(g.out_h(), sh, i, g.padding[0], g.h);
        let (x_lo, x_hi) = valid_outputs(ow, sw, j, g.padding[1], g.w);
        for n in 0..g.n {
            let plane = &x[(n * g.c + c) * g.h * g.w..][..g.h * g.w];
            for oy in y_lo..y_hi {
                let src = &plane[(oy * sh + i - g.padding[0]) * g.w..][..g.w];
                let dst = &mut out[n * p + oy * ow..][..ow];
                let first = x_lo * sw + j - g.padding[1];
                if sw == 1 {
                    dst[x_lo..x_hi].copy_from_slice(&src[first..first + (x_hi - x_lo)]);
                } else {
                    for (d, v) in dst[x_lo..x_hi].iter_mut().zip(src[first..].iter().step_by(sw)) {
                        *d = *v;
                    }
                }
            }
        }
    });
    cols
}

/// The adjoint of [`im2col`]: sums every column entry back onto the input pixel it came from.
/// `cols` is `[K, M]`, or with `image_major` `[n, K, p]`. Returns the input gradient
/// `[n, c, h, w]`.
fn col2im(cols: &[f32], g: &ConvGeometry, image_major: bool) -> Vec<f32> {
    let (p, m, ow, plane) = (g.p(), g.m(), g.out_w(), g.h * g.w);
    // Channel-major `[c, n, h, w]` first, so that each thread owns one channel's pixels.
    let mut by_channel = vec![0.0f32; g.c * g.n * plane];
    let (sh, sw) = (g.stride[0], g.stride[1]);
    by_channel.par_chunks_mut((g.n * plane).max(1)).enumerate().for_each(|(c, dx)| {
        for i in 0..g.kh {
            let (y_lo, y_hi) = valid_outputs(g.out_h(), sh, i, g.padding[0], g.h);
            for j in 0..g.kw {
                let (x_lo, x_hi) = valid_outputs(ow, sw, j, g.padding[1], g.w);
                let r = (c * g.kh + i) * g.kw + j;
                for n in 0..g.n {
                    let row = if image_major { &cols[(n * g.k() + r) * p..][..p] } else { &cols[r * m + n * p..][..p] };
                    for oy in y_lo..y_hi {
                        let dst = &mut dx[n * plane + (oy * sh + i - g.padding[0]) * g.w..][..g.w];
                        let src = &row[oy * ow..][x_lo..x_hi];
                        let first = x_lo * sw + j - g.padding[1];
                        if sw == 1 {
                            dst[first..first + src.len()].iter_mut().zip(src).for_each(|(d, v)| *d += v);
                        } else {
                            dst[first..].iter_mut().step_by(sw).zip(src).for_each(|(d, v)| *d += v);
                        }
                    }
                }
            }
        }
    });
    let mut dx = vec![0.0f32; by_channel.len()];
    dx.par_chunks_mut((g.c * plane).max(1)).enumerate().for_each(|(n, image)| {
        for c in 0..g.c {
            image[c * plane..][..plane].copy_from_slice(&by_channel[(c * g.n + n) * plane..][..plane]);
        }
    });
    dx
}

/// `[n, o, p]` (NCHW) to `[o, n * p]`, the layout of the products.
fn channels_first(y: &[f32], n: usize, o: usize, p: usize) -> Vec<f32> {
    let mut out = vec![0.0f32; y.len()];
    out.par_chunks_mut((n * p).max(1)).enumerate().for_each(|(ch, row)| {
        for b in 0..n {
            row[b * p..][..p].copy_from_slice(&y[(b * o + ch) * p..][..p]);
        }
    });
    out
}

/// `[o, n * p]` back to `[n, o, p]`.
fn batch_first(z: &[f32], n: usize, o: usize, p: usize) -> Vec<f32> {
    let mut out = vec![0.0f32; z.len()];
    out.par_chunks_mut((o * p).max(1)).enumerate().for_each(|(b, image)| {
        for ch in 0..o {
            image[ch * p..][..p].copy_from_slice(&z[ch * n * p + b * p..][..p]);
        }
    });
    out
}

/// Forward: `x` `[n, c, h, w]`, `weight` `[o, c, kh, kw]` -> `[n, o, out_h, out_w]`.
pub fn forward_f32(x: &[f32], weight: &[f32], g: &ConvGeometry) -> Vec<f32> {
    let (k, m, p) = (g.k(), g.m(), g.p());
    let cols = im2col(x, g);
    if p >= PER_IMAGE_MIN_POSITIONS {
        let mut y = vec![0.0f32; g.n * g.o * p];
        y.par_chunks_mut(g.o * p).enumerate().for_each(|(n, image)| {
            matmul(g.o, p, k, image, p, false, weight, [k, 1], &cols[n * p..], [m, 1], ONE_THREAD);
        });
        return y;
    }
    let mut z = vec![0.0f32; g.o * m];
    matmul(g.o, m, k, &mut z, m, false, weight, [k, 1], &cols, [m, 1], ALL_THREADS);
    batch_first(&z, g.n, g.o, p)
}

/// Gradient with respect to the weights `[o, c, kh, kw]` of the output gradient `grad`.
pub fn weight_grad_f32(x: &[f32], grad: &[f32], g: &ConvGeometry) -> Vec<f32> {
    let (k, m, p) = (g.k(), g.m(), g.p());
    let cols = im2col(x, g);
    if m < k {
        // Small maps: a short inner dimension, and a large output that gemm spreads over threads.
        let gm = channels_first(grad, g.n, g.o, p);
        let mut dw = vec![0.0f32; g.o * k];
        // cols read transposed: element (row m, column k) sits at k * M + m.
        matmul(g.o, k, m, &mut dw, k, false, &gm, [m, 1], &cols, [1, m], ALL_THREADS);
        return dw;
    }
    // Large maps: a long inner dimension (all images and positions) and a small output, which gemm
    // spreads over threads poorly: each thread takes a share of the images instead, and the
    // partial gradients are summed. Each computes dWᵀ[k, o] = cols[k, m] · Gᵀ[m, o], so that the
    // large operand (cols) is read along its rows and only the small one (G) transposed.
    let per_image = p >= PER_IMAGE_MIN_POSITIONS;
    let gm = if per_image { vec![] } else { channels_first(grad, g.n, g.o, p) };
    let parts = rayon::current_num_threads().clamp(1, g.n.max(1));
    let images_per_part = g.n.div_ceil(parts);
    let partial: Vec<Vec<f32>> = (0..parts)
        .into_par_iter()
        .map(|t| {
            let images = (t * images_per_part).min(g.n)..((t + 1) * images_per_part).min(g.n);
            let mut dwt = vec![0.0f32; k * g.o];
            if per_image {
                // Gᵀ of one image, read from NCHW: element (p, o) at o * P + p.
                for (i, n) in images.enumerate() {
                    matmul(k, g.o, p, &mut dwt, g.o, i > 0, &cols[n * p..], [m, 1], &grad[n * g.o * p..], [1, p], ONE_THREAD);
                }
            } else {
                let (a, b) = (images.start * p, images.end * p);
                // Gᵀ channel-major: element (m, o) at o * M + m.
                matmul(k, g.o, b - a, &mut dwt, g.o, false, &cols[a..], [m, 1], &gm[a..], [1, m], ONE_THREAD);
            }
            dwt
        })
        .collect();
    let mut parts = partial.into_iter();
    let mut dwt = parts.next().unwrap_or_else(|| vec![0.0; k * g.o]);
    for part in parts {
        dwt.iter_mut().zip(part).for_each(|(a, b)| *a += b);
    }
    let mut dw = vec![0.0f32; g.o * k];
    for (kk, row) in dwt.chunks_exact(g.o.max(1)).enumerate() {
        for (o, v) in row.iter().enumerate() {
            dw[o * k + kk] = *v;
        }
    }
    dw
}

/// Gradient with respect to the input `[n, c, h, w]` of the output gradient `grad`.
pub fn input_grad_f32(weight: &[f32], grad: &[f32], g: &ConvGeometry) -> Vec<f32> {
    let (k, m, p) = (g.k(), g.m(), g.p());
    // dcols[k, m] = Wᵀ[k, o] · G[o, m]; the weights read transposed: element (k, o) at o * K + k.
    if p >= PER_IMAGE_MIN_POSITIONS {
        let mut dcols = vec![0.0f32; g.n * k * p];
        dcols.par_chunks_mut(k * p).enumerate().for_each(|(n, image)| {
            matmul(k, p, g.o, image, p, false, weight, [1, k], &grad[n * g.o * p..], [p, 1], ONE_THREAD);
        });
        return col2im(&dcols, g, true);
    }
    let gm = channels_first(grad, g.n, g.o, p);
    let mut dcols = vec![0.0f32; k * m];
    matmul(k, m, g.o, &mut dcols, m, false, weight, [1, k], &gm, [m, 1], ALL_THREADS);
    col2im(&dcols, g, false)
}

/// The extension: the three passes as backend operations, so that autodiff can call the
/// gradients in its backward pass.
#[backend_extension(Flex, Autodiff)]
pub trait GemmConvBackend: Backend {
    fn gemm_conv2d(x: FloatTensor<Self>, weight: FloatTensor<Self>, stride: [usize; 2], padding: [usize; 4]) -> FloatTensor<Self>;
    fn gemm_conv2d_input_grad(weight: FloatTensor<Self>, grad: FloatTensor<Self>, input_hw: [usize; 2], stride: [usize; 2], padding: [usize; 4]) -> FloatTensor<Self>;
    fn gemm_conv2d_weight_grad(x: FloatTensor<Self>, grad: FloatTensor<Self>, kernel: [usize; 2], stride: [usize; 2], padding: [usize; 4]) -> FloatTensor<Self>;
}

fn dims4(shape: &[usize]) -> [usize; 4] {
    shape.try_into().expect("a rank-4 tensor")
}

/// A contiguous float32 copy of a flex tensor's values (no copy when already contiguous).
fn flex_values(t: &FlexTensor) -> FlexTensor {
    assert_eq!(t.dtype(), DType::F32, "gemm convolution: float32 only (gemm_conv2d checks this first)");
    t.to_contiguous()
}

fn flex_tensor(values: Vec<f32>, shape: [usize; 4]) -> FlexTensor {
    FlexTensor::from_data(TensorData::new(values, shape))
}

impl GemmConvBackend for Flex {
    fn gemm_conv2d(x: FloatTensor<Self>, weight: FloatTensor<Self>, stride: [usize; 2], padding: [usize; 4]) -> FloatTensor<Self> {
        let (x, weight) = (flex_values(&x), flex_values(&weight));
        let g = ConvGeometry::new(dims4(x.layout().shape()), dims4(weight.layout().shape()), stride, padding);
        let y = forward_f32(x.storage::<f32>(), weight.storage::<f32>(), &g);
        flex_tensor(y, [g.n, g.o, g.out_h(), g.out_w()])
    }

    fn gemm_conv2d_input_grad(weight: FloatTensor<Self>, grad: FloatTensor<Self>, input_hw: [usize; 2], stride: [usize; 2], padding: [usize; 4]) -> FloatTensor<Self> {
        let (weight, grad) = (flex_values(&weight), flex_values(&grad));
        let [o, c, kh, kw] = dims4(weight.layout().shape());
        let n = grad.layout().shape()[0];
        let g = ConvGeometry::new([n, c, input_hw[0], input_hw[1]], [o, c, kh, kw], stride, padding);
        let dx = input_grad_f32(weight.storage::<f32>(), grad.storage::<f32>(), &g);
        flex_tensor(dx, [n, c, g.h, g.w])
    }

    fn gemm_conv2d_weight_grad(x: FloatTensor<Self>, grad: FloatTensor<Self>, kernel: [usize; 2], stride: [usize; 2], padding: [usize; 4]) -> FloatTensor<Self> {
        let (x, grad) = (flex_values(&x), flex_values(&grad));
        let input = dims4(x.layout().shape());
        let o = grad.layout().shape()[1];
        let g = ConvGeometry::new(input, [o, input[1], kernel[0], kernel[1]], stride, padding);
        let dw = weight_grad_f32(x.storage::<f32>(), grad.storage::<f32>(), &g);
        flex_tensor(dw, [o, g.c, g.kh, g.kw])
    }
}

impl<B: Backend + GemmConvBackend, C: CheckpointStrategy> GemmConvBackend for Autodiff<B, C> {
    fn gemm_conv2d(x: FloatTensor<Self>, weight: FloatTensor<Self>, stride: [usize; 2], padding: [usize; 4]) -> FloatTensor<Self> {
        #[derive(Debug)]
        struct GemmConv2d;

        impl<B: Backend + GemmConvBackend> Backward<B, 2> for GemmConv2d {
            type State = (NodeId, NodeId, [usize; 2], [usize; 4]);

            fn backward(self, ops: Ops<Self::State, 2>, grads: &mut Gradients, checkpointer: &mut Checkpointer) {
                let [node_x, node_weight] = ops.parents;
                let grad = grads.consume::<B>(&ops.node);
                let (x_state, weight_state, stride, padding) = ops.state;
                let x = checkpointer.retrieve_node_output::<B::FloatTensorPrimitive>(x_state);
                let weight = checkpointer.retrieve_node_output::<B::FloatTensorPrimitive>(weight_state);
                if let Some(node) = node_x {
                    let [_, _, h, w] = dims4(&x.shape());
                    grads.register::<B>(node.id, B::gemm_conv2d_input_grad(weight.clone(), grad.clone(), [h, w], stride, padding));
                }
                if let Some(node) = node_weight {
                    let [_, _, kh, kw] = dims4(&weight.shape());
                    grads.register::<B>(node.id, B::gemm_conv2d_weight_grad(x, grad, [kh, kw], stride, padding));
                }
            }
        }

        match GemmConv2d.prepare::<C>([x.node(), weight.node()]).compute_bound().stateful() {
            OpsKind::Tracked(mut prep) => {
                let x_state = prep.checkpoint(&x);
                let weight_state = prep.checkpoint(&weight);
                let y = B::gemm_conv2d(x.into_primitive(), weight.into_primitive(), stride, padding);
                prep.finish((x_state, weight_state, stride, padding), y)
            }
            OpsKind::UnTracked(prep) => prep.finish(B::gemm_conv2d(x.into_primitive(), weight.into_primitive(), stride, padding)),
        }
    }

    // The gradients themselves are not differentiated again (no second-order training here):
    // they are computed on the inner backend and returned untracked.
    fn gemm_conv2d_input_grad(weight: FloatTensor<Self>, grad: FloatTensor<Self>, input_hw: [usize; 2], stride: [usize; 2], padding: [usize; 4]) -> FloatTensor<Self> {
        FloatTensor::<Self>::new(B::gemm_conv2d_input_grad(weight.into_primitive(), grad.into_primitive(), input_hw, stride, padding))
    }

    fn gemm_conv2d_weight_grad(x: FloatTensor<Self>, grad: FloatTensor<Self>, kernel: [usize; 2], stride: [usize; 2], padding: [usize; 4]) -> FloatTensor<Self> {
        FloatTensor::<Self>::new(B::gemm_conv2d_weight_grad(x.into_primitive(), grad.into_primitive(), kernel, stride, padding))
    }
}

/// Whether `x` can take the batch-wide path: float32 on burn-flex (with or without autodiff).
pub fn supported(x: &Tensor<4>) -> bool {
    super::on_flex_f32(x)
}

/// Convolution without bias (groups 1, dilation 1) through the extension; `padding` is top, left,
/// bottom, right. Call only where [`supported`] holds.
pub fn gemm_conv2d(x: Tensor<4>, weight: Tensor<4>, stride: [usize; 2], padding: [usize; 4]) -> Tensor<4> {
    use burn::backend::Dispatch;
    Tensor::from_dispatch(<Dispatch as GemmConvBackend>::gemm_conv2d(x.into_dispatch(), weight.into_dispatch(), stride, padding))
}

/// The two gradients through the extension directly (for tests and benchmarks of the kernels).
pub fn gemm_conv2d_grads(x: Tensor<4>, weight: Tensor<4>, grad: Tensor<4>, stride: [usize; 2], padding: [usize; 4]) -> (Tensor<4>, Tensor<4>) {
    use burn::backend::Dispatch;
    let [_, _, h, w] = x.dims();
    let [_, _, kh, kw] = weight.dims();
    let dx = <Dispatch as GemmConvBackend>::gemm_conv2d_input_grad(weight.into_dispatch(), grad.clone().into_dispatch(), [h, w], stride, padding);
    let dw = <Dispatch as GemmConvBackend>::gemm_conv2d_weight_grad(x.into_dispatch(), grad.into_dispatch(), [kh, kw], stride, padding);
    (Tensor::from_dispatch(dx), Tensor::from_dispatch(dw))
}
