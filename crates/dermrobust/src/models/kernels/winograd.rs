//! 3x3 stride-1 convolutions by Winograd's minimal filtering F(4x4, 3x3) (Lavin & Gray 2016,
//! "Fast algorithms for convolutional neural networks"), forward and both gradients (issue 14).
//!
//! Why: 3x3 stride-1 convolutions are 83% of ResNet-18's arithmetic, and unfolded (im2col) each
//! output costs 9 multiply-adds per input channel. Winograd computes an `M x M` output tile from
//! an `A x A` input tile (`A = M + 2`) with `A²` element-wise products in a transformed domain:
//! for M = 4, 36 products for 16 outputs instead of 144. The channel sums become `A²` matrix
//! products, one per transformed position ξ:
//!
//! - forward: `U = G w Gᵀ` (weights), `V = Bᵀ d B` (input tiles), `M_ξ[k, t] = Σ_c U_ξ[k, c]
//!   V_ξ[c, t]`, output tile `Aᵀ M A`;
//! - input gradient: `dM = A dY Aᵀ`, `dV_ξ = U_ξᵀ dM_ξ`, input tiles `B dV Bᵀ` added back;
//! - weight gradient: `dU_ξ = Σ_t dM_ξ V_ξᵀ`, `dw = Gᵀ dU G`.
//!
//! The gradients are the exact adjoints of the forward transform, which is exactly the
//! convolution up to float32 rounding (`tests/conv_paths.rs` compares with the unfolded products
//! and with burn's convolution). Images are processed in chunks of about `CHUNK_TILES` tiles, so
//! that a chunk's transformed tiles stay in cache between the transform, the products and the
//! inverse transform. The tile size is the constants `M`, `A` and the matrices below: F(2x2, 3x3)
//! was measured too (BENCHMARKS.md) and is these constants with its own matrices.
//!
//! Layouts (t: tile within a chunk, ξ: transformed position): `U [k][ξ][c]`, `V [c][ξ][t]`, `M`
//! and `dV` `[ξ][rows][t]`, `dM [k][ξ][t]`, `dU [ξ][k][c]`: each pass writes whole blocks of its
//! own (so threads never share a destination) and the products read the others with strides.

use std::sync::atomic::{AtomicBool, Ordering};

use rayon::prelude::*;

use super::gemm_conv::{matmul, ConvGeometry, ONE_THREAD};

/// Defines a function whose body is compiled three times, for AVX-512, for AVX2 with FMA and for
/// the baseline, and runs the best the CPU has. The transforms below are written over fixed-size
/// arrays of `LANES` values; without these features the compiler could only use 4-wide SSE
/// registers for them (the crate is built for the baseline x86-64, as `gemm` is: it chooses its
/// kernels the same way, at run time).
macro_rules! simd_dispatch {
    ($(#[$doc:meta])* fn $name:ident($($arg:ident: $ty:ty),* $(,)?) $body:block) => {
        $(#[$doc])*
        #[allow(clippy::too_many_arguments)]
        fn $name($($arg: $ty),*) {
            #[cfg(target_arch = "x86_64")]
            {
                #[target_feature(enable = "avx512f,avx2,fma")]
                #[allow(clippy::too_many_arguments)]
                unsafe fn wide($($arg: $ty),*) $body
                #[target_feature(enable = "avx2,fma")]
                #[allow(clippy::too_many_arguments)]
                unsafe fn narrow($($arg: $ty),*) $body
                if std::arch::is_x86_feature_detected!("avx512f") {
                    // SAFETY: this CPU has the features `wide` is compiled for.
                    return unsafe { wide($($arg),*) };
                }
                if std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma") {
                    // SAFETY: this CPU has the features `narrow` is compiled for.
                    return unsafe { narrow($($arg),*) };
                }
            }
            $body
        }
    };
}

/// Outputs per tile side.
const M: usize = 4;
/// Inputs per tile side (`M + 2` for a 3x3 kernel).
const A: usize = M + 2;
/// Transformed positions per tile.
const XI: usize = A * A;

/// `Bᵀ` of F(4x4, 3x3).
const BT: [[f32; A]; A] = [
    [4.0, 0.0, -5.0, 0.0, 1.0, 0.0],
    [0.0, -4.0, -4.0, 1.0, 1.0, 0.0],
    [0.0, 4.0, -4.0, -1.0, 1.0, 0.0],
    [0.0, -2.0, -1.0, 2.0, 1.0, 0.0],
    [0.0, 2.0, -1.0, -2.0, 1.0, 0.0],
    [0.0, 4.0, 0.0, -5.0, 0.0, 1.0],
];
/// `G` of F(4x4, 3x3).
const G: [[f32; 3]; A] = [
    [1.0 / 4.0, 0.0, 0.0],
    [-1.0 / 6.0, -1.0 / 6.0, -1.0 / 6.0],
    [-1.0 / 6.0, 1.0 / 6.0, -1.0 / 6.0],
    [1.0 / 24.0, 1.0 / 12.0, 1.0 / 6.0],
    [1.0 / 24.0, -1.0 / 12.0, 1.0 / 6.0],
    [0.0, 0.0, 1.0],
];
/// `Aᵀ` of F(4x4, 3x3).
const AT: [[f32; A]; M] = [
    [1.0, 1.0, 1.0, 1.0, 1.0, 0.0],
    [0.0, 1.0, -1.0, 2.0, -2.0, 0.0],
    [0.0, 1.0, 1.0, 4.0, 4.0, 0.0],
    [0.0, 1.0, -1.0, 8.0, -8.0, 1.0],
];
/// `B`, `Gᵀ` and `A`, for the gradients (the adjoint transforms).
const B: [[f32; A]; A] = transposed(BT);
const GT: [[f32; A]; 3] = transposed(G);
const A_: [[f32; M]; A] = transposed(AT);

const fn transposed<const R: usize, const C: usize>(m: [[f32; C]; R]) -> [[f32; R]; C] {
    let mut out = [[0.0; R]; C];
    let mut r = 0;
    while r < R {
        let mut c = 0;
        while c < C {
            out[c][r] = m[r][c];
            c += 1;
        }
        r += 1;
    }
    out
}

/// Tiles per chunk of images (at least one image per chunk).
const CHUNK_TILES: usize = 128;

/// Every row stride of the transformed buffers is padded by this many floats: a stride of exactly
/// 2^k floats puts the rows a product reads together into the same cache sets (measured: a
/// 64x64x256 product 3x slower with a power-of-two stride than with this padding).
const PAD: usize = 16;

/// Row stride for rows of `len` values.
fn stride(len: usize) -> usize {
    len + PAD
}

/// Whether Winograd applies: 3x3 kernels at stride 1 (any padding), on outputs of at least
/// `MIN_OUTPUTS` positions, unless switched off ([`set_enabled`]). On smaller maps (ResNet-18's
/// 2x2 at 64 px) a tile is mostly past the edge, so the products have few columns and the
/// transformed weights (4x the weights) dominate: there the tap-by-tap products
/// (`super::tiny_maps`) or unfolding are faster (`examples/conv_profile`, BENCHMARKS.md).
pub fn applies(g: &ConvGeometry) -> bool {
    ENABLED.load(Ordering::Relaxed) && g.kh == 3 && g.kw == 3 && g.stride == [1, 1] && g.out_h() * g.out_w() >= MIN_OUTPUTS
}

static ENABLED: AtomicBool = AtomicBool::new(true);

/// Switches the Winograd path on or off for the whole process (on by default), for A/B
/// measurements and for comparisons that need the unfolded path's smaller rounding error (a
/// whole network's gradients against a float64 reference, `tests/kernels.rs`: Winograd's float32
/// rounding, up to 1e-5 of each channel's largest output, is amplified there by ill-conditioned
/// batch norms on small maps).
pub fn set_enabled(on: bool) {
    ENABLED.store(on, Ordering::Relaxed);
}

/// See [`applies`].
const MIN_OUTPUTS: usize = 16;

/// How the output is cut into `M x M` tiles.
#[derive(Clone, Copy)]
struct Tiles {
    th: usize,
    tw: usize,
    /// The zero-padded input plane that the tiles read: `ph x pw`, pixel `(y, x)` of the input at
    /// `(y + top, x + left)`.
    ph: usize,
    pw: usize,
}

impl Tiles {
    fn new(g: &ConvGeometry) -> Self {
        let (th, tw) = (g.out_h().div_ceil(M), g.out_w().div_ceil(M));
        Tiles { th, tw, ph: M * th + 2, pw: M * tw + 2 }
    }
    fn per_image(&self) -> usize {
        self.th * self.tw
    }
    /// Images per chunk: about `CHUNK_TILES` tiles.
    fn images_per_chunk(&self, n: usize) -> usize {
        CHUNK_TILES.div_ceil(self.per_image().max(1)).clamp(1, n.max(1))
    }
    /// Where each tile of a chunk of `images` lies: image, first output row and column.
    fn places(&self, images: usize) -> Vec<Place> {
        (0..images * self.per_image())
            .map(|t| {
                let (img, rest) = (t / self.per_image(), t % self.per_image());
                Place { img, y0: M * (rest / self.tw), x0: M * (rest % self.tw) }
            })
            .collect()
    }
}

/// One tile's image in its chunk and its first output row and column (the first padded input
/// row and column it reads).
#[derive(Clone, Copy)]
struct Place {
    img: usize,
    y0: usize,
    x0: usize,
}

/// Lanes of the transforms: 8 tiles (or channels) at a time, so that every lane is used whatever
/// the map size (tiles are counted across rows and images).
const LANES: usize = 8;

/// `LANES` values, with the arithmetic the transforms need; the compiler keeps them in vector
/// registers.
#[derive(Clone, Copy, Default)]
struct Lanes([f32; LANES]);

impl std::ops::Add for Lanes {
    type Output = Lanes;
    #[inline(always)]
    fn add(mut self, o: Lanes) -> Lanes {
        for l in 0..LANES {
            self.0[l] += o.0[l];
        }
        self
    }
}
impl std::ops::Sub for Lanes {
    type Output = Lanes;
    #[inline(always)]
    fn sub(mut self, o: Lanes) -> Lanes {
        for l in 0..LANES {
            self.0[l] -= o.0[l];
        }
        self
    }
}
impl std::ops::Mul<Lanes> for f32 {
    type Output = Lanes;
    #[inline(always)]
    fn mul(self, mut o: Lanes) -> Lanes {
        for v in o.0.iter_mut() {
            *v *= self;
        }
        o
    }
}

/// `mat · x` for a vector `x` of lanes, written out term by term so that, with `mat` one of the
/// constant matrices above and the loops unrolled, no multiplication by 0 or ±1 remains.
#[inline(always)]
fn apply<const R: usize, const C: usize>(mat: &[[f32; C]; R], x: &[Lanes; C]) -> [Lanes; R] {
    let mut out = [Lanes::default(); R];
    for (r, acc) in out.iter_mut().enumerate() {
        for c in 0..C {
            let m = mat[r][c];
            if m == 1.0 {
                *acc = *acc + x[c];
            } else if m == -1.0 {
                *acc = *acc - x[c];
            } else if m != 0.0 {
                *acc = *acc + m * x[c];
            }
        }
    }
    out
}

/// A tile of lanes: `A x A` values, of which the transforms use a leading block.
type Tile = [[Lanes; A]; A];

/// `tile ← mat · tile · matᵀ`: from the leading `C x C` block to the leading `R x R` block, in
/// place (one tile buffer per task, rather than large temporaries that the compiler would zero
/// and copy with calls to memset and memmove).
#[inline(always)]
fn transform_tile<const R: usize, const C: usize>(mat: &[[f32; C]; R], tile: &mut Tile) {
    for j in 0..C {
        let mut column = [Lanes::default(); C];
        for (i, v) in column.iter_mut().enumerate() {
            *v = tile[i][j];
        }
        for (r, v) in apply(mat, &column).into_iter().enumerate() {
            tile[r][j] = v;
        }
    }
    for row in tile.iter_mut().take(R) {
        let mut values = [Lanes::default(); C];
        values.copy_from_slice(&row[..C]);
        row[..R].copy_from_slice(&apply(mat, &values));
    }
}

/// Reads `n` lanes from `src` (missing lanes 0).
#[inline(always)]
fn load(src: &[f32], n: usize) -> Lanes {
    let mut v = Lanes::default();
    if n == LANES {
        v.0.copy_from_slice(&src[..LANES]);
    } else {
        v.0[..n].copy_from_slice(&src[..n]);
    }
    v
}

/// Writes the first `n` lanes (a fixed-size copy when all are written, which stays in registers).
#[inline(always)]
fn store(dst: &mut [f32], v: &Lanes, n: usize) {
    if n == LANES {
        dst[..LANES].copy_from_slice(&v.0);
    } else {
        dst[..n].copy_from_slice(&v.0[..n]);
    }
}

/// A destination that tasks write in disjoint parts which are not contiguous (each task one
/// channel's planes in every image of a chunk).
struct Planes {
    ptr: *mut f32,
    len: usize,
}

// SAFETY: `Planes` only hands out disjoint sub-slices (see `Planes::plane`).
unsafe impl Send for Planes {}
unsafe impl Sync for Planes {}

impl Planes {
    fn new(values: &mut [f32]) -> Self {
        Planes { ptr: values.as_mut_ptr(), len: values.len() }
    }
    /// The values `start..start + len`.
    ///
    /// SAFETY: the caller must ensure that no two live slices overlap; here each task takes the
    /// planes of its own channel only.
    #[allow(clippy::mut_from_ref)]
    unsafe fn plane(&self, start: usize, len: usize) -> &mut [f32] {
        assert!(start + len <= self.len);
        unsafe { std::slice::from_raw_parts_mut(self.ptr.add(start), len) }
    }
}

/// `U [k][ξ][c]` from weights `[o, c, 3, 3]`: `G w Gᵀ`, `LANES` input channels at a time.
fn transform_weights(w: &[f32], g: &ConvGeometry) -> Vec<f32> {
    let c_in = g.c;
    let mut u = vec![0.0f32; g.o * stride(XI * c_in)];
    u.par_chunks_mut(stride(XI * c_in)).enumerate().for_each(|(k, uk)| transform_filters(w, k, c_in, uk));
    u
}

simd_dispatch! {
    /// `U [ξ][c]` of output channel `k` (one row of [`transform_weights`]).
    fn transform_filters(w: &[f32], k: usize, c_in: usize, uk: &mut [f32]) {
        let mut tile: Tile = Default::default();
        for c0 in (0..c_in).step_by(LANES) {
            let n = LANES.min(c_in - c0);
            for lane in 0..n {
                let filter = &w[(k * c_in + c0 + lane) * 9..][..9];
                for (a, row) in tile.iter_mut().take(3).enumerate() {
                    for (b, v) in row.iter_mut().take(3).enumerate() {
                        v.0[lane] = filter[a * 3 + b];
                    }
                }
            }
            transform_tile(&G, &mut tile);
            for (i, row) in tile.iter().enumerate() {
                for (j, v) in row.iter().enumerate() {
                    store(&mut uk[(i * A + j) * c_in + c0..], v, n);
                }
            }
        }
    }
}

/// Zero-padded copies of one channel's planes in each image of a chunk, as the tiles read them.
struct Padded {
    values: Vec<f32>,
    plane: usize,
}

impl Padded {
    fn new(t: &Tiles, images: usize) -> Self {
        Padded { values: vec![0.0; images * t.ph * t.pw], plane: t.ph * t.pw }
    }

    /// Copies in channel `c` of each image of the chunk `x`. Only the image's own pixels are
    /// written: the padding stays as zeroed at creation, whichever channel came before.
    fn fill(&mut self, x: &[f32], images: usize, c: usize, g: &ConvGeometry, t: &Tiles) {
        let (top, left, plane) = (g.padding[0], g.padding[1], g.h * g.w);
        let rows = g.h.min(t.ph.saturating_sub(top));
        let cols = g.w.min(t.pw.saturating_sub(left));
        for img in 0..images {
            let src = &x[(img * g.c + c) * plane..][..plane];
            let dst = &mut self.values[img * self.plane..][..self.plane];
            for y in 0..rows {
                // Rows of a few values: a plain loop, not a call to memmove per row.
                dst[(y + top) * t.pw + left..][..cols].iter_mut().zip(&src[y * g.w..][..cols]).for_each(|(d, v)| *d = *v);
            }
        }
    }

    /// Copies the interiors out to channel `c` of each image (the padding's share is dropped).
    ///
    /// SAFETY: as [`Planes::plane`]: no other task writes channel `c`.
    unsafe fn drain(&self, out: &Planes, images: usize, c: usize, g: &ConvGeometry, t: &Tiles) {
        let (top, left, plane) = (g.padding[0], g.padding[1], g.h * g.w);
        let rows = g.h.min(t.ph.saturating_sub(top));
        let cols = g.w.min(t.pw.saturating_sub(left));
        for img in 0..images {
            let dst = unsafe { out.plane((img * g.c + c) * plane, plane) };
            let src = &self.values[img * self.plane..][..self.plane];
            for y in 0..rows {
                dst[y * g.w..][..cols].iter_mut().zip(&src[(y + top) * t.pw + left..][..cols]).for_each(|(d, v)| *d = *v);
            }
        }
    }

    /// The `A x A` inputs of the tiles at `places` into `tile`, lane by lane (other lanes keep
    /// stale values, which are never stored).
    #[inline(always)]
    fn tiles(&self, t: &Tiles, places: &[Place], tile: &mut Tile) {
        for (lane, p) in places.iter().enumerate() {
            let at = p.img * self.plane + p.y0 * t.pw + p.x0;
            for (i, row) in tile.iter_mut().enumerate() {
                let src = &self.values[at + i * t.pw..][..A];
                for (j, v) in row.iter_mut().enumerate() {
                    v.0[lane] = src[j];
                }
            }
        }
    }

    /// Adds `d[i][j]` back where [`Padded::tiles`] read it.
    #[inline(always)]
    fn add_tiles(&mut self, t: &Tiles, places: &[Place], d: &Tile) {
        for (lane, p) in places.iter().enumerate() {
            let at = p.img * self.plane + p.y0 * t.pw + p.x0;
            for (i, row) in d.iter().enumerate() {
                let dst = &mut self.values[at + i * t.pw..][..A];
                for (j, v) in row.iter().enumerate() {
                    dst[j] += v.0[lane];
                }
            }
        }
    }
}

/// `len` values of a scratch buffer reused between chunks. Its stale values are never read: each
/// pass writes every value that the next one reads (the row padding is never read).
fn scratch(buffer: &mut Vec<f32>, len: usize) -> &mut [f32] {
    if buffer.len() < len {
        buffer.resize(len, 0.0);
    }
    &mut buffer[..len]
}

/// Scratch buffers of one thread's chunks.
#[derive(Default)]
struct Buffers {
    inputs: Vec<f32>,
    grads: Vec<f32>,
    products: Vec<f32>,
}

/// `V` of one chunk, `[c][ξ][t]`: every image's tiles of every channel, transformed.
fn transform_inputs<'a>(x: &[f32], images: usize, g: &ConvGeometry, t: &Tiles, places: &[Place], buffer: &'a mut Vec<f32>) -> &'a [f32] {
    let tiles = places.len();
    let v = scratch(buffer, g.c * stride(XI * tiles));
    v.par_chunks_mut(stride(XI * tiles)).enumerate().for_each_init(
        || Padded::new(t, images),
        |padded, (c, vc)| {
            padded.fill(x, images, c, g, t);
            transform_channel(padded, t, places, vc);
        },
    );
    &*v
}

simd_dispatch! {
    /// `V [ξ][t]` of one input channel (one row of [`transform_inputs`]) from its padded planes.
    fn transform_channel(padded: &Padded, t: &Tiles, places: &[Place], vc: &mut [f32]) {
        let tiles = places.len();
        let mut tile: Tile = Default::default();
        for t0 in (0..tiles).step_by(LANES) {
            let n = LANES.min(tiles - t0);
            padded.tiles(t, &places[t0..t0 + n], &mut tile);
            transform_tile(&BT, &mut tile);
            for (i, row) in tile.iter().enumerate() {
                for (j, lanes) in row.iter().enumerate() {
                    store(&mut vc[(i * A + j) * tiles + t0..], lanes, n);
                }
            }
        }
    }
}

/// Reads the `A x A` transformed values of the `n` tiles from tile `at` on into `tile`, from
/// `[ξ][rows][t]` (rows `row_stride` apart) at row `row`.
#[inline(always)]
fn read_tiles(m: &[f32], rows: usize, row: usize, row_stride: usize, at: usize, n: usize, tile: &mut Tile) {
    for (i, r) in tile.iter_mut().enumerate() {
        for (j, v) in r.iter_mut().enumerate() {
            *v = load(&m[((i * A + j) * rows + row) * row_stride + at..], n);
        }
    }
}

/// `dM [k][ξ][t]` of one chunk from the output gradient `[images, o, out_h, out_w]`.
fn transform_output_grads<'a>(dy: &[f32], g: &ConvGeometry, places: &[Place], buffer: &'a mut Vec<f32>) -> &'a [f32] {
    let tiles = places.len();
    let dm = scratch(buffer, g.o * stride(XI * tiles));
    dm.par_chunks_mut(stride(XI * tiles)).enumerate().for_each(|(k, dmk)| transform_grad_channel(dy, g, places, k, dmk));
    &*dm
}

simd_dispatch! {
    /// `dM [ξ][t]` of output channel `k` (one row of [`transform_output_grads`]). Outputs past the
    /// edge, in the last row or column of tiles of an output that `M` does not divide, count as 0.
    fn transform_grad_channel(dy: &[f32], g: &ConvGeometry, places: &[Place], k: usize, dmk: &mut [f32]) {
        let (oh, ow, tiles) = (g.out_h(), g.out_w(), places.len());
        let mut tile: Tile = Default::default();
        for t0 in (0..tiles).step_by(LANES) {
            let n = LANES.min(tiles - t0);
            for (lane, p) in places[t0..t0 + n].iter().enumerate() {
                let plane = &dy[(p.img * g.o + k) * oh * ow..][..oh * ow];
                for (i, row) in tile.iter_mut().take(M).enumerate() {
                    let y = p.y0 + i;
                    for (j, v) in row.iter_mut().take(M).enumerate() {
                        let x = p.x0 + j;
                        v.0[lane] = if y < oh && x < ow { plane[y * ow + x] } else { 0.0 };
                    }
                }
            }
            transform_tile(&A_, &mut tile);
            for (i, row) in tile.iter().enumerate() {
                for (j, lanes) in row.iter().enumerate() {
                    store(&mut dmk[(i * A + j) * tiles + t0..], lanes, n);
                }
            }
        }
    }
}

simd_dispatch! {
    /// Output channel `k` of every image of a chunk from its products `M [ξ][k][t]`: `Aᵀ M A`
    /// per tile.
    ///
    /// SAFETY: as [`Planes::plane`]: no other task writes channel `k`.
    fn output_channel(m: &[f32], g: &ConvGeometry, places: &[Place], k: usize, out: &Planes) {
        let (oh, ow, tiles) = (g.out_h(), g.out_w(), places.len());
        let mut tile: Tile = Default::default();
        for t0 in (0..tiles).step_by(LANES) {
            let n = LANES.min(tiles - t0);
            read_tiles(m, g.o, k, stride(tiles), t0, n, &mut tile);
            transform_tile(&AT, &mut tile);
            for (lane, p) in places[t0..t0 + n].iter().enumerate() {
                // SAFETY: plane (img, k) is this task's (one task per output channel).
                let plane = unsafe { out.plane((p.img * g.o + k) * oh * ow, oh * ow) };
                for (i, row) in tile.iter().take(M.min(oh - p.y0)).enumerate() {
                    let dst = &mut plane[(p.y0 + i) * ow + p.x0..][..M.min(ow - p.x0)];
                    for (j, v) in dst.iter_mut().enumerate() {
                        *v = row[j].0[lane];
                    }
                }
            }
        }
    }
}

simd_dispatch! {
    /// Adds `B dV Bᵀ` of every tile of one input channel onto its padded planes (the overlapping
    /// tiles added up), from `dV [ξ][c][t]`.
    fn input_grad_channel(dv: &[f32], g: &ConvGeometry, t: &Tiles, places: &[Place], c: usize, padded: &mut Padded) {
        let tiles = places.len();
        let mut tile: Tile = Default::default();
        for t0 in (0..tiles).step_by(LANES) {
            let n = LANES.min(tiles - t0);
            read_tiles(dv, g.c, c, stride(tiles), t0, n, &mut tile);
            transform_tile(&B, &mut tile);
            padded.add_tiles(t, &places[t0..t0 + n], &tile);
        }
    }
}

simd_dispatch! {
    /// Weight gradient of output channel `k` from `dU [ξ][k][c]`: `Gᵀ dU G`.
    fn weight_grad_row(du: &[f32], g: &ConvGeometry, k: usize, dwk: &mut [f32]) {
        let mut tile: Tile = Default::default();
        for c0 in (0..g.c).step_by(LANES) {
            let n = LANES.min(g.c - c0);
            read_tiles(du, g.o, k, stride(g.c), c0, n, &mut tile);
            transform_tile(&GT, &mut tile);
            for (a, row) in tile.iter().take(3).enumerate() {
                for (b, v) in row.iter().take(3).enumerate() {
                    for lane in 0..n {
                        dwk[(c0 + lane) * 9 + a * 3 + b] = v.0[lane];
                    }
                }
            }
        }
    }
}

/// Forward: `x` `[n, c, h, w]`, `weight` `[o, c, 3, 3]` -> `[n, o, out_h, out_w]`.
pub fn forward(x: &[f32], weight: &[f32], g: &ConvGeometry) -> Vec<f32> {
    let t = Tiles::new(g);
    let u = transform_weights(weight, g);
    let (image_len, out_plane) = (g.c * g.h * g.w, g.out_h() * g.out_w());
    let chunk = t.images_per_chunk(g.n);
    let mut y = vec![0.0f32; g.n * g.o * out_plane];
    y.par_chunks_mut((chunk * g.o * out_plane).max(1)).zip(x.par_chunks((chunk * image_len).max(1))).for_each_init(Buffers::default, |buffers, (yc, xc)| {
        let images = xc.len() / image_len;
        let places = t.places(images);
        let tiles = places.len();
        let v = transform_inputs(xc, images, g, &t, &places, &mut buffers.inputs);
        // M_ξ [k, t] = U_ξ [k, c] · V_ξ [c, t].
        let m = scratch(&mut buffers.products, XI * g.o * stride(tiles));
        m.par_chunks_mut(g.o * stride(tiles)).enumerate().for_each(|(xi, m_xi)| {
            matmul(g.o, tiles, g.c, m_xi, stride(tiles), false, &u[xi * g.c..], [stride(XI * g.c), 1], &v[xi * tiles..], [stride(XI * tiles), 1], ONE_THREAD);
        });
        let out = Planes::new(yc);
        (0..g.o).into_par_iter().for_each(|k| output_channel(m, g, &places, k, &out));
    });
    y
}

/// Gradient with respect to the input `[n, c, h, w]` of the output gradient `grad`.
pub fn input_grad(weight: &[f32], grad: &[f32], g: &ConvGeometry) -> Vec<f32> {
    let t = Tiles::new(g);
    let u = transform_weights(weight, g);
    let (plane, out_len) = (g.h * g.w, g.o * g.out_h() * g.out_w());
    let chunk = t.images_per_chunk(g.n);
    let mut dx = vec![0.0f32; g.n * g.c * plane];
    dx.par_chunks_mut((chunk * g.c * plane).max(1)).zip(grad.par_chunks((chunk * out_len).max(1))).for_each_init(Buffers::default, |buffers, (dxc, dyc)| {
        let images = dyc.len() / out_len.max(1);
        let places = t.places(images);
        let tiles = places.len();
        let dm = transform_output_grads(dyc, g, &places, &mut buffers.grads);
        // dV_ξ [c, t] = U_ξᵀ [c, k] · dM_ξ [k, t]; U_ξᵀ read transposed.
        let dv = scratch(&mut buffers.products, XI * g.c * stride(tiles));
        dv.par_chunks_mut(g.c * stride(tiles)).enumerate().for_each(|(xi, dv_xi)| {
            matmul(g.c, tiles, g.o, dv_xi, stride(tiles), false, &u[xi * g.c..], [1, stride(XI * g.c)], &dm[xi * tiles..], [stride(XI * tiles), 1], ONE_THREAD);
        });
        // Each channel's planes gather the gradients of the (overlapping) tiles that read them.
        let out = Planes::new(dxc);
        (0..g.c).into_par_iter().for_each_init(
            || Padded::new(&t, images),
            |padded, c| {
                padded.values.fill(0.0);
                input_grad_channel(dv, g, &t, &places, c, padded);
                // SAFETY: channel c's planes are this task's (one task per input channel).
                unsafe { padded.drain(&out, images, c, g, &t) };
            },
        );
    });
    dx
}

/// Gradient with respect to the weights `[o, c, 3, 3]` of the output gradient `grad`.
pub fn weight_grad(x: &[f32], grad: &[f32], g: &ConvGeometry) -> Vec<f32> {
    let t = Tiles::new(g);
    let (image_len, out_len) = (g.c * g.h * g.w, g.o * g.out_h() * g.out_w());
    let chunk = t.images_per_chunk(g.n);
    let chunks = g.n.div_ceil(chunk).max(1);
    // Each part (a share of the chunks) sums its own dU; the parts are added at the end.
    let parts = rayon::current_num_threads().clamp(1, chunks);
    let chunks_per_part = chunks.div_ceil(parts);
    let partial: Vec<Vec<f32>> = (0..parts)
        .into_par_iter()
        .map(|part| {
            let mut du = vec![0.0f32; XI * g.o * stride(g.c)];
            let mut buffers = Buffers::default();
            let first = part * chunks_per_part * chunk;
            let last = ((part + 1) * chunks_per_part * chunk).min(g.n);
            for (i, start) in (first..last).step_by(chunk).enumerate() {
                let images = chunk.min(last - start);
                let places = t.places(images);
                let tiles = places.len();
                let v = transform_inputs(&x[start * image_len..][..images * image_len], images, g, &t, &places, &mut buffers.inputs);
                let dm = transform_output_grads(&grad[start * out_len..][..images * out_len], g, &places, &mut buffers.grads);
                // dU_ξ [k, c] += dM_ξ [k, t] · V_ξᵀ [t, c]; V_ξᵀ read transposed.
                du.par_chunks_mut(g.o * stride(g.c)).enumerate().for_each(|(xi, du_xi)| {
                    matmul(g.o, g.c, tiles, du_xi, stride(g.c), i > 0, &dm[xi * tiles..], [stride(XI * tiles), 1], &v[xi * tiles..], [1, stride(XI * tiles)], ONE_THREAD);
                });
            }
            du
        })
        .collect();
    let mut parts = partial.into_iter();
    let mut du = parts.next().unwrap_or_else(|| vec![0.0; XI * g.o * stride(g.c)]);
    for part in parts {
        du.iter_mut().zip(part).for_each(|(a, b)| *a += b);
    }
    let mut dw = vec![0.0f32; g.o * g.c * 9];
    dw.par_chunks_mut((g.c * 9).max(1)).enumerate().for_each(|(k, dwk)| weight_grad_row(&du, g, k, dwk));
    dw
}
