//! A quantized weight matrix and its product with quantized activations.

use crate::blocks::{ActBlock, ActBlockK, BlockQ4_0, BlockQ4_1, BlockQ5_0, BlockQ8_0, Format};
use crate::dispatch::KernelSet;
use crate::kquants::{BlockQ4K, BlockQ6K};
use crate::pool::ThreadPool;
use crate::quantize::{ActivationLayout, Activations, Quantized};
use crate::scalar;

/// Weight rows computed together: each activation block loaded is used for
/// this many rows.
const ROW_TILE: usize = 4;
/// Activation rows computed together: each weight block loaded is used for
/// this many tokens. `ROW_TILE * TOKEN_TILE` accumulators fit the sixteen
/// AVX2 registers with room for the operands.
const TOKEN_TILE: usize = 3;
/// Tokens a thread walks through before moving to its next rows, so that
/// their activations stay in the core's cache while the rows change.
const TOKEN_CHUNK: usize = 48;

#[derive(Debug, thiserror::Error)]
pub enum MatmulError {
    #[error("a {format:?} matrix of {rows} × {cols} needs {expected} bytes, got {got}")]
    WrongSize { format: Format, rows: usize, cols: usize, expected: usize, got: usize },
    #[error("{cols} columns are not whole {format:?} blocks of {block}")]
    PartialBlock { format: Format, cols: usize, block: usize },
    #[error("the input has {got} columns, the matrix {expected}")]
    InputWidth { expected: usize, got: usize },
    #[error("the output holds {got} values, {expected} are needed")]
    OutputSize { expected: usize, got: usize },
    #[error("a {format:?} matrix takes activations quantized as {expected:?}, not {got:?}")]
    Layout { format: Format, expected: ActivationLayout, got: ActivationLayout },
}

enum Weights<'a> {
    Q4_0(&'a [BlockQ4_0]),
    Q4_1(&'a [BlockQ4_1]),
    Q5_0(&'a [BlockQ5_0]),
    Q8_0(&'a [BlockQ8_0]),
    Q4K(&'a [BlockQ4K]),
    Q6K(&'a [BlockQ6K]),
}

/// A `rows × cols` weight matrix in its GGUF block format, row-major: the
/// layout of a GGUF tensor of shape `[cols, rows]` (GGUF lists the
/// innermost dimension first). It borrows the bytes, so the weights stay
/// where the loader put them, once.
pub struct QuantizedMatrix<'a> {
    rows: usize,
    cols: usize,
    weights: Weights<'a>,
}

/// The blocks of `format` in `bytes`, whose length is a whole number of
/// blocks. `B` must be one of the block types, each `repr(C)` over byte
/// arrays.
fn blocks_from<B: Copy>(format: Format, bytes: &[u8]) -> &[B] {
    let size = format.block_bytes();
    assert!(size_of::<B>() == size && align_of::<B>() == 1 && bytes.len().is_multiple_of(size));
    // SAFETY: every block type is `repr(C)` over byte arrays only, so it has
    // alignment 1, no padding and no invalid bit patterns; its size is the
    // format's block size (asserted), and the length is whole blocks of it.
    unsafe { std::slice::from_raw_parts(bytes.as_ptr().cast::<B>(), bytes.len() / size) }
}

impl<'a> QuantizedMatrix<'a> {
    /// The matrix over a GGUF tensor's raw bytes.
    pub fn from_bytes(
        format: Format,
        rows: usize,
        cols: usize,
        bytes: &'a [u8],
    ) -> Result<QuantizedMatrix<'a>, MatmulError> {
        let block = format.block_values();
        if !cols.is_multiple_of(block) {
            return Err(MatmulError::PartialBlock { format, cols, block });
        }
        let expected = rows * cols / block * format.block_bytes();
        if bytes.len() != expected {
            return Err(MatmulError::WrongSize { format, rows, cols, expected, got: bytes.len() });
        }
        let weights = match format {
            Format::Q4_0 => Weights::Q4_0(blocks_from(format, bytes)),
            Format::Q4_1 => Weights::Q4_1(blocks_from(format, bytes)),
            Format::Q5_0 => Weights::Q5_0(blocks_from(format, bytes)),
            Format::Q8_0 => Weights::Q8_0(blocks_from(format, bytes)),
            Format::Q4K => Weights::Q4K(blocks_from(format, bytes)),
            Format::Q6K => Weights::Q6K(blocks_from(format, bytes)),
        };
        Ok(QuantizedMatrix { rows, cols, weights })
    }

    pub fn rows(&self) -> usize {
        self.rows
    }

    pub fn cols(&self) -> usize {
        self.cols
    }

    pub fn format(&self) -> Format {
        match self.weights {
            Weights::Q4_0(_) => Format::Q4_0,
            Weights::Q4_1(_) => Format::Q4_1,
            Weights::Q5_0(_) => Format::Q5_0,
            Weights::Q8_0(_) => Format::Q8_0,
            Weights::Q4K(_) => Format::Q4K,
            Weights::Q6K(_) => Format::Q6K,
        }
    }

    /// `out[t * rows + r] = row r · input row t`, for every token of `acts`.
    pub fn matmul(
        &self,
        acts: &Activations,
        out: &mut [f32],
        kernels: KernelSet,
        pool: &ThreadPool,
    ) -> Result<(), MatmulError> {
        if acts.cols() != self.cols {
            return Err(MatmulError::InputWidth { expected: self.cols, got: acts.cols() });
        }
        let expected = acts.tokens() * self.rows;
        if out.len() != expected {
            return Err(MatmulError::OutputSize { expected, got: out.len() });
        }
        let expected = self.format().activation_layout();
        if acts.layout() != expected {
            let format = self.format();
            return Err(MatmulError::Layout { format, expected, got: acts.layout() });
        }
        let blocks = self.cols / expected.block_values();
        let shape = Shape { rows: self.rows, blocks, tokens: acts.tokens() };
        match (&self.weights, acts.quantized()) {
            (Weights::Q4_0(w), Quantized::Blocks32(a)) => product(w, a, shape, out, kernels, pool),
            (Weights::Q4_1(w), Quantized::Blocks32(a)) => product(w, a, shape, out, kernels, pool),
            (Weights::Q5_0(w), Quantized::Blocks32(a)) => product(w, a, shape, out, kernels, pool),
            (Weights::Q8_0(w), Quantized::Blocks32(a)) => product(w, a, shape, out, kernels, pool),
            (Weights::Q4K(w), Quantized::Blocks256(a)) => {
                product_k(w, a, shape, out, kernels, pool)
            }
            (Weights::Q6K(w), Quantized::Blocks256(a)) => {
                product_k(w, a, shape, out, kernels, pool)
            }
            _ => unreachable!("the activation layout was checked above"),
        }
        Ok(())
    }
}

#[derive(Clone, Copy)]
struct Shape {
    rows: usize,
    blocks: usize,
    tokens: usize,
}

/// The output, written from several threads at disjoint indices.
struct SharedOutput {
    ptr: *mut f32,
    len: usize,
}

// SAFETY: threads write through `ptr` only at indices no other thread
// writes (see `product`), and the buffer outlives the pool job.
unsafe impl Sync for SharedOutput {}

impl SharedOutput {
    fn write(&self, index: usize, value: f32) {
        assert!(index < self.len);
        // SAFETY: in bounds (checked above); `product` gives every index to
        // exactly one thread, and the `&mut` it came from is not used while
        // the job runs.
        unsafe { *self.ptr.add(index) = value };
    }
}

#[cfg(target_arch = "x86_64")]
use crate::x86::{Avx2Block as KernelBlock, Avx2KBlock as KernelKBlock};
#[cfg(not(target_arch = "x86_64"))]
use crate::{blocks::WeightBlock as KernelBlock, kquants::KBlock as KernelKBlock};

/// Where one tile sits: `n_rows` weight rows from `row`, `n_tokens`
/// activation rows from `token`.
#[derive(Clone, Copy)]
struct TilePlace {
    row: usize,
    n_rows: usize,
    token: usize,
    n_tokens: usize,
}

/// Splits the rows over the pool; each thread computes its rows for every
/// token, tile by tile, with `compute` writing a tile's `n_rows * n_tokens`
/// outputs (row-major) into the buffer it is given.
fn split_rows(
    shape: Shape,
    out: &mut [f32],
    pool: &ThreadPool,
    compute: &(dyn Fn(TilePlace, &mut [f32]) + Sync),
) {
    let Shape { rows, tokens, .. } = shape;
    let row_tiles = rows.div_ceil(ROW_TILE);
    let parts = pool.threads().min(row_tiles);
    let tiles_per_part = row_tiles.div_ceil(parts);
    let output = SharedOutput { ptr: out.as_mut_ptr(), len: out.len() };
    pool.run(parts, &|part| {
        let first = (part * tiles_per_part * ROW_TILE).min(rows);
        let end = ((part + 1) * tiles_per_part * ROW_TILE).min(rows);
        let mut tile_out = [0f32; ROW_TILE * TOKEN_TILE];
        for chunk in (0..tokens).step_by(TOKEN_CHUNK) {
            let chunk_end = tokens.min(chunk + TOKEN_CHUNK);
            for row in (first..end).step_by(ROW_TILE) {
                let n_rows = ROW_TILE.min(end - row);
                for token in (chunk..chunk_end).step_by(TOKEN_TILE) {
                    let n_tokens = TOKEN_TILE.min(chunk_end - token);
                    compute(TilePlace { row, n_rows, token, n_tokens }, &mut tile_out);
                    for r in 0..n_rows {
                        for t in 0..n_tokens {
                            output.write((token + t) * rows + row + r, tile_out[r * n_tokens + t]);
                        }
                    }
                }
            }
        }
    });
}

/// Calls `$tile::<B, R, T>($args)` with the tile's shape as constants.
#[cfg(target_arch = "x86_64")]
macro_rules! tile_of_shape {
    ($tile:ident, $place:expr, $($args:expr),*) => {
        match ($place.n_rows, $place.n_tokens) {
            (4, 3) => $tile::<B, 4, 3>($($args),*),
            (4, 2) => $tile::<B, 4, 2>($($args),*),
            (4, 1) => $tile::<B, 4, 1>($($args),*),
            (3, 3) => $tile::<B, 3, 3>($($args),*),
            (3, 2) => $tile::<B, 3, 2>($($args),*),
            (3, 1) => $tile::<B, 3, 1>($($args),*),
            (2, 3) => $tile::<B, 2, 3>($($args),*),
            (2, 2) => $tile::<B, 2, 2>($($args),*),
            (2, 1) => $tile::<B, 2, 1>($($args),*),
            (1, 3) => $tile::<B, 1, 3>($($args),*),
            (1, 2) => $tile::<B, 1, 2>($($args),*),
            _ => $tile::<B, 1, 1>($($args),*),
        }
    };
}

/// A tile computed one dot product at a time: `dot(r, t)` for row `r` and
/// token `t` of the tile.
fn scalar_tile(place: TilePlace, out: &mut [f32], dot: impl Fn(usize, usize) -> f32) {
    for r in 0..place.n_rows {
        for t in 0..place.n_tokens {
            out[r * place.n_tokens + t] = dot(r, t);
        }
    }
}

/// The 32-value formats: every weight block meets one activation block.
fn product<B: KernelBlock>(
    weights: &[B],
    acts: &[ActBlock],
    shape: Shape,
    out: &mut [f32],
    kernels: KernelSet,
    pool: &ThreadPool,
) {
    let b = shape.blocks;
    split_rows(shape, out, pool, &|place, out| {
        let w = &weights[place.row * b..];
        let a = &acts[place.token * b..];
        match kernels {
            #[cfg(target_arch = "x86_64")]
            KernelSet::Avx2 => {
                use crate::x86::tile;
                // SAFETY: `KernelSet::Avx2` is only ever selected on a CPU
                // with AVX2, FMA and F16C (`KernelSet::is_supported`).
                unsafe { tile_of_shape!(tile, place, w, b, a, b, b, out) }
            }
            _ => scalar_tile(place, out, |r, t| {
                scalar::dot(&w[r * b..(r + 1) * b], &a[t * b..(t + 1) * b])
            }),
        }
    });
}

/// The k-quants, with activations in blocks of 256: one weight block per
/// activation block.
fn product_k<B: KernelKBlock>(
    weights: &[B],
    acts: &[ActBlockK],
    shape: Shape,
    out: &mut [f32],
    kernels: KernelSet,
    pool: &ThreadPool,
) {
    let b = shape.blocks;
    split_rows(shape, out, pool, &|place, out| {
        let w = &weights[place.row * b..];
        let a = &acts[place.token * b..];
        match kernels {
            #[cfg(target_arch = "x86_64")]
            KernelSet::Avx2 => {
                use crate::x86::tile_k;
                // SAFETY: `KernelSet::Avx2` is only ever selected on a CPU
                // with AVX2, FMA and F16C (`KernelSet::is_supported`).
                unsafe { tile_of_shape!(tile_k, place, w, b, a, b, b, out) }
            }
            _ => scalar_tile(place, out, |r, t| {
                scalar::dot_k(&w[r * b..(r + 1) * b], &a[t * b..(t + 1) * b])
            }),
        }
    });
}
