//! Convolutions whose output maps have at most `MAX_OUTPUTS` positions (ResNet-18's 2x2 layer 4
//! at 64 px), tap by tap: forward and both gradients (issue 14).
//!
//! Why: on such maps most kernel taps fall in the padding. A 3x3 convolution with padding 1 on a
//! 2x2 map reads 16 of the 36 (position, tap) pairs of its unfolded input; the other 20 are zeros
//! that the unfolded product multiplies all the same. Here each output position `p` sums only its
//! valid taps `q`, each a product over the batch with the tap's weights `W_q [o, c]` and the input
//! pixel `x[:, c, pix]` it reads, both read in place with strides:
//!
//! - forward: `y[:, :, p] = Σ_q W_q · x[:, :, pix(p, q)]`;
//! - input gradient: `dx[:, :, pix] = Σ_(p, q) reading pix W_qᵀ · dy[:, :, p]`;
//! - weight gradient: `dW_q = Σ_p dy[:, :, p] · x[:, :, pix(p, q)]ᵀ`.
//!
//! Each result is first gathered per position, pixel or tap (so that threads own whole blocks)
//! and then laid out as NCHW or `[o, c, kh, kw]`.

use rayon::prelude::*;

use super::gemm_conv::{matmul_strided, ConvGeometry, ONE_THREAD};

/// Up to this many output positions per image, the tap-by-tap products are faster than the
/// unfolded ones (`examples/conv_profile`, BENCHMARKS.md).
const MAX_OUTPUTS: usize = 4;

/// Whether the tap-by-tap products apply: maps of at most `MAX_OUTPUTS` outputs where at most
/// half the (position, tap) pairs meet the image. Otherwise there is little to skip (a 1x1
/// kernel, or ResNet-18's stride-2 3x3 convolution from 4x4 to 2x2, which meets 25 of 36), and
/// one product over all positions is faster (`examples/conv_profile`).
pub fn applies(g: &ConvGeometry) -> bool {
    let (positions, taps) = (g.out_h() * g.out_w(), g.kh * g.kw);
    positions <= MAX_OUTPUTS && 2 * pairs(g).len() <= positions * taps
}

/// One output position, one kernel tap, and the input pixel (flat index in `h x w`) it reads.
#[derive(Clone, Copy)]
struct Pair {
    p: usize,
    q: usize,
    pix: usize,
}

/// Every (position, tap) pair whose input pixel lies inside the image.
fn pairs(g: &ConvGeometry) -> Vec<Pair> {
    let mut all = vec![];
    for oy in 0..g.out_h() {
        for ox in 0..g.out_w() {
            for i in 0..g.kh {
                for j in 0..g.kw {
                    let (y, x) = ((oy * g.stride[0] + i) as isize - g.padding[0] as isize, (ox * g.stride[1] + j) as isize - g.padding[1] as isize);
                    if (0..g.h as isize).contains(&y) && (0..g.w as isize).contains(&x) {
                        all.push(Pair { p: oy * g.out_w() + ox, q: i * g.kw + j, pix: y as usize * g.w + x as usize });
                    }
                }
            }
        }
    }
    all
}

/// Strides of the operands, as `[row, column]`: the tap `q` of the weights as `[o, c]`, an input
/// pixel as `[c, n]`, an output position as `[o, n]`.
fn weight_strides(g: &ConvGeometry) -> [usize; 2] {
    [g.c * g.kh * g.kw, g.kh * g.kw]
}
fn pixel_strides(g: &ConvGeometry) -> [usize; 2] {
    [g.h * g.w, g.c * g.h * g.w]
}
fn position_strides(g: &ConvGeometry) -> [usize; 2] {
    [g.out_h() * g.out_w(), g.o * g.out_h() * g.out_w()]
}

/// `blocks` results of `block_len` values, block `b` summing `product(pair, out, accumulate)` over
/// the pairs that `block_of` assigns to it (blocks no pair reaches stay 0). Threads share the
/// blocks, each product on one thread.
fn sum_over_pairs(pairs: &[Pair], blocks: usize, block_len: usize, block_of: impl Fn(&Pair) -> usize + Sync, product: impl Fn(&Pair, &mut [f32], bool) + Sync) -> Vec<f32> {
    let mut out = vec![0.0f32; blocks * block_len];
    out.par_chunks_mut(block_len.max(1)).enumerate().for_each(|(b, block)| {
        for (i, pair) in pairs.iter().filter(|pair| block_of(pair) == b).enumerate() {
            product(pair, block, i > 0);
        }
    });
    out
}

/// Forward: `x` `[n, c, h, w]`, `weight` `[o, c, kh, kw]` -> `[n, o, out_h, out_w]`.
pub fn forward(x: &[f32], weight: &[f32], g: &ConvGeometry) -> Vec<f32> {
    let positions = g.out_h() * g.out_w();
    // Block p is y[:, :, p] as [o, n]: W_q [o, c] times x[:, :, pix] [c, n].
    let by_position = sum_over_pairs(&pairs(g), positions, g.o * g.n, |pair| pair.p, |pair, out, accumulate| {
        matmul_strided(g.o, g.n, g.c, out, [g.n, 1], accumulate, &weight[pair.q..], weight_strides(g), &x[pair.pix..], pixel_strides(g), ONE_THREAD);
    });
    reversed_axes(&by_position, [positions, g.o, g.n])
}

/// `src [a][b][c]` as `[c][b][a]`: per-position or per-pixel blocks `[p][channel][n]` to NCHW.
fn reversed_axes(src: &[f32], [a, b, c]: [usize; 3]) -> Vec<f32> {
    let mut out = vec![0.0f32; a * b * c];
    out.par_chunks_mut((a * b).max(1)).enumerate().for_each(|(k, block)| {
        for (j, row) in block.chunks_mut(a.max(1)).enumerate() {
            for (i, v) in row.iter_mut().enumerate() {
                *v = src[(i * b + j) * c + k];
            }
        }
    });
    out
}

/// Gradient with respect to the input `[n, c, h, w]` of the output gradient `grad`.
pub fn input_grad(weight: &[f32], grad: &[f32], g: &ConvGeometry) -> Vec<f32> {
    let pixels = g.h * g.w;
    let [wr, wc] = weight_strides(g);
    // Block pix is dx[:, :, pix] as [c, n]: W_qᵀ [c, o] (the tap's weights read transposed)
    // times dy[:, :, p] [o, n].
    let by_pixel = sum_over_pairs(&pairs(g), pixels, g.c * g.n, |pair| pair.pix, |pair, out, accumulate| {
        matmul_strided(g.c, g.n, g.o, out, [g.n, 1], accumulate, &weight[pair.q..], [wc, wr], &grad[pair.p..], position_strides(g), ONE_THREAD);
    });
    reversed_axes(&by_pixel, [pixels, g.c, g.n])
}

/// Gradient with respect to the weights `[o, c, kh, kw]` of the output gradient `grad`.
pub fn weight_grad(x: &[f32], grad: &[f32], g: &ConvGeometry) -> Vec<f32> {
    let taps = g.kh * g.kw;
    let [pr, pc] = pixel_strides(g);
    // Block q is dW_q as [o, c]: dy[:, :, p] [o, n] times x[:, :, pix]ᵀ [n, c].
    let by_tap = sum_over_pairs(&pairs(g), taps, g.o * g.c, |pair| pair.q, |pair, out, accumulate| {
        matmul_strided(g.o, g.c, g.n, out, [g.c, 1], accumulate, &grad[pair.p..], position_strides(g), &x[pair.pix..], [pc, pr], ONE_THREAD);
    });
    let mut dw = vec![0.0f32; g.o * g.c * taps];
    dw.par_chunks_mut((g.c * taps).max(1)).enumerate().for_each(|(o, filters)| {
        for (c, filter) in filters.chunks_mut(taps.max(1)).enumerate() {
            for (q, v) in filter.iter_mut().enumerate() {
                *v = by_tap[(q * g.o + o) * g.c + c];
            }
        }
    });
    dw
}
