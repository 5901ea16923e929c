//! Pieces shared by the integration tests that compare a network with its exported or
//! re-engined copy (tests/onnx_export.rs, tests/engines.rs), or that need a random network that
//! is the same on every run (tests/audits.rs). Each test file includes it with
//! `mod common;`.

// Each test file uses only some of these pieces.
#![allow(dead_code)]

use burn::module::{ModuleMapper, ModuleVisitor, Param};
use burn::prelude::*;
use dermrobust_core::imaging::Image;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// Scales every rank-1 parameter and statistic (batch-norm scale, shift, running mean and
/// variance; biases) by U(0.5, 1.5) and shifts it by U(0, 0.2), so no batch norm is the identity
/// and folding matters; and multiplies the output layer's weights by `output_gain`, so a random
/// network's logits differ clearly between images.
pub struct Jitter {
    rng: ChaCha8Rng,
    path: Vec<String>,
    output_gain: f32,
}

impl Jitter {
    pub fn new(seed: u64, output_gain: f32) -> Self {
        Jitter { rng: ChaCha8Rng::seed_from_u64(seed), path: vec![], output_gain }
    }
}

impl ModuleMapper for Jitter {
    fn enter_module(&mut self, name: &str, _container: &str) {
        self.path.push(name.to_string());
    }
    fn exit_module(&mut self, _name: &str, _container: &str) {
        self.path.pop();
    }
    fn map_float<const D: usize>(&mut self, param: Param<Tensor<D>>) -> Param<Tensor<D>> {
        if D == 2 && self.path.last().is_some_and(|m| m == "out") {
            let gain = self.output_gain;
            return param.map(|t| t * gain);
        }
        if D != 1 {
            return param;
        }
        let rng = &mut self.rng;
        param.map(|t| {
            let n = t.dims()[0];
            let device = t.device();
            let scale: Vec<f32> = (0..n).map(|_| rng.random_range(0.5..1.5)).collect();
            let shift: Vec<f32> = (0..n).map(|_| rng.random_range(0.0..0.2)).collect();
            let shape: [usize; D] = t.dims();
            t * Tensor::<D>::from_data(TensorData::new(scale, shape), &device) + Tensor::<D>::from_data(TensorData::new(shift, shape), &device)
        })
    }
}

/// Replaces every weight tensor (rank 2 and up) with values drawn from this mapper's own seeded
/// generator, uniform on ±1/sqrt(fan-in) (PyTorch's default scale), and every bias with values
/// uniform on ±0.1. A network initialised by the backend depends on its global generator, which
/// tests running alongside also draw from; after this mapper it does not (batch-norm parameters
/// and statistics start as constants).
pub struct Reinit {
    rng: ChaCha8Rng,
    path: Vec<String>,
}

impl Reinit {
    pub fn new(seed: u64) -> Self {
        Reinit { rng: ChaCha8Rng::seed_from_u64(seed), path: vec![] }
    }
}

impl ModuleMapper for Reinit {
    fn enter_module(&mut self, name: &str, _container: &str) {
        self.path.push(name.to_string());
    }
    fn exit_module(&mut self, _name: &str, _container: &str) {
        self.path.pop();
    }
    fn map_float<const D: usize>(&mut self, param: Param<Tensor<D>>) -> Param<Tensor<D>> {
        let is_bias = self.path.last().is_some_and(|m| m == "bias");
        if D < 2 && !is_bias {
            return param;
        }
        let rng = &mut self.rng;
        param.map(|t| {
            let shape: [usize; D] = t.dims();
            let n: usize = shape.iter().product();
            // Convolutions are [out, in, kh, kw]; burn's linear layers are [in, out].
            let bound = match D {
                1 => 0.1,
                2 => 1.0 / (shape[0] as f32).sqrt(),
                _ => 1.0 / ((n / shape[0]) as f32).sqrt(),
            };
            let values: Vec<f32> = (0..n).map(|_| rng.random_range(-bound..bound)).collect();
            let fresh = Tensor::<D>::from_data(TensorData::new(values, shape), &t.device());
            if t.is_require_grad() {
                fresh.require_grad()
            } else {
                fresh
            }
        })
    }
}

/// Random images, each with its own colour and contrast (so that even pooled features differ).
pub fn images(n: usize, size: usize, seed: u64) -> Vec<Image> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    (0..n)
        .map(|_| {
            let colour: [f32; 3] = [rng.random(), rng.random(), rng.random()];
            let contrast: f32 = rng.random();
            let data = (0..3 * size * size).map(|i| (colour[i / (size * size)] + contrast * (rng.random::<f32>() - 0.5)).clamp(0.0, 1.0)).collect();
            Image::new(3, size, size, data)
        })
        .collect()
}

/// Casts every float parameter and buffer of a module to float64, where dermrobust's CPU kernels
/// do not apply and burn's own operations run.
pub struct ToF64;

impl ModuleMapper for ToF64 {
    fn map_float<const D: usize>(&mut self, param: Param<Tensor<D>>) -> Param<Tensor<D>> {
        // A leaf again after the cast, so that gradients reach it.
        param.map(|t| {
            let trainable = t.is_require_grad();
            let t = t.cast(burn::tensor::DType::F64).detach();
            if trainable {
                t.require_grad()
            } else {
                t
            }
        })
    }
}

/// Every float parameter and buffer of a module, in module order, as float64 (exact for float32).
pub fn float_values<M: burn::module::Module>(module: &M) -> Vec<Vec<f64>> {
    struct Collect(Vec<Vec<f64>>);
    impl ModuleVisitor for Collect {
        fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
            self.0.push(param.val().cast(burn::tensor::DType::F64).into_data().try_to_vec::<f64>().expect("float64 values"));
        }
    }
    let mut collect = Collect(vec![]);
    module.visit(&mut collect);
    collect.0
}
