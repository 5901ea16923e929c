//! Saving and loading models (burn's burnpack weights + a JSON description), and importing
//! torchvision-layout PyTorch checkpoints (`.pth`/`.pt` or `.safetensors`).

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use burn::prelude::*;
use burn::store::{ModuleSnapshot, PyTorchToBurnAdapter, PytorchStore, SafetensorsStore};
use dermrobust_core::data::{LabelScheme, Preprocess};
use dermrobust_core::imaging::remedy::CaptureRemedy;
use serde::{Deserialize, Serialize};

use super::{Arch, Classifier, ModelConfig};

pub const WEIGHTS_FILE: &str = "model.bpk";
pub const META_FILE: &str = "model.json";

/// What a saved model is: architecture, classes and the preprocessing it was trained with.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ModelMeta {
    pub config: ModelConfig,
    pub classes: Vec<String>,
    pub label_scheme: LabelScheme,
    pub preprocess: Preprocess,
    /// Mishra's capture remedy the model was trained with (gamma, field of view), which
    /// evaluation, prediction and audits apply by default.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub capture: Option<CaptureRemedy>,
}

/// Save weights and description into `dir` (atomically: temporary file, then rename).
/// `model` should be the inference copy (`model.valid()`), which carries synced batch-norm
/// statistics.
pub fn save(dir: &Path, model: Classifier, meta: &ModelMeta) -> Result<()> {
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let tmp = dir.join(format!(".{WEIGHTS_FILE}.tmp{}", std::process::id()));
    model.save_file(&tmp).map_err(|e| anyhow::anyhow!("cannot write {}: {e:?}", tmp.display()))?;
    std::fs::rename(&tmp, dir.join(WEIGHTS_FILE)).with_context(|| format!("cannot write {}", dir.join(WEIGHTS_FILE).display()))?;
    dermrobust_core::report::write_json(&dir.join(META_FILE), meta)
}

/// The folder of a model given either the folder or a file inside it.
pub fn model_dir(path: &Path) -> PathBuf {
    if path.is_file() { path.parent().map(Path::to_path_buf).unwrap_or_default() } else { path.to_path_buf() }
}

/// Load a model saved by [`save`] (pass its folder or its `model.json`).
pub fn load(path: &Path, device: &Device) -> Result<(Classifier, ModelMeta)> {
    let dir = model_dir(path);
    let meta: ModelMeta = dermrobust_core::report::read_json(&dir.join(META_FILE))
        .with_context(|| format!("{} is not a dermrobust model folder (no valid {META_FILE})", dir.display()))?;
    let weights = dir.join(WEIGHTS_FILE);
    if !weights.is_file() {
        bail!("model folder {} has no {WEIGHTS_FILE}", dir.display());
    }
    let model = meta
        .config
        .init(device)
        .try_load_file(&weights)
        .map_err(|e| anyhow::anyhow!("cannot load weights {}: {e:?} (does model.json match the weights?)", weights.display()))?;
    Ok((model, meta))
}

/// How torchvision parameter names map onto ours, per architecture, as (regex, replacement)
/// pairs. (burn-store matches paths without enum variant names, so `Stage::ResStem` adds no
/// path segment.)
fn torchvision_key_map(arch: Arch) -> Vec<(String, String)> {
    // Our path of backbone stage `i` (stages are split into the two layer groups).
    let stage = |i: usize| if i < arch.early_stages() { format!("body_early.{i}") } else { format!("body_late.{}", i - arch.early_stages()) };
    let pair = |from: String, to: String| (from, to);
    match arch {
        Arch::Resnet18 | Arch::Resnet34 | Arch::Resnet50 => [
            (r"^conv1\.", "body_early.0.conv1."),
            (r"^bn1\.", "body_early.0.bn1."),
            (r"^layer1\.", "body_early.1.blocks."),
            (r"^layer2\.", "body_early.2.blocks."),
            (r"^layer3\.", "body_late.0.blocks."),
            (r"^layer4\.", "body_late.1.blocks."),
            (r"\.downsample\.0\.", ".downsample.conv."),
            (r"\.downsample\.1\.", ".downsample.bn."),
            (r"^fc\.", "head.out."),
        ]
        .map(|(f, t)| pair(f.into(), t.into()))
        .to_vec(),
        // `vgg16_bn`: `features` is one sequence of (conv, batch norm, ReLU) x n + max-pool per
        // stage. Its dense classifier has no counterpart in our pooled head and stays unused.
        // AttnMel-CNN's backbone is the same `vgg16_bn` (Yan et al. start from it); its attention
        // modules are new (`head.attention.*`, reported as missing head parameters).
        Arch::Vgg16Gap | Arch::Attnmel => {
            let mut map = Vec::new();
            let mut index = 0;
            for (s, convs) in [2, 2, 3, 3, 3].into_iter().enumerate() {
                for k in 0..convs {
                    map.push(pair(format!(r"^features\.{index}\."), format!("{}.convs.{k}.", stage(s))));
                    map.push(pair(format!(r"^features\.{}\.", index + 1), format!("{}.norms.{k}.", stage(s))));
                    // The authors' AttnVGG (github.com/SaoYan/IPMI2019-AttnMel) keeps each stage's
                    // (conv, batch norm, ReLU) x n as `conv_block{s+1}`.
                    if arch == Arch::Attnmel {
                        map.push(pair(format!(r"^conv_block{}\.{}\.", s + 1, 3 * k), format!("{}.convs.{k}.", stage(s))));
                        map.push(pair(format!(r"^conv_block{}\.{}\.", s + 1, 3 * k + 1), format!("{}.norms.{k}.", stage(s))));
                    }
                    index += 3;
                }
                index += 1;
            }
            if arch == Arch::Attnmel {
                // AttnVGG's attention modules and classifier.
                for (from, to) in [(r"^attn1\.W_l\.", "head.attention.pool3.w_l."), (r"^attn1\.W_g\.", "head.attention.pool3.w_g."), (r"^attn1\.phi\.", "head.attention.pool3.phi."), (r"^attn2\.W_l\.", "head.attention.pool4.w_l."), (r"^attn2\.W_g\.", "head.attention.pool4.w_g."), (r"^attn2\.phi\.", "head.attention.pool4.phi."), (r"^cls\.", "head.out.")] {
                    map.push(pair(from.into(), to.into()));
                }
            }
            map
        }
        // `densenet121`: stem, 4 dense blocks (layers numbered from 1) with 3 transitions between
        // them, final norm; stages in that order.
        Arch::Densenet121 => {
            let mut map = vec![
                // torchvision's published weights still name `norm1` as `norm.1` (its loader renames them).
                pair(r"^(features\.denseblock\d+\.denselayer\d+\.(?:norm|relu|conv))\.([12])\.".into(), "${1}${2}.".into()),
                pair(r"^features\.conv0\.".into(), format!("{}.conv0.", stage(0))),
                pair(r"^features\.norm0\.".into(), format!("{}.norm0.", stage(0))),
            ];
            for (b, layers) in [6, 12, 24, 16].into_iter().enumerate() {
                let block_stage = 1 + 2 * b;
                for l in 1..=layers {
                    map.push(pair(format!(r"^features\.denseblock{}\.denselayer{l}\.", b + 1), format!("{}.layers.{}.", stage(block_stage), l - 1)));
                }
                if b < 3 {
                    map.push(pair(format!(r"^features\.transition{}\.", b + 1), format!("{}.", stage(block_stage + 1))));
                }
            }
            map.push(pair(r"^features\.norm5\.".into(), format!("{}.norm5.", stage(8))));
            map.push(pair(r"^classifier\.".into(), "head.out.".into()));
            map
        }
    }
}

#[derive(Clone, Debug, Serialize)]
pub struct ImportReport {
    pub applied: usize,
    /// Our parameters the checkpoint did not provide (a new head when fine-tuning).
    pub missing: Vec<String>,
    /// Checkpoint tensors we had no place for.
    pub unused: Vec<String>,
}

/// Load torchvision-layout weights (`.pth`/`.pt` or `.safetensors`) into `model`. Backbone
/// parameters must all be present and of matching shape; head parameters may be missing or
/// skipped (a new head for other classes).
pub fn import_torchvision(model: Classifier, arch: Arch, path: &Path) -> Result<(Classifier, ImportReport)> {
    let mut model = model;
    let map = torchvision_key_map(arch);
    let is_safetensors = path.extension().is_some_and(|e| e == "safetensors");
    let result = if is_safetensors {
        let mut store = SafetensorsStore::from_file(path).with_from_adapter(PyTorchToBurnAdapter).skip_enum_variants(true).allow_partial(true);
        for (from, to) in &map {
            store = store.with_key_remapping(from, to.as_str());
        }
        model.load_from(&mut store).map_err(|e| format!("{e:?}"))
    } else {
        let mut store = PytorchStore::from_file(path).skip_enum_variants(true).allow_partial(true).map_indices_contiguous(false);
        for (from, to) in &map {
            store = store.with_key_remapping(from, to.as_str());
        }
        model.load_from(&mut store).map_err(|e| format!("{e:?}"))
    }
    .map_err(|e| anyhow::anyhow!("cannot import {}: {e}", path.display()))?;
    let missing: Vec<String> = result.missing.iter().map(|m| format!("{m:?}")).collect();
    let backbone_missing: Vec<&String> = missing.iter().filter(|m| !m.contains("head.")).collect();
    if !backbone_missing.is_empty() {
        bail!(
            "{} does not provide {} backbone parameters of {arch} (e.g. {}); is it a torchvision {arch} checkpoint of the same width?",
            path.display(),
            backbone_missing.len(),
            backbone_missing[0]
        );
    }
    if result.applied.is_empty() {
        bail!("no parameter of {} matched {arch}", path.display());
    }
    let unused = result.unused.iter().filter(|u| !u.ends_with("num_batches_tracked")).cloned().collect();
    Ok((model, ImportReport { applied: result.applied.len(), missing, unused }))
}
