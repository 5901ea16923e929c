//! NumPy `.npy` files of `float32` arrays (format version 1.0, C order): how dense perturbations
//! (adversarial deltas) and raw maps are stored, so Python users can `numpy.load` them too.

use std::path::Path;

use anyhow::{bail, Context, Result};

/// Write `data` with `shape` as a little-endian `float32` `.npy` file (atomically).
pub fn write_npy(path: &Path, shape: &[usize], data: &[f32]) -> Result<()> {
    if shape.iter().product::<usize>() != data.len() {
        bail!("{}: shape {shape:?} does not hold {} values", path.display(), data.len());
    }
    let dims: Vec<String> = shape.iter().map(|d| d.to_string()).collect();
    let shape_text = if dims.len() == 1 { format!("({},)", dims[0]) } else { format!("({})", dims.join(", ")) };
    let mut header = format!("{{'descr': '<f4', 'fortran_order': False, 'shape': {shape_text}, }}");
    // Magic (6) + version (2) + header length (2) + header, padded with spaces to a multiple of 64
    // and ended by a newline.
    let total = 10 + header.len() + 1;
    header.push_str(&" ".repeat((64 - total % 64) % 64));
    header.push('\n');
    let mut bytes = Vec::with_capacity(10 + header.len() + 4 * data.len());
    bytes.extend_from_slice(b"\x93NUMPY\x01\x00");
    bytes.extend_from_slice(&(header.len() as u16).to_le_bytes());
    bytes.extend_from_slice(header.as_bytes());
    for v in data {
        bytes.extend_from_slice(&v.to_le_bytes());
    }
    crate::report::atomic_write(path, &bytes)
}

/// Read a little-endian `float32` C-order `.npy` file: its shape and values.
pub fn read_npy(path: &Path) -> Result<(Vec<usize>, Vec<f32>)> {
    let bytes = std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
    if bytes.len() < 10 || &bytes[..6] != b"\x93NUMPY" {
        bail!("{} is not a .npy file", path.display());
    }
    let (major, header_start, len) = match bytes[6] {
        1 => (1, 10, u16::from_le_bytes([bytes[8], bytes[9]]) as usize),
        2 | 3 if bytes.len() >= 12 => (bytes[6], 12, u32::from_le_bytes([bytes[8], bytes[9], bytes[10], bytes[11]]) as usize),
        v => bail!("{}: unsupported .npy version {v}", path.display()),
    };
    let _ = major;
    let header = std::str::from_utf8(bytes.get(header_start..header_start + len).with_context(|| format!("{}: truncated header", path.display()))?)
        .with_context(|| format!("{}: header is not text", path.display()))?;
    if !header.contains("'descr': '<f4'") {
        bail!("{}: only little-endian float32 arrays are supported (header {header:?})", path.display());
    }
    if header.contains("'fortran_order': True") {
        bail!("{}: Fortran-order arrays are not supported", path.display());
    }
    let shape_text = header.split("'shape':").nth(1).and_then(|s| s.split('(').nth(1)).and_then(|s| s.split(')').next()).with_context(|| format!("{}: no shape in the header", path.display()))?;
    let shape: Vec<usize> =
        shape_text.split(',').map(str::trim).filter(|s| !s.is_empty()).map(|s| s.parse::<usize>()).collect::<std::result::Result<_, _>>().with_context(|| format!("{}: bad shape {shape_text:?}", path.display()))?;
    let body = &bytes[header_start + len..];
    let count: usize = shape.iter().product();
    if body.len() != 4 * count {
        bail!("{}: {} bytes of data for shape {shape:?} ({} expected): truncated or corrupt", path.display(), body.len(), 4 * count);
    }
    Ok((shape, body.chunks_exact(4).map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]])).collect()))
}
