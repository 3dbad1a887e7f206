//! A weight matrix of the transformer, multiplied by our own kernels
//! (`shopchat-kernels`) when they have its block format, by candle's
//! otherwise.
//!
//! For the k-quants (Q4_K, Q6_K) ours run decoding only. Both ours and
//! candle's sum a 256-value block in integers and scale it once; on
//! Qwen 0.5B's prompts ours prefilled no faster than candle's (68-93 tok/s
//! against 86-93, `docs/performance.md`), so candle keeps the prefill. Both
//! read the same bytes: the weights are loaded once.

use std::sync::Arc;

use candle_core::quantized::{GgmlDType, QMatMul, QTensor};
use candle_core::{Module, Tensor};
use shopchat_kernels::{Activations, Format, KernelSet, QuantizedMatrix, ThreadPool};

use crate::error::Result;

pub(crate) struct Linear {
    weights: Arc<QTensor>,
    candle: QMatMul,
    /// The block format when our kernels run this matrix.
    kernel: Option<Format>,
    rows: usize,
    cols: usize,
}

fn kernel_format(dtype: GgmlDType) -> Option<Format> {
    match dtype {
        GgmlDType::Q4_0 => Some(Format::Q4_0),
        GgmlDType::Q4_1 => Some(Format::Q4_1),
        GgmlDType::Q5_0 => Some(Format::Q5_0),
        GgmlDType::Q8_0 => Some(Format::Q8_0),
        GgmlDType::Q4K => Some(Format::Q4K),
        GgmlDType::Q6K => Some(Format::Q6K),
        _ => None,
    }
}

fn is_k_quant(format: Format) -> bool {
    matches!(format, Format::Q4K | Format::Q6K)
}

impl Linear {
    pub(crate) fn from_qtensor(tensor: QTensor) -> Result<Linear> {
        let (rows, cols) = tensor.shape().dims2()?;
        let kernel = kernel_format(tensor.dtype())
            .filter(|format| cols.is_multiple_of(format.block_values()));
        let weights = Arc::new(tensor);
        let candle = QMatMul::from_arc(Arc::clone(&weights))?;
        Ok(Linear { weights, candle, kernel, rows, cols })
    }

    /// The block format our kernels run, if they run this matrix.
    pub(crate) fn kernel_format(&self) -> Option<Format> {
        self.kernel
    }

    /// Whether our kernels compute this matrix for `tokens` input rows.
    fn ours_for(&self, tokens: usize) -> Option<Format> {
        self.kernel.filter(|&format| tokens == 1 || !is_k_quant(format))
    }
}

/// How the transformer runs its matrices: the kernel set and the threads.
pub(crate) struct Kernels {
    pub set: KernelSet,
    pub pool: &'static ThreadPool,
}

impl Kernels {
    /// `x` (`[.., cols]`) times each of `matrices`; the input is quantized
    /// once for all of those our kernels run.
    pub(crate) fn forward<const N: usize>(
        &self,
        x: &Tensor,
        matrices: [&Linear; N],
    ) -> Result<[Tensor; N]> {
        let dims = x.dims().to_vec();
        let cols = *dims.last().unwrap_or(&0);
        let tokens = x.elem_count() / cols.max(1);
        // The input as floats, and quantized in each layout asked for.
        let mut input: Option<Vec<f32>> = None;
        let mut acts: Vec<Activations> = Vec::new();
        let mut out = Vec::with_capacity(N);
        for matrix in matrices {
            let Some(format) = matrix.ours_for(tokens) else {
                out.push(matrix.candle.forward(x)?);
                continue;
            };
            let layout = format.activation_layout();
            if !acts.iter().any(|a| a.layout() == layout) {
                if input.is_none() {
                    input = Some(x.flatten_all()?.to_vec1::<f32>()?);
                }
                let input = input.as_deref().expect("read above");
                acts.push(Activations::quantize(input, tokens, cols, layout));
            }
            let acts = acts.iter().find(|a| a.layout() == layout).expect("quantized above");
            let bytes = matrix.weights.data()?;
            let weights = QuantizedMatrix::from_bytes(format, matrix.rows, matrix.cols, &bytes)?;
            let mut y = vec![0f32; tokens * matrix.rows];
            weights.matmul(acts, &mut y, self.set, self.pool)?;
            let mut shape = dims.clone();
            *shape.last_mut().expect("at least one dimension") = matrix.rows;
            out.push(Tensor::from_vec(y, shape, x.device())?);
        }
        Ok(out.try_into().unwrap_or_else(|_| unreachable!("one output per matrix")))
    }
}
