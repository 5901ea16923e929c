//! Convolution as large matrix products, forward and both gradients, as a burn backend extension
//! for burn-flex (issue 14).
//!
//! Why: burn-flex 0.22 runs a convolution as one small matrix product per image and tile, and its
//! backward as burn's generic one (the weight gradient is a convolution with the output gradient as
//! kernel: a very thin product). On ResNet-18 at 64 px that made every convolution 3-4x slower
//! than PyTorch's oneDNN. Here the input is unfolded once for the whole batch (im2col, `[K, M]`
//! with `K = c_in * kh * kw` and `M = batch * out_h * out_w`), and each pass is a large product
//! with the `gemm` crate (the one burn-flex uses, here with its AVX-512 kernels):
//!
//! - forward: `Y[o, m] = W[o, k] · cols[k, m]`;
//! - weight gradient: `dW[o, k] = G[o, m] · cols[k, m]ᵀ`;
//! - input gradient: `dcols[k, m] = W[o, k]ᵀ · G[o, m]`, folded back onto the input (col2im).
//!
//! How the work is shared between threads depends on the map size: on maps of at least
//! `PER_IMAGE_MIN_POSITIONS` (64) positions each image is its own product (threads share the images,
//! and the NCHW tensors are read and written in place); on smaller maps one product spans the
//! batch (gemm shares it out), with the output gradient or the result copied channel-major. The
//! weight gradient of large maps sums per-thread partial products, because one product with so
//! long an inner dimension and so small an output is shared out poorly.
//!
//! Behind the same three functions, 3x3 stride-1 convolutions on maps of 16 outputs or more take
//! Winograd's F(4x4, 3x3) instead ([`super::winograd`], 4x fewer multiplications), and
//! convolutions on maps of at most 4 outputs whose taps mostly fall in the padding sum only the
//! taps inside the image ([`super::tiny_maps`]).
//!
//! Only float32 on burn-flex, groups 1, dilation 1 (every convolution of our architectures);
//! [`supported`] says whether a tensor can take this path, and `models::layers::conv_forward`
//! falls back to burn's convolution otherwise (other devices, other dtypes).

use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::checkpoint::strategy::CheckpointStrategy;
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops, OpsKind};
use burn::backend::autodiff::NodeId;
use burn::backend::tensor::FloatTensor;
use burn::backend::{backend_extension, Autodiff, Backend, Flex, TensorMetadata};

use super::{f32_values, flex_tensor, tiny_maps, winograd};
use burn::prelude::*;
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
    out_h: usize,
    out_w: usize,
}

impl ConvGeometry {
    pub fn new(input: [usize; 4], weight: [usize; 4], stride: [usize; 2], padding: [usize; 4]) -> Self {
        let [n, c, h, w] = input;
        let [o, wc, kh, kw] = weight;
        assert_eq!(c, wc, "convolution: the input has {c} channels, the weights expect {wc}");
        assert!(stride[0] > 0 && stride[1] > 0, "convolution: stride must be positive");
        assert!(h + padding[0] + padding[2] >= kh && w + padding[1] + padding[3] >= kw, "convolution: the kernel is larger than the padded input");
        let out_h = (h + padding[0] + padding[2] - kh) / stride[0] + 1;
        let out_w = (w + padding[1] + padding[3] - kw) / stride[1] + 1;
        ConvGeometry { n, c, h, w, o, kh, kw, stride, padding, out_h, out_w }
    }
    pub fn out_h(&self) -> usize {
        self.out_h
    }
    pub fn out_w(&self) -> usize {
        self.out_w
    }
    /// For each kernel offset `(i, j)` (row-major), where it meets the input: computed once per
    /// convolution, not per image and channel.
    fn offsets(&self) -> Vec<Offset> {
        let mut all = Vec::with_capacity(self.kh * self.kw);
        for i in 0..self.kh {
            for j in 0..self.kw {
                let (y_lo, y_hi) = valid_outputs(self.out_h, self.stride[0], i, self.padding[0], self.h);
                let (x_lo, x_hi) = valid_outputs(self.out_w, self.stride[1], j, self.padding[1], self.w);
                let empty = y_lo >= y_hi || x_lo >= x_hi;
                let (first_y, first_x) = if empty { (0, 0) } else { (y_lo * self.stride[0] + i - self.padding[0], x_lo * self.stride[1] + j - self.padding[1]) };
                all.push(Offset { y: y_lo..if empty { y_lo } else { y_hi }, x: x_lo..x_hi, first_y, first_x });
            }
        }
        all
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

/// One kernel offset's meeting with the input: the output rows `y` and columns `x` whose input
/// pixel lies inside the image (not in the padding), and the input row and column of the first.
#[derive(Clone, Debug)]
struct Offset {
    y: std::ops::Range<usize>,
    x: std::ops::Range<usize>,
    first_y: usize,
    first_x: usize,
}

/// `dst[m, n] = lhs[m, k] · rhs[k, n]` (or `+=` with `accumulate`), with row and column strides
/// for each input and a row stride for `dst`, on all threads or on this one.
#[allow(clippy::too_many_arguments)]
pub(super) fn matmul(m: usize, n: usize, k: usize, dst: &mut [f32], dst_row_stride: usize, accumulate: bool, lhs: &[f32], lhs_strides: [usize; 2], rhs: &[f32], rhs_strides: [usize; 2], threads: gemm::Parallelism) {
    assert!(dst_row_stride >= n);
    matmul_strided(m, n, k, dst, [dst_row_stride, 1], accumulate, lhs, lhs_strides, rhs, rhs_strides, threads)
}

/// [`matmul`] with row and column strides for `dst` too.
#[allow(clippy::too_many_arguments)]
pub(super) fn matmul_strided(m: usize, n: usize, k: usize, dst: &mut [f32], dst_strides: [usize; 2], accumulate: bool, lhs: &[f32], lhs_strides: [usize; 2], rhs: &[f32], rhs_strides: [usize; 2], threads: gemm::Parallelism) {
    let last = |s: [usize; 2], rows: usize, cols: usize| if rows == 0 || cols == 0 { 0 } else { (rows - 1) * s[0] + (cols - 1) * s[1] + 1 };
    assert!(dst.len() >= last(dst_strides, m, n));
    assert!(lhs.len() >= last(lhs_strides, m, k) && rhs.len() >= last(rhs_strides, k, n));
    if m == 0 || n == 0 || k == 0 {
        if !accumulate {
            for r in 0..m {
                for c in 0..n {
                    dst[r * dst_strides[0] + c * dst_strides[1]] = 0.0;
                }
            }
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
            dst_strides[1] as isize,
            dst_strides[0] as isize,
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

pub(super) const ALL_THREADS: gemm::Parallelism = gemm::Parallelism::Rayon(0);
pub(super) const ONE_THREAD: gemm::Parallelism = gemm::Parallelism::None;

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

/// One image's row of the unfolded input for kernel offset `at`: for every output position, the
/// pixel of `plane` (one channel, `[h, w]`) that the offset meets. `dst` must start zeroed
/// (padding positions stay 0).
fn unfold_row(plane: &[f32], at: &Offset, g: &ConvGeometry, dst: &mut [f32]) {
    let (ow, (sh, sw)) = (g.out_w, (g.stride[0], g.stride[1]));
    if at.y.is_empty() {
        return;
    }
    let (x_lo, x_hi) = (at.x.start, at.x.end);
    if sh == 1 && sw == 1 && ow == g.w {
        // Stride 1 and an output as wide as the input: the whole block of rows is one shifted
        // copy (rows of 2 to 16 values are too short to copy one by one); the few positions that
        // wrapped round from the neighbouring row are then cleared.
        let (start, end) = (at.y.start * ow + x_lo, (at.y.end - 1) * ow + x_hi);
        let src_start = at.first_y * g.w + at.first_x;
        dst[start..end].copy_from_slice(&plane[src_start..src_start + (end - start)]);
        if x_lo > 0 || x_hi < ow {
            for oy in at.y.clone() {
                let row = &mut dst[oy * ow..][..ow];
                let (before, after) = (if oy > at.y.start { x_lo } else { 0 }, if oy + 1 < at.y.end { x_hi } else { ow });
                row[..before].fill(0.0);
                row[after..].fill(0.0);
            }
        }
        return;
    }
    for (k, oy) in at.y.clone().enumerate() {
        let src = &plane[(at.first_y + k * sh) * g.w..][..g.w];
        let out = &mut dst[oy * ow..][x_lo..x_hi];
        if sw == 1 {
            out.copy_from_slice(&src[at.first_x..at.first_x + out.len()]);
        } else {
            out.iter_mut().zip(src[at.first_x..].iter().step_by(sw)).for_each(|(d, v)| *d = *v);
        }
    }
}

/// The adjoint of [`unfold_row`]: adds one image's row of column gradients for kernel offset `at`
/// onto the input pixels they came from. `src` is clobbered (its padding positions are zeroed).
fn fold_row(src: &mut [f32], at: &Offset, g: &ConvGeometry, plane: &mut [f32]) {
    let (ow, (sh, sw)) = (g.out_w, (g.stride[0], g.stride[1]));
    if at.y.is_empty() {
        return;
    }
    let (x_lo, x_hi) = (at.x.start, at.x.end);
    if sh == 1 && sw == 1 && ow == g.w {
        // As in `unfold_row`: one shifted block, after zeroing the gradients of padding positions
        // that would otherwise land on the neighbouring row's pixels.
        if x_lo > 0 || x_hi < ow {
            for oy in at.y.clone() {
                let row = &mut src[oy * ow..][..ow];
                row[..x_lo].fill(0.0);
                row[x_hi..].fill(0.0);
            }
        }
        let (start, end) = (at.y.start * ow + x_lo, (at.y.end - 1) * ow + x_hi);
        let dst_start = at.first_y * g.w + at.first_x;
        plane[dst_start..dst_start + (end - start)].iter_mut().zip(&src[start..end]).for_each(|(d, v)| *d += v);
        return;
    }
    for (k, oy) in at.y.clone().enumerate() {
        let dst = &mut plane[(at.first_y + k * sh) * g.w..][..g.w];
        let row = &src[oy * ow..][x_lo..x_hi];
        if sw == 1 {
            dst[at.first_x..at.first_x + row.len()].iter_mut().zip(row).for_each(|(d, v)| *d += v);
        } else {
            dst[at.first_x..].iter_mut().step_by(sw).zip(row).for_each(|(d, v)| *d += v);
        }
    }
}

/// Row `r` of the unfolded input is channel `r / (kh kw)` at kernel offset `r % (kh kw)`.
fn row_parts(r: usize, g: &ConvGeometry) -> (usize, usize) {
    (r / (g.kh * g.kw), r % (g.kh * g.kw))
}

/// One image `[c, h, w]` unfolded into `cols` (`[K, p]`). Only positions inside the image are
/// written: a buffer zeroed once keeps its zero padding when reused for the next image of the
/// same convolution (so scratch buffers are zeroed once per thread, not per image).
fn im2col_image(image: &[f32], g: &ConvGeometry, offsets: &[Offset], cols: &mut [f32]) {
    let (p, plane) = (g.p(), g.h * g.w);
    for (r, dst) in cols.chunks_mut(p.max(1)).enumerate() {
        let (c, q) = row_parts(r, g);
        unfold_row(&image[c * plane..][..plane], &offsets[q], g, dst);
    }
}

/// The whole batch unfolded: `[K, M]`, each row holding every image's positions in turn.
fn im2col(x: &[f32], g: &ConvGeometry) -> Vec<f32> {
    let (p, m, plane) = (g.p(), g.m(), g.h * g.w);
    let offsets = g.offsets();
    let mut cols = vec![0.0f32; g.k() * m];
    cols.par_chunks_mut(m.max(1)).enumerate().for_each(|(r, row)| {
        let (c, q) = row_parts(r, g);
        for n in 0..g.n {
            unfold_row(&x[(n * g.c + c) * plane..][..plane], &offsets[q], g, &mut row[n * p..][..p]);
        }
    });
    cols
}

/// The adjoint of [`im2col`]: the input gradient `[n, c, h, w]` from column gradients `[K, M]`
/// (clobbered).
fn col2im(cols: &mut [f32], g: &ConvGeometry) -> Vec<f32> {
    let (p, m, plane) = (g.p(), g.m(), g.h * g.w);
    // Channel-major `[c, n, h, w]` first, so that each thread owns one channel's pixels.
    let mut by_channel = vec![0.0f32; g.c * g.n * plane];
    let offsets = g.offsets();
    by_channel.par_chunks_mut((g.n * plane).max(1)).zip(cols.par_chunks_mut((offsets.len() * m).max(1))).for_each(|(dx, rows)| {
        for (at, row) in offsets.iter().zip(rows.chunks_mut(m.max(1))) {
            for n in 0..g.n {
                fold_row(&mut row[n * p..][..p], at, g, &mut dx[n * plane..][..plane]);
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

/// Which kernel computes a convolution: the choice is made once per geometry, here.
enum Path {
    /// Maps of at most 4 outputs whose taps mostly fall in the padding ([`tiny_maps`]).
    TinyMaps,
    /// 3x3 stride-1 convolutions on maps of 16 outputs or more ([`winograd`]).
    Winograd,
    /// Everything else.
    Unfolded,
}

fn path(g: &ConvGeometry) -> Path {
    if tiny_maps::applies(g) {
        Path::TinyMaps
    } else if winograd::applies(g) {
        Path::Winograd
    } else {
        Path::Unfolded
    }
}

/// Forward: `x` `[n, c, h, w]`, `weight` `[o, c, kh, kw]` -> `[n, o, out_h, out_w]`.
pub fn forward_f32(x: &[f32], weight: &[f32], g: &ConvGeometry) -> Vec<f32> {
    match path(g) {
        Path::TinyMaps => tiny_maps::forward(x, weight, g),
        Path::Winograd => winograd::forward(x, weight, g),
        Path::Unfolded => forward_unfolded(x, weight, g),
    }
}

/// Gradient with respect to the weights `[o, c, kh, kw]` of the output gradient `grad`.
pub fn weight_grad_f32(x: &[f32], grad: &[f32], g: &ConvGeometry) -> Vec<f32> {
    match path(g) {
        Path::TinyMaps => tiny_maps::weight_grad(x, grad, g),
        Path::Winograd => winograd::weight_grad(x, grad, g),
        Path::Unfolded => weight_grad_unfolded(x, grad, g),
    }
}

/// Gradient with respect to the input `[n, c, h, w]` of the output gradient `grad`.
pub fn input_grad_f32(weight: &[f32], grad: &[f32], g: &ConvGeometry) -> Vec<f32> {
    match path(g) {
        Path::TinyMaps => tiny_maps::input_grad(weight, grad, g),
        Path::Winograd => winograd::input_grad(weight, grad, g),
        Path::Unfolded => input_grad_unfolded(weight, grad, g),
    }
}

/// [`forward_f32`] by unfolding, for every geometry.
pub fn forward_unfolded(x: &[f32], weight: &[f32], g: &ConvGeometry) -> Vec<f32> {
    let (k, m, p) = (g.k(), g.m(), g.p());
    if p >= PER_IMAGE_MIN_POSITIONS {
        let offsets = g.offsets();
        let mut y = vec![0.0f32; g.n * g.o * p];
        let image_len = g.c * g.h * g.w;
        y.par_chunks_mut(g.o * p).enumerate().for_each_init(
            || vec![0.0f32; k * p],
            |cols, (n, out)| {
                im2col_image(&x[n * image_len..][..image_len], g, &offsets, cols);
                matmul(g.o, p, k, out, p, false, weight, [k, 1], cols, [p, 1], ONE_THREAD);
            },
        );
        return y;
    }
    let cols = im2col(x, g);
    let mut z = vec![0.0f32; g.o * m];
    matmul(g.o, m, k, &mut z, m, false, weight, [k, 1], &cols, [m, 1], ALL_THREADS);
    batch_first(&z, g.n, g.o, p)
}

/// [`weight_grad_f32`] by unfolding, for every geometry.
pub fn weight_grad_unfolded(x: &[f32], grad: &[f32], g: &ConvGeometry) -> Vec<f32> {
    let (k, m, p) = (g.k(), g.m(), g.p());
    let image_len = g.c * g.h * g.w;
    if m < k {
        let cols = im2col(x, g);
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
    let (cols, gm) = if per_image { (vec![], vec![]) } else { (im2col(x, g), channels_first(grad, g.n, g.o, p)) };
    let offsets = if per_image { g.offsets() } else { vec![] };
    let parts = rayon::current_num_threads().clamp(1, g.n.max(1));
    let images_per_part = g.n.div_ceil(parts);
    let partial: Vec<Vec<f32>> = (0..parts)
        .into_par_iter()
        .map(|t| {
            let images = (t * images_per_part).min(g.n)..((t + 1) * images_per_part).min(g.n);
            let mut dwt = vec![0.0f32; k * g.o];
            if per_image {
                // Gᵀ of one image, read from NCHW: element (p, o) at o * P + p.
                let mut cols = vec![0.0f32; k * p];
                for (i, n) in images.enumerate() {
                    im2col_image(&x[n * image_len..][..image_len], g, &offsets, &mut cols);
                    matmul(k, g.o, p, &mut dwt, g.o, i > 0, &cols, [p, 1], &grad[n * g.o * p..], [1, p], ONE_THREAD);
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

/// [`input_grad_f32`] by unfolding, for every geometry.
pub fn input_grad_unfolded(weight: &[f32], grad: &[f32], g: &ConvGeometry) -> Vec<f32> {
    let (k, m, p) = (g.k(), g.m(), g.p());
    // dcols[k, m] = Wᵀ[k, o] · G[o, m]; the weights read transposed: element (k, o) at o * K + k.
    if p >= PER_IMAGE_MIN_POSITIONS {
        // Each image's gradient is its own: the threads share the images, and fold in place.
        let (plane, offsets) = (g.h * g.w, g.offsets());
        let mut dx = vec![0.0f32; g.n * g.c * plane];
        // The column buffer is fully overwritten by each product, so it is reused per thread.
        dx.par_chunks_mut((g.c * plane).max(1)).enumerate().for_each_init(
            || vec![0.0f32; k * p],
            |dcols, (n, image)| {
                matmul(k, p, g.o, dcols, p, false, weight, [1, k], &grad[n * g.o * p..], [p, 1], ONE_THREAD);
                for (r, row) in dcols.chunks_mut(p.max(1)).enumerate() {
                    let (c, q) = row_parts(r, g);
                    fold_row(row, &offsets[q], g, &mut image[c * plane..][..plane]);
                }
            },
        );
        return dx;
    }
    let gm = channels_first(grad, g.n, g.o, p);
    let mut dcols = vec![0.0f32; k * m];
    matmul(k, m, g.o, &mut dcols, m, false, weight, [1, k], &gm, [m, 1], ALL_THREADS);
    col2im(&mut dcols, g)
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

impl GemmConvBackend for Flex {
    fn gemm_conv2d(x: FloatTensor<Self>, weight: FloatTensor<Self>, stride: [usize; 2], padding: [usize; 4]) -> FloatTensor<Self> {
        let (x, weight) = (f32_values(&x), f32_values(&weight));
        let g = ConvGeometry::new(dims4(x.layout().shape()), dims4(weight.layout().shape()), stride, padding);
        let y = forward_f32(x.storage::<f32>(), weight.storage::<f32>(), &g);
        flex_tensor(y, [g.n, g.o, g.out_h(), g.out_w()])
    }

    fn gemm_conv2d_input_grad(weight: FloatTensor<Self>, grad: FloatTensor<Self>, input_hw: [usize; 2], stride: [usize; 2], padding: [usize; 4]) -> FloatTensor<Self> {
        let (weight, grad) = (f32_values(&weight), f32_values(&grad));
        let [o, c, kh, kw] = dims4(weight.layout().shape());
        let n = grad.layout().shape()[0];
        let g = ConvGeometry::new([n, c, input_hw[0], input_hw[1]], [o, c, kh, kw], stride, padding);
        let dx = input_grad_f32(weight.storage::<f32>(), grad.storage::<f32>(), &g);
        flex_tensor(dx, [n, c, g.h, g.w])
    }

    fn gemm_conv2d_weight_grad(x: FloatTensor<Self>, grad: FloatTensor<Self>, kernel: [usize; 2], stride: [usize; 2], padding: [usize; 4]) -> FloatTensor<Self> {
        let (x, grad) = (f32_values(&x), f32_values(&grad));
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
