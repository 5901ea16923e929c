//! Export a dermrobust model as an ONNX file (operator set 13) with the sidecar TOML that
//! [`crate::evaluation::onnx`] reads, so the same audits run on a model in either form and other
//! tools (onnxruntime, tract, Netron) can run or inspect it.
//!
//! The graph takes the NORMALISED input `input` `[batch, 3, S, S]` (the sidecar carries the
//! model's mean and standard deviation) and returns `logits` `[batch, classes]`; the batch is a
//! symbolic dimension. Every architecture and head maps onto standard operators: `Conv`,
//! `BatchNormalization` (where it is not folded into a convolution), `Relu`, `MaxPool`,
//! `AveragePool`, `Add`, `Concat`, `GlobalAveragePool`, `GlobalMaxPool`, `Flatten`, `Gemm`, and
//! for anti-aliased models the blur-pool as `Pad` (reflect, or edge on maps of 2 pixels or
//! fewer, exactly as [`BlurPool::forward`] chooses) followed by a depthwise `Conv`. Dropout is
//! the identity at inference and is left out. The spatial size is fixed at the model's input size
//! (the blur-pool's padding mode depends on it).

use std::path::Path;

use anyhow::{bail, Context, Result};
use burn::nn::conv::Conv2d;
use burn::nn::pool::{AvgPool2d, MaxPool2d};
use burn::nn::{BatchNorm, Linear, PaddingConfig2d};
use burn::prelude::*;
use prost::Message;
use tract_onnx::pb;

use super::checkpoint::ModelMeta;
use super::head::Head;
use super::layers::BlurPool;
use super::{attnmel, densenet, resnet, vgg, Classifier, Stage};

/// The name of the graph's input (normalised images `[batch, 3, S, S]`).
pub const INPUT_NAME: &str = "input";
/// The name of the graph's output (logits `[batch, classes]`).
pub const OUTPUT_NAME: &str = "logits";
/// The symbolic batch dimension.
pub const BATCH_DIM: &str = "batch";
pub const OPSET: i64 = 13;
pub const IR_VERSION: i64 = 7;

/// Write `model` as `onnx_path` (must end in `.onnx`) and its sidecar `<name>.toml` beside it.
/// Pass the inference copy (`valid()`); batch norms folded into convolutions
/// ([`Classifier::fold_batch_norm`]) are exported folded, others as `BatchNormalization`.
pub fn export_onnx(model: &Classifier, meta: &ModelMeta, onnx_path: &Path) -> Result<()> {
    if !onnx_path.extension().is_some_and(|e| e.eq_ignore_ascii_case("onnx")) {
        bail!("{}: the ONNX file name must end in .onnx (dermrobust recognises ONNX models by it)", onnx_path.display());
    }
    let bytes = onnx_bytes(model, meta)?;
    let sidecar = sidecar_toml(meta)?;
    dermrobust_core::report::atomic_write(onnx_path, &bytes)?;
    dermrobust_core::report::atomic_write(&onnx_path.with_extension("toml"), sidecar.as_bytes())
}

/// The encoded ONNX model (a `ModelProto`).
pub fn onnx_bytes(model: &Classifier, meta: &ModelMeta) -> Result<Vec<u8>> {
    Ok(model_proto(model, meta)?.encode_to_vec())
}

/// The ONNX `ModelProto` of `model`.
pub fn model_proto(model: &Classifier, meta: &ModelMeta) -> Result<pb::ModelProto> {
    let c = &meta.config;
    if meta.classes.len() != c.num_classes {
        bail!("the model has {} outputs but names {} classes", c.num_classes, meta.classes.len());
    }
    let size = meta.preprocess.size;
    let mut g = GraphBuilder::default();
    let mut x = Value { name: INPUT_NAME.into(), c: 3, h: size, w: size };
    // Every stage's output, for an attention head that reads pool-3, pool-4 and pool-5.
    let mut taps = Vec::new();
    for (i, s) in model.body_early.iter().enumerate() {
        x = g.stage(x, s, &format!("body_early.{i}"))?;
        taps.push(x.clone());
    }
    for (i, s) in model.body_late.iter().enumerate() {
        x = g.stage(x, s, &format!("body_late.{i}"))?;
        taps.push(x.clone());
    }
    if let Some(attention) = &model.head.attention {
        x = g.attnmel_features(&taps, attention)?;
    }
    let classes = g.head(x, &model.head)?;
    if classes != c.num_classes {
        bail!("the model's head has {classes} outputs but its configuration says {}", c.num_classes);
    }
    // The head's last node makes the logits: give its output the graph output's name.
    let last = g.nodes.last_mut().context("empty graph")?;
    last.output[0] = OUTPUT_NAME.into();

    let graph = pb::GraphProto {
        name: format!("dermrobust-{}", c.arch),
        node: g.nodes,
        initializer: g.initializers,
        input: vec![value_info(INPUT_NAME, &[None, Some(3), Some(size), Some(size)])],
        output: vec![value_info(OUTPUT_NAME, &[None, Some(c.num_classes)])],
        doc_string: "input: images normalised with the sidecar's mean and std; output: logits".into(),
        ..Default::default()
    };
    let props = [
        ("arch", c.arch.to_string()),
        ("width", c.width.to_string()),
        ("anti_alias", c.anti_alias.to_string()),
        ("head", serde_json::to_value(c.head)?.as_str().unwrap_or_default().to_string()),
        ("classes", serde_json::to_string(&meta.classes)?),
        ("input_size", size.to_string()),
        ("mean", serde_json::to_string(&c.mean)?),
        ("std", serde_json::to_string(&c.std)?),
    ];
    Ok(pb::ModelProto {
        ir_version: IR_VERSION,
        opset_import: vec![pb::OperatorSetIdProto { domain: String::new(), version: OPSET }],
        producer_name: "dermrobust".into(),
        producer_version: env!("CARGO_PKG_VERSION").into(),
        doc_string: format!("dermrobust {} classifier ({} classes)", c.arch, c.num_classes),
        graph: Some(graph),
        metadata_props: props.into_iter().map(|(k, v)| pb::StringStringEntryProto { key: k.into(), value: v }).collect(),
        ..Default::default()
    })
}

/// The sidecar TOML ([`crate::evaluation::onnx::OnnxSidecar`]) of an exported model.
pub fn sidecar_toml(meta: &ModelMeta) -> Result<String> {
    let c = &meta.config;
    let s = |v: &str| toml::Value::String(v.to_string()).to_string();
    let floats = |v: &[f32; 3]| v.map(|x| format!("{x:?}")).join(", ");
    let classes: Vec<String> = meta.classes.iter().map(|k| s(k)).collect();
    let labels = serde_json::to_value(meta.label_scheme)?;
    let mut t = format!(
        "# dermrobust export of a {}{} (width {}) with a {} head.\n\
         # The ONNX graph takes images normalised as (pixel in [0, 1] - mean) / std.\n",
        c.arch,
        if c.anti_alias { " anti-aliased" } else { "" },
        c.width,
        serde_json::to_value(c.head)?.as_str().unwrap_or_default()
    );
    t += &format!("classes = [{}]\n", classes.join(", "));
    t += &format!("input_size = {}\n", meta.preprocess.size);
    t += &format!("mean = [{}]\n", floats(&c.mean));
    t += &format!("std = [{}]\n", floats(&c.std));
    match meta.preprocess.centre_crop {
        Some(f) => t += &format!("resize = \"centre-crop\"\ncentre_crop = {f:?}\n"),
        None => t += "resize = \"stretch\"\n",
    }
    t += &format!("labels = {}\n", s(labels.as_str().context("label scheme is not a name")?));
    t += "output = \"logits\"\n";
    t += &format!("input_name = {}\n", s(INPUT_NAME));
    if let Some(capture) = &meta.capture {
        t += "\n# Mishra's capture remedy the model was trained with: dermrobust applies it to every image\n# before the network (other tools must do the same).\n[capture]\n";
        t += &toml::to_string(capture)?;
    }
    Ok(t)
}

/// A value of the graph with its static channel and spatial sizes (the batch is symbolic).
#[derive(Clone, Debug)]
struct Value {
    name: String,
    c: usize,
    h: usize,
    w: usize,
}

impl Value {
    fn with(&self, name: String, c: usize, h: usize, w: usize) -> Value {
        Value { name, c, h, w }
    }
}

#[derive(Default)]
struct GraphBuilder {
    nodes: Vec<pb::NodeProto>,
    initializers: Vec<pb::TensorProto>,
    count: usize,
}

fn floats<const D: usize>(t: Tensor<D>) -> Result<Vec<f32>> {
    t.try_into_vec_as::<f32>().map_err(|e| anyhow::anyhow!("cannot read a weight tensor: {e:?}"))
}

fn attr_int(name: &str, v: i64) -> pb::AttributeProto {
    pb::AttributeProto { name: name.into(), r#type: pb::attribute_proto::AttributeType::Int as i32, i: v, ..Default::default() }
}

fn attr_ints(name: &str, v: &[usize]) -> pb::AttributeProto {
    pb::AttributeProto {
        name: name.into(),
        r#type: pb::attribute_proto::AttributeType::Ints as i32,
        ints: v.iter().map(|&x| x as i64).collect(),
        ..Default::default()
    }
}

fn attr_float(name: &str, v: f32) -> pb::AttributeProto {
    pb::AttributeProto { name: name.into(), r#type: pb::attribute_proto::AttributeType::Float as i32, f: v, ..Default::default() }
}

fn attr_string(name: &str, v: &str) -> pb::AttributeProto {
    pb::AttributeProto { name: name.into(), r#type: pb::attribute_proto::AttributeType::String as i32, s: v.as_bytes().to_vec(), ..Default::default() }
}

/// A float tensor's type with `dims` (`None`: the symbolic batch).
fn value_info(name: &str, dims: &[Option<usize>]) -> pb::ValueInfoProto {
    use pb::tensor_shape_proto::{dimension, Dimension};
    let dim = dims
        .iter()
        .map(|d| Dimension {
            value: Some(match d {
                Some(v) => dimension::Value::DimValue(*v as i64),
                None => dimension::Value::DimParam(BATCH_DIM.into()),
            }),
            ..Default::default()
        })
        .collect();
    pb::ValueInfoProto {
        name: name.into(),
        r#type: Some(pb::TypeProto {
            value: Some(pb::type_proto::Value::TensorType(pb::type_proto::Tensor {
                elem_type: pb::tensor_proto::DataType::Float as i32,
                shape: Some(pb::TensorShapeProto { dim }),
            })),
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// `(top, left, bottom, right)` padding of a convolution or pooling.
fn padding(p: &PaddingConfig2d, what: &str) -> Result<[usize; 4]> {
    match p {
        PaddingConfig2d::Valid => Ok([0; 4]),
        PaddingConfig2d::Explicit(t, l, b, r) => Ok([*t, *l, *b, *r]),
        PaddingConfig2d::Same => bail!("{what}: 'same' padding is not exported (no dermrobust architecture uses it)"),
    }
}

/// Output side of a window of `k` (dilated `d`) with stride `s` over `side` pixels padded by `pad`
/// in all.
fn out_side(side: usize, k: usize, s: usize, d: usize, pad: usize, ceil: bool, what: &str) -> Result<usize> {
    let span = d * (k - 1) + 1;
    let padded = side + pad;
    if padded < span {
        bail!("{what}: a {side}-pixel map is smaller than its {k}-pixel window (is the input size too small for this model?)");
    }
    let steps = padded - span;
    Ok(if ceil { steps.div_ceil(s) } else { steps / s } + 1)
}

impl GraphBuilder {
    fn fresh(&mut self, hint: &str) -> String {
        self.count += 1;
        format!("{hint}:{}", self.count)
    }

    fn initializer_f32(&mut self, name: &str, dims: &[usize], data: Vec<f32>) -> Result<String> {
        let n: usize = dims.iter().product();
        if n != data.len() {
            bail!("{name}: {} values for shape {dims:?}", data.len());
        }
        self.initializers.push(pb::TensorProto {
            name: name.into(),
            dims: dims.iter().map(|&d| d as i64).collect(),
            data_type: pb::tensor_proto::DataType::Float as i32,
            raw_data: data.iter().flat_map(|v| v.to_le_bytes()).collect(),
            ..Default::default()
        });
        Ok(name.into())
    }

    fn initializer_i64(&mut self, name: &str, data: &[i64]) -> String {
        self.initializers.push(pb::TensorProto {
            name: name.into(),
            dims: vec![data.len() as i64],
            data_type: pb::tensor_proto::DataType::Int64 as i32,
            raw_data: data.iter().flat_map(|v| v.to_le_bytes()).collect(),
            ..Default::default()
        });
        name.into()
    }

    /// Add a node and return the name of its (single) output.
    fn node(&mut self, op: &str, name: &str, inputs: Vec<String>, attribute: Vec<pb::AttributeProto>) -> String {
        let output = self.fresh(name);
        self.nodes.push(pb::NodeProto {
            op_type: op.into(),
            name: output.clone(),
            input: inputs,
            output: vec![output.clone()],
            attribute,
            ..Default::default()
        });
        output
    }

    fn conv(&mut self, x: &Value, conv: &Conv2d, path: &str) -> Result<Value> {
        let dims = conv.weight.dims();
        let [o, i, kh, kw] = dims;
        if i * conv.groups != x.c {
            bail!("{path}: convolution expects {} input channels, gets {}", i * conv.groups, x.c);
        }
        let pads = padding(&conv.padding, path)?;
        let h = out_side(x.h, kh, conv.stride[0], conv.dilation[0], pads[0] + pads[2], false, path)?;
        let w = out_side(x.w, kw, conv.stride[1], conv.dilation[1], pads[1] + pads[3], false, path)?;
        let mut inputs = vec![x.name.clone()];
        inputs.push(self.initializer_f32(&format!("{path}.weight"), &dims, floats(conv.weight.val())?)?);
        if let Some(b) = &conv.bias {
            inputs.push(self.initializer_f32(&format!("{path}.bias"), &[o], floats(b.val())?)?);
        }
        let attrs = vec![
            attr_ints("kernel_shape", &[kh, kw]),
            attr_ints("strides", &conv.stride),
            attr_ints("pads", &pads),
            attr_ints("dilations", &conv.dilation),
            attr_int("group", conv.groups as i64),
        ];
        let name = self.node("Conv", path, inputs, attrs);
        Ok(x.with(name, o, h, w))
    }

    /// Inference-mode batch norm over the channels of `[N, C, ...]` (a map or pooled features).
    fn batch_norm(&mut self, x: &Value, bn: &BatchNorm, path: &str) -> Result<Value> {
        let c = bn.gamma.dims()[0];
        if c != x.c {
            bail!("{path}: batch norm of {c} channels gets {}", x.c);
        }
        let inputs = vec![
            x.name.clone(),
            self.initializer_f32(&format!("{path}.gamma"), &[c], floats(bn.gamma.val())?)?,
            self.initializer_f32(&format!("{path}.beta"), &[c], floats(bn.beta.val())?)?,
            self.initializer_f32(&format!("{path}.running_mean"), &[c], floats(bn.running_mean.value())?)?,
            self.initializer_f32(&format!("{path}.running_var"), &[c], floats(bn.running_var.value())?)?,
        ];
        let name = self.node("BatchNormalization", path, inputs, vec![attr_float("epsilon", bn.epsilon as f32)]);
        Ok(x.with(name, x.c, x.h, x.w))
    }

    fn conv_bn(&mut self, x: &Value, conv: &Conv2d, bn: &Option<BatchNorm>, conv_path: &str, bn_path: &str) -> Result<Value> {
        let y = self.conv(x, conv, conv_path)?;
        match bn {
            Some(b) => self.batch_norm(&y, b, bn_path),
            None => Ok(y),
        }
    }

    fn relu(&mut self, x: &Value, path: &str) -> Value {
        let name = self.node("Relu", &format!("{path}.relu"), vec![x.name.clone()], vec![]);
        x.with(name, x.c, x.h, x.w)
    }

    fn max_pool(&mut self, x: &Value, p: &MaxPool2d, path: &str) -> Result<Value> {
        let pads = padding(&p.padding, path)?;
        let [kh, kw] = p.kernel_size;
        let h = out_side(x.h, kh, p.stride[0], p.dilation[0], pads[0] + pads[2], p.ceil_mode, path)?;
        let w = out_side(x.w, kw, p.stride[1], p.dilation[1], pads[1] + pads[3], p.ceil_mode, path)?;
        let attrs = vec![
            attr_ints("kernel_shape", &p.kernel_size),
            attr_ints("strides", &p.stride),
            attr_ints("pads", &pads),
            attr_ints("dilations", &p.dilation),
            attr_int("ceil_mode", p.ceil_mode as i64),
        ];
        let name = self.node("MaxPool", path, vec![x.name.clone()], attrs);
        Ok(x.with(name, x.c, h, w))
    }

    fn avg_pool(&mut self, x: &Value, p: &AvgPool2d, path: &str) -> Result<Value> {
        let pads = padding(&p.padding, path)?;
        let [kh, kw] = p.kernel_size;
        let h = out_side(x.h, kh, p.stride[0], 1, pads[0] + pads[2], p.ceil_mode, path)?;
        let w = out_side(x.w, kw, p.stride[1], 1, pads[1] + pads[3], p.ceil_mode, path)?;
        let attrs = vec![
            attr_ints("kernel_shape", &p.kernel_size),
            attr_ints("strides", &p.stride),
            attr_ints("pads", &pads),
            attr_int("count_include_pad", p.count_include_pad as i64),
            attr_int("ceil_mode", p.ceil_mode as i64),
        ];
        let name = self.node("AveragePool", path, vec![x.name.clone()], attrs);
        Ok(x.with(name, x.c, h, w))
    }

    /// The blur-pool: `Pad` (reflect, or edge on maps too small to reflect, as
    /// [`BlurPool::forward`] decides for this map size), then a depthwise strided `Conv`.
    fn blur(&mut self, x: &Value, b: &BlurPool, path: &str) -> Result<Value> {
        let [c, one, n, m] = b.kernel.dims();
        if c != b.channels || c != x.c || one != 1 || n != m {
            bail!("{path}: blur-pool of {} channels with kernel {:?} gets {} channels", b.channels, b.kernel.dims(), x.c);
        }
        let (before, after) = ((n - 1) / 2, n / 2);
        let mode = if x.h > after && x.w > after { "reflect" } else { "edge" };
        let pads = self.initializer_i64(&format!("{path}.pads"), &[0, 0, before as i64, before as i64, 0, 0, after as i64, after as i64]);
        let padded = self.node("Pad", &format!("{path}.pad"), vec![x.name.clone(), pads], vec![attr_string("mode", mode)]);
        let kernel = self.initializer_f32(&format!("{path}.kernel"), &[c, 1, n, n], floats(b.kernel.clone())?)?;
        let (ph, pw) = (x.h + before + after, x.w + before + after);
        let s = b.stride;
        let h = out_side(ph, n, s, 1, 0, false, path)?;
        let w = out_side(pw, n, s, 1, 0, false, path)?;
        let attrs = vec![
            attr_ints("kernel_shape", &[n, n]),
            attr_ints("strides", &[s, s]),
            attr_ints("pads", &[0, 0, 0, 0]),
            attr_int("group", c as i64),
        ];
        let name = self.node("Conv", path, vec![padded, kernel], attrs);
        Ok(x.with(name, c, h, w))
    }

    fn maybe_blur(&mut self, x: Value, b: &Option<BlurPool>, path: &str) -> Result<Value> {
        match b {
            Some(b) => self.blur(&x, b, path),
            None => Ok(x),
        }
    }

    fn stage(&mut self, x: Value, stage: &Stage, p: &str) -> Result<Value> {
        match stage {
            Stage::ResStem(s) => self.res_stem(x, s, p),
            Stage::Residual(s) => {
                let mut x = x;
                for (j, b) in s.blocks.iter().enumerate() {
                    x = self.res_block(x, b, &format!("{p}.blocks.{j}"))?;
                }
                Ok(x)
            }
            Stage::Vgg(s) => self.vgg_stage(x, s, p),
            Stage::DenseStem(s) => {
                let y = self.conv(&x, &s.conv0, &format!("{p}.conv0"))?;
                let y = self.batch_norm(&y, &s.norm0, &format!("{p}.norm0"))?;
                let y = self.relu(&y, &format!("{p}.norm0"));
                let y = self.max_pool(&y, &s.pool0, &format!("{p}.pool0"))?;
                self.maybe_blur(y, &s.blur, &format!("{p}.blur"))
            }
            Stage::Dense(s) => self.dense_block(x, s, p),
            Stage::Transition(s) => {
                let y = self.batch_norm(&x, &s.norm, &format!("{p}.norm"))?;
                let y = self.relu(&y, &format!("{p}.norm"));
                let y = self.conv(&y, &s.conv, &format!("{p}.conv"))?;
                match (&s.pool, &s.blur) {
                    (_, Some(b)) => self.blur(&y, b, &format!("{p}.blur")),
                    (Some(pool), None) => self.avg_pool(&y, pool, &format!("{p}.pool")),
                    (None, None) => Ok(y),
                }
            }
            Stage::Final(s) => {
                let y = self.batch_norm(&x, &s.norm5, &format!("{p}.norm5"))?;
                Ok(self.relu(&y, &format!("{p}.norm5")))
            }
        }
    }

    fn res_stem(&mut self, x: Value, s: &resnet::ResStem, p: &str) -> Result<Value> {
        let y = self.conv_bn(&x, &s.conv1, &s.bn1, &format!("{p}.conv1"), &format!("{p}.bn1"))?;
        let y = self.relu(&y, &format!("{p}.bn1"));
        let y = self.max_pool(&y, &s.pool, &format!("{p}.pool"))?;
        self.maybe_blur(y, &s.blur, &format!("{p}.blur"))
    }

    fn res_block(&mut self, x: Value, b: &resnet::ResBlock, p: &str) -> Result<Value> {
        let identity = match &b.downsample {
            Some(s) => {
                let y = self.maybe_blur(x.clone(), &s.blur, &format!("{p}.downsample.blur"))?;
                self.conv_bn(&y, &s.conv, &s.bn, &format!("{p}.downsample.conv"), &format!("{p}.downsample.bn"))?
            }
            None => x.clone(),
        };
        let out = match &b.conv3 {
            None => {
                let y = self.conv_bn(&x, &b.conv1, &b.bn1, &format!("{p}.conv1"), &format!("{p}.bn1"))?;
                let y = self.relu(&y, &format!("{p}.bn1"));
                let y = self.maybe_blur(y, &b.blur, &format!("{p}.blur"))?;
                self.conv_bn(&y, &b.conv2, &b.bn2, &format!("{p}.conv2"), &format!("{p}.bn2"))?
            }
            Some(c3) => {
                let y = self.conv_bn(&x, &b.conv1, &b.bn1, &format!("{p}.conv1"), &format!("{p}.bn1"))?;
                let y = self.relu(&y, &format!("{p}.bn1"));
                let y = self.conv_bn(&y, &b.conv2, &b.bn2, &format!("{p}.conv2"), &format!("{p}.bn2"))?;
                let y = self.relu(&y, &format!("{p}.bn2"));
                let y = self.maybe_blur(y, &b.blur, &format!("{p}.blur"))?;
                self.conv_bn(&y, c3, &b.bn3, &format!("{p}.conv3"), &format!("{p}.bn3"))?
            }
        };
        if (out.c, out.h, out.w) != (identity.c, identity.h, identity.w) {
            bail!("{p}: residual branch {:?} and shortcut {:?} differ in shape", (out.c, out.h, out.w), (identity.c, identity.h, identity.w));
        }
        let sum = self.node("Add", &format!("{p}.add"), vec![out.name.clone(), identity.name], vec![]);
        let sum = out.with(sum, out.c, out.h, out.w);
        Ok(self.relu(&sum, p))
    }

    fn vgg_stage(&mut self, x: Value, s: &vgg::VggStage, p: &str) -> Result<Value> {
        let mut x = x;
        for (i, c) in s.convs.iter().enumerate() {
            let bn = s.norms.get(i).unwrap_or(&None);
            x = self.conv_bn(&x, c, bn, &format!("{p}.convs.{i}"), &format!("{p}.norms.{i}"))?;
            x = self.relu(&x, &format!("{p}.convs.{i}"));
        }
        let x = self.max_pool(&x, &s.pool, &format!("{p}.pool"))?;
        self.maybe_blur(x, &s.blur, &format!("{p}.blur"))
    }

    fn dense_block(&mut self, x: Value, s: &densenet::DenseBlock, p: &str) -> Result<Value> {
        let mut features = x;
        for (i, l) in s.layers.iter().enumerate() {
            let q = format!("{p}.layers.{i}");
            let y = self.batch_norm(&features, &l.norm1, &format!("{q}.norm1"))?;
            let y = self.relu(&y, &format!("{q}.norm1"));
            let y = self.conv(&y, &l.conv1, &format!("{q}.conv1"))?;
            let y = self.batch_norm(&y, &l.norm2, &format!("{q}.norm2"))?;
            let y = self.relu(&y, &format!("{q}.norm2"));
            let y = self.conv(&y, &l.conv2, &format!("{q}.conv2"))?;
            let cat = self.node("Concat", &format!("{q}.concat"), vec![features.name.clone(), y.name.clone()], vec![attr_int("axis", 1)]);
            features = features.with(cat, features.c + y.c, features.h, features.w);
        }
        Ok(features)
    }

    /// AttnMel-CNN's classifier input `[N, C5 + C3 + C4, 1, 1]`: `[GAP(pool-5), g_3, g_4]`, as
    /// [`attnmel::AttnMelAttention::forward`] (the attention maps themselves are not graph outputs).
    fn attnmel_features(&mut self, taps: &[Value], a: &attnmel::AttnMelAttention) -> Result<Value> {
        let [i3, i4, i5] = attnmel::TAPS;
        let tap = |i: usize| taps.get(i).cloned().with_context(|| format!("the attention head reads stage {i}, but the model has {} stages", taps.len()));
        let (pool3, pool4, pool5) = (tap(i3)?, tap(i4)?, tap(i5)?);
        let global = self.node("GlobalAveragePool", "head.attention.global_pool", vec![pool5.name.clone()], vec![]);
        let g3 = self.attention_block(&pool3, &pool5, &a.pool3, "head.attention.pool3")?;
        let g4 = self.attention_block(&pool4, &pool5, &a.pool4, "head.attention.pool4")?;
        let cat = self.node("Concat", "head.attention.concat", vec![global, g3.name.clone(), g4.name.clone()], vec![attr_int("axis", 1)]);
        Ok(pool5.with(cat, pool5.c + g3.c + g4.c, 1, 1))
    }

    /// One attention module: `GAP(local * Sigmoid(phi * ReLU(W_l * local + up(W_g * global))))`,
    /// `[N, C, 1, 1]`.
    fn attention_block(&mut self, local: &Value, global: &Value, b: &attnmel::AttentionBlock, p: &str) -> Result<Value> {
        let l = self.conv(local, &b.w_l, &format!("{p}.w_l"))?;
        let mut g = self.conv(global, &b.w_g, &format!("{p}.w_g"))?;
        if (g.h, g.w) != (l.h, l.w) {
            if l.h % g.h != 0 || l.w % g.w != 0 {
                bail!("{p}: pool-5 ({}x{}) does not divide the local map ({}x{}) evenly, which the exported up-sampling needs: use an input size divisible by 32", g.h, g.w, l.h, l.w);
            }
            // PyTorch's (and burn's) bilinear interpolation without corner alignment is ONNX's
            // linear Resize with half-pixel coordinates; whole-number scales give the exact sizes.
            let scales = self.initializer_f32(&format!("{p}.up.scales"), &[4], vec![1.0, 1.0, (l.h / g.h) as f32, (l.w / g.w) as f32])?;
            let attrs = vec![attr_string("mode", "linear"), attr_string("coordinate_transformation_mode", "half_pixel")];
            let up = self.node("Resize", &format!("{p}.up"), vec![g.name.clone(), String::new(), scales], attrs);
            g = g.with(up, g.c, l.h, l.w);
        }
        let sum = self.node("Add", &format!("{p}.add"), vec![l.name.clone(), g.name.clone()], vec![]);
        let r = self.relu(&l.with(sum, l.c, l.h, l.w), &format!("{p}.add"));
        let logit = self.conv(&r, &b.phi, &format!("{p}.phi"))?;
        let map = self.node("Sigmoid", &format!("{p}.sigmoid"), vec![logit.name.clone()], vec![]);
        let attended = self.node("Mul", &format!("{p}.attend"), vec![local.name.clone(), map], vec![]);
        let pooled = self.node("GlobalAveragePool", &format!("{p}.pool"), vec![attended], vec![]);
        Ok(local.with(pooled, local.c, 1, 1))
    }

    fn linear(&mut self, x: &Value, l: &Linear, path: &str) -> Result<Value> {
        // burn keeps the weight as [in, out]: Gemm's B without transposition.
        let dims = l.weight.dims();
        let [i, o] = dims;
        if i != x.c {
            bail!("{path}: linear layer of {i} inputs gets {}", x.c);
        }
        let mut inputs = vec![x.name.clone(), self.initializer_f32(&format!("{path}.weight"), &dims, floats(l.weight.val())?)?];
        if let Some(b) = &l.bias {
            inputs.push(self.initializer_f32(&format!("{path}.bias"), &[o], floats(b.val())?)?);
        }
        let attrs = vec![attr_float("alpha", 1.0), attr_float("beta", 1.0), attr_int("transA", 0), attr_int("transB", 0)];
        let name = self.node("Gemm", path, inputs, attrs);
        Ok(x.with(name, o, 1, 1))
    }

    /// The head: pooling (max then average, concatenated, for fastai's head), batch norm,
    /// linear, ReLU, batch norm, linear. Returns the number of outputs.
    fn head(&mut self, x: Value, h: &Head) -> Result<usize> {
        let avg = self.node("GlobalAveragePool", "head.avg_pool", vec![x.name.clone()], vec![]);
        let (pooled, c) = if h.concat_pool {
            let max = self.node("GlobalMaxPool", "head.max_pool", vec![x.name.clone()], vec![]);
            (self.node("Concat", "head.concat_pool", vec![max, avg], vec![attr_int("axis", 1)]), 2 * x.c)
        } else {
            (avg, x.c)
        };
        let flat = self.node("Flatten", "head.flatten", vec![pooled], vec![attr_int("axis", 1)]);
        let mut y = x.with(flat, c, 1, 1);
        if let Some(b) = &h.bn1 {
            y = self.batch_norm(&y, b, "head.bn1")?;
        }
        if let Some(hidden) = &h.hidden {
            y = self.linear(&y, hidden, "head.hidden")?;
            y = self.relu(&y, "head.hidden");
            if let Some(b) = &h.bn2 {
                y = self.batch_norm(&y, b, "head.bn2")?;
            }
        }
        let y = self.linear(&y, &h.out, "head.out")?;
        Ok(y.c)
    }
}
