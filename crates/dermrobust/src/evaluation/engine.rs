//! Inference engines for the inference-only paths (evaluate, predict, replay and every black-box
//! audit): the same network, run by burn (the default), by tract, or by ONNX Runtime.
//!
//! A dermrobust model is exported to ONNX in memory ([`crate::models::onnx_export::onnx_bytes`],
//! batch norm folded) and handed to the chosen engine; an ONNX file is handed over as it is. The
//! engine only changes how the forward pass is computed: every engine sits behind
//! [`ImageClassifier`], and `tests/engines.rs` checks that their probabilities match burn's.
//!
//! ONNX Runtime is optional twice over: the cargo feature `ort` (in the default build) compiles the
//! bindings, and the library itself (`libonnxruntime.so`, 1.18 or newer) is loaded at run time from
//! the path in `ORT_DYLIB_PATH`. Without either, `--engine ort` is a clear error; nothing else
//! changes. Its threads: one intra-op thread per rayon thread (the machine's cores, or
//! `RAYON_NUM_THREADS`), one inter-op thread.

use std::sync::{Arc, Mutex, RwLock};

use anyhow::{bail, Result};
use dermrobust_core::imaging::Image;
use tract_onnx::prelude::*;

use super::classifier::{softmax, ImageClassifier, TrainedModel};

/// The environment variable naming ONNX Runtime's shared library.
pub const ORT_LIBRARY_ENV: &str = "ORT_DYLIB_PATH";

/// Which engine runs forward passes of inference.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Engine {
    /// burn on the chosen device (batch norm folded); ONNX files run on tract.
    #[default]
    Burn,
    /// tract (pure Rust), on the model exported to ONNX in memory.
    Tract,
    /// ONNX Runtime, on the model exported to ONNX in memory; its library is loaded from the file
    /// named by ORT_DYLIB_PATH (e.g. `pip install onnxruntime` ships it as
    /// onnxruntime/capi/libonnxruntime.so.*).
    Ort,
}

impl std::fmt::Display for Engine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Engine::Burn => "burn",
            Engine::Tract => "tract",
            Engine::Ort => "ONNX Runtime",
        })
    }
}

impl Engine {
    /// The value of `--engine` that names it.
    pub fn flag(&self) -> &'static str {
        match self {
            Engine::Burn => "burn",
            Engine::Tract => "tract",
            Engine::Ort => "ort",
        }
    }
}

static ENGINE: RwLock<Engine> = RwLock::new(Engine::Burn);

/// Choose the engine of every model loaded from now on ([`super::load_model`]). The command line
/// sets it once, from `--engine`, after choosing the device. tract and ONNX Runtime run on the
/// CPU, so they refuse a GPU device rather than silently ignore it.
pub fn set_engine(engine: Engine) -> Result<()> {
    let device = crate::device::chosen();
    if engine != Engine::Burn && device != crate::device::DeviceChoice::Cpu {
        bail!("--engine {} runs on the CPU, so it cannot be combined with --device {device}: use --engine burn on the GPU", engine.flag());
    }
    if engine == Engine::Ort {
        // Now, so a missing library is reported before any work.
        ort_library()?;
    }
    *ENGINE.write().unwrap_or_else(|p| p.into_inner()) = engine;
    Ok(())
}

/// The engine models are loaded with.
pub fn engine() -> Engine {
    *ENGINE.read().unwrap_or_else(|p| p.into_inner())
}

/// Load ONNX Runtime's library (once per process). An error says what is missing and how to get it.
pub fn ort_library() -> Result<()> {
    #[cfg(feature = "ort")]
    {
        static LOADED: std::sync::OnceLock<std::result::Result<(), String>> = std::sync::OnceLock::new();
        LOADED
            .get_or_init(|| {
                let Some(path) = std::env::var_os(ORT_LIBRARY_ENV) else {
                    return Err(format!(
                        "--engine ort needs ONNX Runtime's library (1.18 or newer): set {ORT_LIBRARY_ENV} to the path of libonnxruntime.so \
                         (`pip install onnxruntime` ships it as site-packages/onnxruntime/capi/libonnxruntime.so.*), or use --engine burn or tract"
                    ));
                };
                let path = std::path::PathBuf::from(path);
                if !path.is_file() {
                    return Err(format!("{ORT_LIBRARY_ENV}={}: no such file (it should name libonnxruntime.so)", path.display()));
                }
                let builder = ort::init_from(&path).map_err(|e| format!("{ORT_LIBRARY_ENV}={}: cannot load ONNX Runtime: {e}", path.display()))?;
                builder.with_name("dermrobust").with_telemetry(false).commit();
                Ok(())
            })
            .clone()
            .map_err(anyhow::Error::msg)
    }
    #[cfg(not(feature = "ort"))]
    bail!("--engine ort: this dermrobust was built without ONNX Runtime support (cargo feature `ort`, in the default build); rebuild with it or use --engine burn or tract")
}

type Plan = Arc<TypedRunnableModel>;

/// An ONNX network prepared by one engine: normalised images `[n, 3, S, S]` in, the network's
/// outputs `[n, K]` out.
pub enum OnnxRunner {
    /// tract, compiled for a fixed batch (smaller batches are padded).
    Tract { plan: Plan, batch: usize },
    /// ONNX Runtime, at any batch. A session runs one batch at a time.
    #[cfg(feature = "ort")]
    Ort { session: Mutex<ort::session::Session> },
}

impl OnnxRunner {
    /// The batch tract's plan is compiled for.
    pub const TRACT_BATCH: usize = 16;

    /// Prepare the ONNX model `bytes` (input `[batch, 3, size, size]`) on `engine` (tract for
    /// [`Engine::Burn`], which cannot run ONNX). `what` names the model in errors.
    pub fn new(engine: Engine, bytes: &[u8], size: usize, what: &str) -> Result<Self> {
        match engine {
            Engine::Burn | Engine::Tract => {
                let batch = Self::TRACT_BATCH;
                let plan = tract_onnx::onnx()
                    .model_for_read(&mut &bytes[..])
                    .map_err(|e| anyhow::anyhow!("{what}: not a readable ONNX model: {e:#}"))?
                    .with_input_fact(0, f32::fact([batch, 3, size, size]).into())
                    .and_then(|m| m.into_optimized())
                    .and_then(|m| m.into_runnable())
                    .map_err(|e| anyhow::anyhow!("{what}: cannot prepare the ONNX model for input [{batch}, 3, {size}, {size}]: {e:#}"))?;
                Ok(OnnxRunner::Tract { plan, batch })
            }
            Engine::Ort => Self::ort(bytes, what),
        }
    }

    #[cfg(feature = "ort")]
    fn ort(bytes: &[u8], what: &str) -> Result<Self> {
        use ort::session::builder::GraphOptimizationLevel;
        ort_library()?;
        let threads = rayon::current_num_threads().max(1);
        let fail = |e: ort::Error| anyhow::anyhow!("{what}: ONNX Runtime cannot prepare the model: {e}");
        let session = ort::session::Session::builder()
            .map_err(fail)?
            .with_optimization_level(GraphOptimizationLevel::Level3)
            .map_err(|e| fail(e.into()))?
            .with_intra_threads(threads)
            .map_err(|e| fail(e.into()))?
            .with_inter_threads(1)
            .map_err(|e| fail(e.into()))?
            .commit_from_memory(bytes)
            .map_err(fail)?;
        Ok(OnnxRunner::Ort { session: Mutex::new(session) })
    }

    #[cfg(not(feature = "ort"))]
    fn ort(_bytes: &[u8], _what: &str) -> Result<Self> {
        ort_library()?;
        unreachable!("ort_library fails without the feature")
    }

    /// The engine's name, for reports.
    pub fn engine(&self) -> Engine {
        match self {
            OnnxRunner::Tract { .. } => Engine::Tract,
            #[cfg(feature = "ort")]
            OnnxRunner::Ort { .. } => Engine::Ort,
        }
    }

    /// The outputs, row by row, of `n` normalised images packed in `input` (`[n, 3, size, size]`).
    pub fn run(&self, input: Vec<f32>, n: usize, size: usize, what: &str) -> Result<Vec<Vec<f32>>> {
        let per_image = 3 * size * size;
        if input.len() != n * per_image {
            bail!("{what}: {} input values for {n} images of {size}x{size}", input.len());
        }
        match self {
            OnnxRunner::Tract { plan, batch } => {
                let mut rows = Vec::with_capacity(n);
                for chunk in input.chunks(batch * per_image) {
                    let m = chunk.len() / per_image;
                    let mut data = chunk.to_vec();
                    data.resize(batch * per_image, 0.0);
                    let x: Tensor = tract_ndarray::Array4::from_shape_vec((*batch, 3, size, size), data)?.into();
                    let outputs = plan.run(tvec!(x.into())).map_err(|e| anyhow::anyhow!("{what}: inference failed: {e:#}"))?;
                    let view = outputs[0].to_plain_array_view::<f32>().map_err(|e| anyhow::anyhow!("{what}: output is not f32: {e:#}"))?;
                    let flat: Vec<f32> = view.iter().copied().collect();
                    let k = flat.len() / batch;
                    rows.extend(flat.chunks(k).take(m).map(<[f32]>::to_vec));
                }
                Ok(rows)
            }
            #[cfg(feature = "ort")]
            OnnxRunner::Ort { session } => {
                if n == 0 {
                    return Ok(Vec::new());
                }
                let x = ort::value::Tensor::from_array(([n, 3, size, size], input)).map_err(|e| anyhow::anyhow!("{what}: {e}"))?;
                let mut session = session.lock().unwrap_or_else(|p| p.into_inner());
                let outputs = session.run(ort::inputs![x]).map_err(|e| anyhow::anyhow!("{what}: ONNX Runtime inference failed: {e}"))?;
                let (_, flat) = outputs[0].try_extract_tensor::<f32>().map_err(|e| anyhow::anyhow!("{what}: output is not f32: {e}"))?;
                if flat.is_empty() || flat.len() % n != 0 {
                    bail!("{what}: {} outputs for {n} images", flat.len());
                }
                Ok(flat.chunks(flat.len() / n).map(<[f32]>::to_vec).collect())
            }
        }
    }
}

/// `images` (raw `[0, 1]` RGB, `size` x `size`), normalised with `mean` and `std` and packed as
/// `[n, 3, size, size]`.
pub fn pack_normalised(images: &[Image], size: usize, mean: [f32; 3], std: [f32; 3], what: &str) -> Result<Vec<f32>> {
    let plane = size * size;
    let mut data = vec![0f32; images.len() * 3 * plane];
    for (k, img) in images.iter().enumerate() {
        if img.width != size || img.height != size || img.channels != 3 {
            bail!("{what} expects {size}x{size} RGB images, got {}x{}x{}", img.width, img.height, img.channels);
        }
        for c in 0..3 {
            let (m, sd) = (mean[c], std[c]);
            let out = &mut data[(k * 3 + c) * plane..(k * 3 + c + 1) * plane];
            for (o, &v) in out.iter_mut().zip(&img.data[c * plane..(c + 1) * plane]) {
                *o = (v - m) / sd;
            }
        }
    }
    Ok(data)
}

/// A dermrobust model run by another engine: exported to ONNX in memory (as loaded, batch norm
/// folded) and prepared by tract or ONNX Runtime. Same classes, input and probabilities as the
/// [`TrainedModel`] it was made from.
pub struct EngineModel {
    pub model: TrainedModel,
    runner: OnnxRunner,
    /// Images per forward pass.
    pub batch_size: usize,
}

impl EngineModel {
    pub fn new(model: TrainedModel, engine: Engine) -> Result<Self> {
        let bytes = crate::models::onnx_export::onnx_bytes(&model.model, &model.meta)?;
        let runner = OnnxRunner::new(engine, &bytes, model.meta.preprocess.size, &model.describe())?;
        let batch_size = model.batch_size;
        Ok(EngineModel { model, runner, batch_size })
    }

    pub fn engine(&self) -> Engine {
        self.runner.engine()
    }
}

impl ImageClassifier for EngineModel {
    fn classes(&self) -> &[String] {
        self.model.classes()
    }

    fn input_size(&self) -> usize {
        self.model.input_size()
    }

    fn predict(&self, images: &[Image]) -> Result<Vec<Vec<f32>>> {
        let size = self.input_size();
        let c = &self.model.meta.config;
        let what = self.model.describe();
        let mut out = Vec::with_capacity(images.len());
        for chunk in images.chunks(self.batch_size.max(1)) {
            let x = pack_normalised(chunk, size, c.mean, c.std, &what)?;
            out.extend(self.runner.run(x, chunk.len(), size, &what)?.iter().map(|row| softmax(row)));
        }
        Ok(out)
    }

    fn describe(&self) -> String {
        format!("{} on {}", self.model.describe(), self.engine())
    }
}

/// `model` as a classifier on the engine chosen for this process: itself for burn, else an
/// [`EngineModel`].
pub fn on_engine(model: TrainedModel) -> Result<Box<dyn ImageClassifier>> {
    Ok(match engine() {
        Engine::Burn => Box::new(model),
        e => Box::new(EngineModel::new(model, e)?),
    })
}
