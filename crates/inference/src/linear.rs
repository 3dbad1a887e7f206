//! A weight matrix of the transformer, multiplied by our own kernels
//! (`shopchat-kernels`) when its block format has them, by candle's
//! otherwise.

use candle_core::quantized::{GgmlDType, QMatMul, QTensor};
use candle_core::{Module, Tensor};
use shopchat_kernels::{Activations, Format, KernelSet, QuantizedMatrix, ThreadPool};

use crate::error::Result;

pub(crate) enum Linear {
    Kernel(QuantizedMatrix),
    Candle(QMatMul),
}

fn kernel_format(dtype: GgmlDType) -> Option<Format> {
    match dtype {
        GgmlDType::Q4_0 => Some(Format::Q4_0),
        GgmlDType::Q4_1 => Some(Format::Q4_1),
        GgmlDType::Q5_0 => Some(Format::Q5_0),
        GgmlDType::Q8_0 => Some(Format::Q8_0),
        _ => None,
    }
}

impl Linear {
    pub(crate) fn from_qtensor(tensor: QTensor) -> Result<Linear> {
        if let (Some(format), [rows, cols]) = (kernel_format(tensor.dtype()), tensor.shape().dims())
        {
            if cols.is_multiple_of(format.block_values()) {
                let bytes = tensor.data()?;
                return Ok(Linear::Kernel(QuantizedMatrix::from_bytes(
                    format, *rows, *cols, &bytes,
                )?));
            }
        }
        Ok(Linear::Candle(QMatMul::from_qtensor(tensor)?))
    }

    /// The block format our kernels run, if they run this matrix.
    pub(crate) fn kernel_format(&self) -> Option<Format> {
        match self {
            Linear::Kernel(m) => Some(m.format()),
            Linear::Candle(_) => None,
        }
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
        let mut acts: Option<Activations> = None;
        let mut out = Vec::with_capacity(N);
        for matrix in matrices {
            let y = match matrix {
                Linear::Candle(m) => m.forward(x)?,
                Linear::Kernel(m) => {
                    if acts.is_none() {
                        let input = x.flatten_all()?.to_vec1::<f32>()?;
                        acts = Some(Activations::quantize(&input, tokens, cols));
                    }
                    let acts = acts.as_ref().expect("quantized above");
                    let mut y = vec![0f32; tokens * m.rows()];
                    m.matmul(acts, &mut y, self.set, self.pool)?;
                    let mut shape = dims.clone();
                    *shape.last_mut().expect("at least one dimension") = m.rows();
                    Tensor::from_vec(y, shape, x.device())?
                }
            };
            out.push(y);
        }
        Ok(out.try_into().unwrap_or_else(|_| unreachable!("one output per matrix")))
    }
}
