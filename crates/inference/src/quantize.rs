//! Re-quantizing a GGUF model at install time.
//!
//! candle's dot products for Q4_1 and Q5_x blocks are scalar code, while
//! Q8_0 has vectorised paths on x86: converting those weights to Q8_0 trades
//! about 1.5x the file size for much faster prefill and decoding (see
//! `docs/performance.md`). Norms and biases stay as they are.

use std::fs::File;
use std::io::BufWriter;
use std::path::Path;

use candle_core::quantized::{gguf_file, GgmlDType, QTensor};
use candle_core::Device;

use crate::error::{Error, Result};
use crate::registry::{progress_bar, Progress, Quantization};

/// GGUF `general.file_type` for "mostly Q8_0".
const FILE_TYPE_MOSTLY_Q8_0: u32 = 7;

pub fn requantize(
    source: &Path,
    target: &Path,
    quantization: Quantization,
    progress: Progress,
) -> Result<()> {
    let Quantization::Q8_0 = quantization;
    let bad = |e: candle_core::Error| Error::BadModelFile {
        path: source.to_owned(),
        reason: e.to_string(),
    };
    let mut reader =
        File::open(source).map_err(Error::io(format!("cannot open {}", source.display())))?;
    let content = gguf_file::Content::read(&mut reader).map_err(bad)?;
    let device = Device::Cpu;
    let mut names: Vec<&String> = content.tensor_infos.keys().collect();
    names.sort();
    let bar = progress_bar(progress, names.len() as u64, "re-quantizing to q8_0");
    let mut tensors = Vec::with_capacity(names.len());
    for name in names {
        let tensor = content.tensor(&mut reader, name, &device).map_err(bad)?;
        let tensor = if converts_to_q8_0(&tensor) {
            QTensor::quantize(&tensor.dequantize(&device)?, GgmlDType::Q8_0)?
        } else {
            tensor
        };
        tensors.push((name.as_str(), tensor));
        bar.inc(1);
    }
    bar.finish_and_clear();

    let file_type = gguf_file::Value::U32(FILE_TYPE_MOSTLY_Q8_0);
    let mut metadata: Vec<(&str, &gguf_file::Value)> = content
        .metadata
        .iter()
        .filter(|(k, _)| k.as_str() != "general.file_type")
        .map(|(k, v)| (k.as_str(), v))
        .collect();
    metadata.push(("general.file_type", &file_type));
    let tensor_refs: Vec<(&str, &QTensor)> = tensors.iter().map(|(n, t)| (*n, t)).collect();

    let mut partial = target.as_os_str().to_owned();
    partial.push(".partial");
    let write = || -> Result<()> {
        let file =
            File::create(&partial).map_err(Error::io("cannot create the re-quantized file"))?;
        let mut writer = BufWriter::new(file);
        gguf_file::write(&mut writer, &metadata, &tensor_refs)?;
        let file = writer
            .into_inner()
            .map_err(|e| Error::io("cannot write the re-quantized file")(e.into_error()))?;
        file.sync_all().map_err(Error::io("cannot write the re-quantized file"))?;
        std::fs::rename(&partial, target)
            .map_err(Error::io("cannot move the re-quantized file into place"))
    };
    write().inspect_err(|_| {
        let _ = std::fs::remove_file(&partial);
    })
}

/// Matrices in block formats slower than Q8_0 whose rows split into Q8_0's
/// 32-value blocks.
fn converts_to_q8_0(tensor: &QTensor) -> bool {
    let slow = matches!(
        tensor.dtype(),
        GgmlDType::Q4_0
            | GgmlDType::Q4_1
            | GgmlDType::Q5_0
            | GgmlDType::Q5_1
            | GgmlDType::Q2K
            | GgmlDType::Q3K
            | GgmlDType::Q4K
            | GgmlDType::Q5K
            | GgmlDType::Q6K
    );
    let dims = tensor.shape().dims();
    slow && dims.len() == 2 && dims[1].is_multiple_of(32)
}
