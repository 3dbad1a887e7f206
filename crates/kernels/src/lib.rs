//! Quantized matrix kernels for the local language model.
//!
//! The transformer's weights stay in their GGUF block formats; activations are
//! quantized to int8 once per matrix input (blocks of 32 for the 32-value
//! formats, of 256 for the k-quants), and each output is an integer dot
//! product per block, scaled and summed in floats. A k-quant block's eight
//! sub-blocks have small integer scales, so the whole block is summed in
//! integers and scaled once.
//!
//! Key design decision: **every kernel set computes the same bits.** The
//! floating-point part of a dot product follows one fixed order, the order of
//! the AVX2 code (eight lanes, a fused multiply-add per block, a fixed
//! pairwise sum at the end), and the scalar path reproduces that order
//! exactly. So a test, an eval suite or a shopper's answer does not change
//! with the CPU it runs on, and forcing `SHOPCHAT_KERNELS=scalar` reproduces
//! an AVX2 machine's answers bit for bit. For Q8_0 this order is also the one
//! candle's own AVX2 dot product uses, so answers did not move when these
//! kernels replaced candle's.
//!
//! This is the one crate where `unsafe` is allowed: SIMD intrinsics (each
//! reached only after run-time detection of the CPU feature) and the thread
//! pool's hand-off of a borrowed job. Every unsafe block states why it is
//! sound, and every SIMD path is tested against its scalar twin.

mod blocks;
mod dispatch;
mod kquants;
mod matmul;
mod pool;
mod quantize;
mod scalar;
#[cfg(target_arch = "x86_64")]
mod x86;

pub use blocks::Format;
pub use dispatch::{KernelSet, KernelSetError};
pub use matmul::{MatmulError, QuantizedMatrix};
pub use pool::ThreadPool;
pub use quantize::{ActivationLayout, Activations};
