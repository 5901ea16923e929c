#!/usr/bin/env python3
"""Make the ONNX model that dermrobust's ONNX import tests load, with its sidecar and expected output.

Loads the existing `tiny_resnet18.safetensors` (written by make_torchvision_fixture.py; this script
does not regenerate it) into the same `TinyResNet18` (torchvision layout, widths 8, 16, 32, 64,
3 classes), in eval mode, and exports it with torch.onnx.export (legacy TorchScript exporter,
dynamo=False, opset 13, batch axis dynamic) as `tiny_resnet18.onnx`. As in a usual PyTorch export
the graph takes NORMALISED input: input `input` [N,3,64,64] = (x - mean) / std, output `logits`
[N,3] (no softmax in the graph). The sidecar `tiny_resnet18.toml` carries the classes (in output
order), input size, ImageNet mean/std, resize mode and input name.

`tiny_resnet18_onnx_expected.json` holds, as flat row-major float lists with `<name>_shape`:
- `input` [2,3,64,64]: RAW pixels in [0,1], torch.manual_seed(4), torch.rand, the second image squared;
- `logits` [2,3]: model((x - mean) / std);
- `probabilities` [2,3]: softmax of those logits;
- `mean`, `std`, `torch_version`.

Run (outside the project's build; needs torch, torchvision, safetensors, onnx; onnxruntime, if
installed, is used to check the exported graph against PyTorch):
    /tmp/torchenv/bin/python tools/reference/make_onnx_fixture.py crates/dermrobust/tests/fixtures
"""
import json
import os
import sys

import torch
from safetensors.torch import load_file

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from make_torchvision_fixture import TinyResNet18  # noqa: E402

MEAN = [0.485, 0.456, 0.406]
STD = [0.229, 0.224, 0.225]
CLASSES = ["akiec", "bcc", "mel"]

SIDECAR = """classes = ["akiec", "bcc", "mel"]   # output order
input_size = 64
mean = [0.485, 0.456, 0.406]
std = [0.229, 0.224, 0.225]
resize = "stretch"
input_name = "input"
"""


def main(out):
    model = TinyResNet18()
    model.load_state_dict(load_file(f"{out}/tiny_resnet18.safetensors"), strict=True)
    model.eval()

    torch.manual_seed(4)
    x = torch.rand(2, 3, 64, 64)
    x[1] = x[1] ** 2
    mean = torch.tensor(MEAN).view(1, 3, 1, 1)
    std = torch.tensor(STD).view(1, 3, 1, 1)
    normalised = (x - mean) / std
    with torch.no_grad():
        logits = model(normalised)
    probabilities = torch.softmax(logits, dim=1)

    onnx_path = f"{out}/tiny_resnet18.onnx"
    torch.onnx.export(model, (normalised,), onnx_path, dynamo=False, opset_version=13,
                      input_names=["input"], output_names=["logits"], do_constant_folding=True,
                      dynamic_axes={"input": {0: "batch"}, "logits": {0: "batch"}})

    import onnx
    proto = onnx.load(onnx_path)
    onnx.checker.check_model(proto, full_check=True)
    print("onnx ops:", sorted({n.op_type for n in proto.graph.node}), "opset",
          [(o.domain, o.version) for o in proto.opset_import], os.path.getsize(onnx_path), "bytes")
    try:
        import onnxruntime as ort
        sess = ort.InferenceSession(onnx_path, providers=["CPUExecutionProvider"])
        got = torch.from_numpy(sess.run(None, {"input": normalised.numpy()})[0])
        diff = (got - logits).abs().max().item()
        print("onnxruntime vs torch logits max abs diff:", diff)
        assert diff < 1e-4, diff
    except ImportError:
        print("onnxruntime not installed: exported graph not run")

    with open(f"{out}/tiny_resnet18.toml", "w") as f:
        f.write(SIDECAR)
    doc = {"torch_version": torch.__version__, "mean": MEAN, "std": STD, "classes": CLASSES}
    for name, t in {"input": x, "logits": logits, "probabilities": probabilities}.items():
        doc[f"{name}_shape"] = list(t.shape)
        doc[name] = t.to(torch.float64).flatten().tolist()
    with open(f"{out}/tiny_resnet18_onnx_expected.json", "w") as f:
        json.dump(doc, f)
    print("probabilities", probabilities)


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else ".")
